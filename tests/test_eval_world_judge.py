"""The deterministic RegionWorld judge: reference descriptions score 5s, errors cost the right dimension."""

import json

import pytest

from regionlm.eval.metrics.judge import DIMENSIONS, Judge, evaluate_descriptions, parse_judge_reply
from regionlm.eval.metrics.world_judge import WorldJudge, object_events, read_description
from regionlm.world import generate_split


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_split(out, "test", 6, 0, progress=False, write_videos=False)
    videos = {v["video"]: v for v in json.loads((out / "ground_truth.json").read_text())["videos"]}
    items = []
    for rec in json.loads((out / "region_caption.json").read_text()):
        video = videos[rec["video"]]
        obj = next(o for o in video["objects"] if o["id"] == rec["object_ids"][0])
        items.append((rec["caption"], {"object": obj, "events": video["events"]}))
    return items


def scores(reference, prediction, meta):
    parsed = parse_judge_reply(WorldJudge().score(reference, prediction, meta))
    assert list(parsed) == list(DIMENSIONS)  # exactly the four, explanations never look like a score line
    return parsed


def test_is_a_judge():
    assert isinstance(WorldJudge(), Judge)


def test_every_reference_description_scores_five(world):
    for caption, meta in world:
        assert scores(caption, caption, meta) == {d: 5.0 for d in DIMENSIONS}, caption


def test_wrong_colour_loses_subject_and_appearance(world):
    caption, meta = world[0]
    colour = meta["object"]["colour"]
    wrong = "blue" if colour != "blue" else "red"
    s = scores(caption, caption.replace(colour, wrong, 1), meta)
    assert s["Subject Correspondence"] < 5 and s["Appearance Description"] < 5
    assert s["Hallucination Detection"] == 5 and s["Temporal Description"] == 5


def test_invented_event_loses_hallucination_points(world):
    caption, meta = next((c, m) for c, m in world if not any(k == "collision" for k, _ in
                                                            object_events(m["object"]["id"], m["events"])))
    s = scores(caption, caption + " Then it collides with the white ring.", meta)
    assert s["Hallucination Detection"] == 4
    assert s["Subject Correspondence"] == s["Appearance Description"] == s["Temporal Description"] == 5


def test_missing_events_lose_temporal_points(world):
    caption, meta = max(world, key=lambda cm: len(object_events(cm[1]["object"]["id"], cm[1]["events"])))
    first_sentence = caption.split(".")[0] + "."
    s = scores(caption, first_sentence, meta)
    assert s["Temporal Description"] < 5 and s["Subject Correspondence"] == 5


def test_reading_a_description():
    facts = read_description("A big red star that spins anticlockwise. It enters the frame from the top and moves "
                             "down. Then it collides with the blue circle that stays still, then it turns green.")
    assert (facts.colour, facts.shape, facts.size, facts.spin) == ("red", "star", "large", "anticlockwise")
    assert facts.static is False and facts.heading == "down"  # "stays still" belongs to the other object
    assert facts.events == [("enter", "top"), ("collision", None), ("colour_change", "green")]


def test_aggregates_like_any_judge(world):
    items = [(c, c, m) for c, m in world[:3]] + [(world[0][0], "A thing.", world[0][1])]
    res = evaluate_descriptions(items, WorldJudge())
    assert res["n_unparseable"] == 0 and 0 < res["overall"] < 5
