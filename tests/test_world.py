"""RegionWorld: determinism, ground-truth consistency, region necessity, hold-out, CLI."""

import json
import re
from collections import Counter

import numpy as np
import pytest

from regionlm.cli import main
from regionlm.regions import mask_to_box, rle_to_mask
from regionlm.world import HOLDOUT_COMBOS, QUESTION_TYPES, SHAPES, TASK_FILES, WorldConfig, generate_split, make_video
from regionlm.world.shapes import shape_mask
from regionlm.world.spec import COLOURS

CFG = WorldConfig()


@pytest.fixture(scope="module")
def videos():
    return [make_video(5, "train", i, CFG) for i in range(60)]


def test_same_arguments_give_byte_identical_files(tmp_path):
    a = generate_split(tmp_path / "a", "val", 4, 9, CFG, progress=False)
    b = generate_split(tmp_path / "b", "val", 4, 9, CFG, progress=False)
    assert a["counts"] == b["counts"]
    for name in TASK_FILES + ("world.json",):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = generate_split(tmp_path / "c", "val", 4, 10, CFG, write_videos=False, progress=False)
    assert (tmp_path / "c" / "region_qa.json").read_bytes() != (tmp_path / "a" / "region_qa.json").read_bytes()
    assert c["num_videos"] == 4


def test_visible_mask_inside_amodal_box_and_occlusion_consistent(videos):
    fully_hidden = 0
    for scene, r, notes in videos:
        T = scene.num_frames
        assert r.frames.shape == (T, 64, 64, 3) and r.frames.dtype == np.uint8
        assert not (r.visible & ~r.amodal).any()  # visible is part of the shape
        assert (r.visible.sum(0) <= 1).all()  # each pixel belongs to at most one object
        for o in notes.ground_truth["objects"]:
            for t, fr in enumerate(o["frames"]):
                vis = r.visible[o["id"] - 1, t]
                if fr["segmentation"] is None:
                    assert not vis.any()
                    if fr["box"] is not None:  # in the frame but fully hidden
                        assert fr["visibility"] == 0
                        fully_hidden += 1
                    continue
                mask = rle_to_mask(fr["segmentation"])
                assert (mask == vis).all()
                x1, y1, x2, y2 = fr["box"]
                assert mask[:y1].sum() == mask[y2:].sum() == mask[:, :x1].sum() == mask[:, x2:].sum() == 0
                assert 0 < fr["visibility"] <= 1
    assert fully_hidden > 0  # full occlusion does happen


def test_pixels_show_the_object_colours(videos):
    for scene, r, notes in videos:
        if scene.background["kind"] != "plain":
            continue
        for k, o in enumerate(scene.objects):
            for t in range(scene.num_frames):
                if r.visible[k, t].any():
                    assert (r.frames[t][r.visible[k, t]] == COLOURS[scene.colours[k][t]]).all()


def test_dynamics_cover_every_kind_of_event(videos):
    kinds = Counter(e["kind"] for _, _, n in videos for e in n.ground_truth["events"])
    for kind in ("bounce", "collision", "speed_up", "slow_down", "colour_change", "enter", "leave", "hidden"):
        assert kinds[kind] > 0, kind
    objs = [o for s, _, _ in videos for o in s.objects]
    assert any(o.static for o in objs) and any(o.spin for o in objs) and any(not o.static for o in objs)
    assert {o.shape for o in objs} == set(SHAPES) and {o.colour for o in objs} == set(COLOURS)
    assert {o.size for o in objs} == {"small", "large"}
    assert {s.background["kind"] for s, _, _ in videos} == {"plain", "noise", "stripes", "checker"}
    assert all(2 <= len(s.objects) <= 6 for s, _, _ in videos)


def test_every_video_has_lookalikes_and_the_region_matters(videos):
    questions = []
    for scene, _, notes in videos:
        colours = Counter(o.colour for o in scene.objects)
        assert max(colours.values()) >= 2
        questions += notes.region_qa
    rate = sum("lookalike" in q for q in questions) / len(questions)
    assert rate >= 0.30, rate
    for q in questions:
        if "lookalike" in q:
            look = q["lookalike"]
            assert look["Answer"] in q["options"] and look["Answer"] != q["Answer"]
            assert len(look["annotation"]) == len(q["annotation"])
            assert look["object_id"] != q["object_ids"][0]


def test_region_questions_are_well_formed(videos):
    types = Counter()
    for _, _, notes in videos:
        for q in notes.region_qa:
            types[q["type"]] += 1
            assert q["Question"].count("<region>") == len(q["annotation"]) == len(q["object_ids"])
            assert len(q["options"]) == 4 and len(set(q["options"])) == 4
            assert [o[:4] for o in q["options"]] == ["(A) ", "(B) ", "(C) ", "(D) "]
            assert q["Answer"] in q["options"]
            assert q["frame_idx"] in q["annotation"][0]
            human = q["conversations"][0]["value"]
            assert human.startswith("<video>\n") and human.count("<region>") == len(q["annotation"])
    assert set(types) == set(QUESTION_TYPES)
    assert min(types.values()) >= 0.5 * max(types.values())


def test_letters_are_balanced(videos):
    letters = Counter(re.match(r"\((\w)\)", q["Answer"]).group(1) for _, _, n in videos for q in n.region_qa)
    assert min(letters.values()) > 0.18 * sum(letters.values())


def test_referring_expressions_are_unique_and_tracks_match_boxes(videos):
    for scene, r, notes in videos:
        gt = {o["id"]: o for o in notes.ground_truth["objects"]}
        exprs = [x["expression"] for x in notes.rsot]
        assert len(exprs) == len(set(exprs))
        for rec in notes.sot:
            o = gt[rec["object_id"]]
            assert rec["boxes"] == [fr["box"] for fr in o["frames"]]
            assert not rec["absent"][rec["init_frame"]]
            assert rec["boxes"][rec["init_frame"]] == list(mask_to_box(r.amodal[rec["object_id"] - 1,
                                                                               rec["init_frame"]]))
        for rec in notes.reg:
            assert rec["box"] == gt[rec["object_id"]]["frames"][rec["frame"]]["box"]


def test_tracks_start_where_half_of_the_whole_object_is_seen(videos):
    # Not a sliver at the frame's edge: on init_frame at least half of the whole shape is seen (the old rule, the
    # unhidden share of the in-frame part >= 0.5, let a 1-pixel box start). A small shape's pixel count changes
    # by up to ~20% with its sub-pixel position, so against the most it is ever seen the bound is 0.4.
    edge_cases = 0
    for scene, r, notes in videos:
        gt = {o["id"]: o for o in notes.ground_truth["objects"]}
        for rec in notes.sot:
            t, k = rec["init_frame"], rec["object_id"] - 1
            seen = r.visible[k, : rec["num_frames"]].sum(axis=(1, 2))
            assert seen[t] >= 0.4 * seen.max(), rec["id"]
            assert rec["visibility"][t] * rec["in_frame"][t] >= 0.5
            assert gt[rec["object_id"]]["frames"][t]["in_frame"] == rec["in_frame"][t]
            # in_frame checked against the shape drawn on a canvas padded wide enough to hold it whole
            o, pad, size = scene.objects[k], 32, scene.size
            for u in range(rec["num_frames"]):
                (cx, cy), angle = scene.centres[k, u], scene.angles[k, u]
                if not 0 < rec["in_frame"][u] < 1 or max(abs(cx - size / 2), abs(cy - size / 2)) > size / 2 + 8:
                    continue
                whole = shape_mask(o.shape, cx + pad, cy + pad, o.radius, angle, size + 2 * pad, size + 2 * pad)
                assert abs(rec["in_frame"][u] - r.amodal[k, u].sum() / whole.sum()) < 1e-3
                edge_cases += u < t
        for rec in notes.reg:
            fr = gt[rec["object_id"]]["frames"][rec["frame"]]
            assert fr["visibility"] * fr["in_frame"] >= 0.5
    assert edge_cases > 0  # objects entering across the edge before their start: the rule was put to the test


def test_descriptions_name_the_attributes(videos):
    for scene, _, notes in videos:
        for cap in notes.region_caption:
            o = scene.objects[cap["object_ids"][0] - 1]
            assert cap["caption"].startswith(f"A {o.size} {o.colour} {o.shape}") or \
                cap["caption"].startswith(f"A {o.size} ")  # colour when first seen may differ after a change


def test_video_questions_count_correctly(videos):
    for scene, r, notes in videos:
        present = sum(bool(r.visible[k, : scene.num_frames].any()) for k in range(len(scene.objects)))
        q = notes.video_qa[0]
        assert q["Question"] == "How many objects appear in the video?"
        assert q["Answer"].endswith(f" {present}")


def test_compositional_holdout():
    for i in range(80):
        scene, _, _ = make_video(2, "train", i, CFG)
        for k, o in enumerate(scene.objects):
            for colour in set(scene.colours[k]):
                assert (colour, o.shape) not in HOLDOUT_COMBOS
        held, _, notes = make_video(2, "holdout", i, CFG)
        assert any((o.colour, o.shape) in HOLDOUT_COMBOS for o in held.objects)


def test_splits_differ_for_the_same_seed():
    a, _, _ = make_video(1, "train", 0, CFG)
    b, _, _ = make_video(1, "test", 0, CFG)
    assert not np.array_equal(a.centres[:, 0], b.centres[:, 0]) or len(a.objects) != len(b.objects)


def test_larger_videos_and_object_ranges():
    cfg = WorldConfig(frames=8, size=128, min_objects=4, max_objects=4)
    scene, r, notes = make_video(0, "val", 0, cfg)
    assert r.frames.shape == (8, 128, 128, 3) and len(scene.objects) == 4


def test_cli_generate_writes_every_task_file(tmp_path, capsys):
    from regionlm.video import VideoReader

    out = tmp_path / "world"
    code = main(["world", "generate", str(out), "--split", "test", "--num-videos", "3", "--seed", "4", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_videos"] == 3 and summary["counts"]["ground_truth.json"] == 3
    for name in TASK_FILES:
        assert (out / name).stat().st_size > 0
    qa = json.loads((out / "region_qa.json").read_text())
    gt = json.loads((out / "ground_truth.json").read_text())
    assert {"id", "video", "Question", "type", "options", "Answer", "frame_idx", "annotation"} <= set(qa[0])
    for v in gt["videos"]:
        with VideoReader(out / v["video"]) as reader:
            assert reader.num_frames == 16 and (reader.height, reader.width) == (64, 64)
    lines = (out / "sot.jsonl").read_text().splitlines()
    assert all(json.loads(line)["num_frames"] == 16 for line in lines)


@pytest.mark.parametrize("argv, words", [
    (["--objects", "7-9"], "--objects"),
    (["--objects", "x"], "MIN-MAX"),
    (["--size", "16"], "--size"),
    (["--num-videos", "0"], "--num-videos"),
])
def test_cli_bad_arguments_fail_with_one_line(tmp_path, capsys, argv, words):
    code = main(["world", "generate", str(tmp_path / "w"), "--no-videos", "--json"] + argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and "\n" not in err


def test_generated_files_pass_the_format_validators_and_load_as_a_dataset(tmp_path):
    from regionlm.data import RegionVideoDataset, collate_regions, load

    generate_split(tmp_path, "test", 3, 11, CFG, progress=False)
    for name, fmt in [("region_qa.json", "canonical"), ("region_qa.json", "videorefer-q"),
                      ("region_caption.json", "videorefer-d"), ("region_caption.json", "canonical"),
                      ("video_qa.json", "canonical")]:
        result = load(tmp_path / name, fmt, num_frames=16)
        assert result.records and not result.skipped, (name, fmt)
    qa = json.loads((tmp_path / "region_qa.json").read_text())
    for q in qa:
        if "lookalike" in q:
            assert all(q["lookalike"]["frame_idx"] in region for region in q["lookalike"]["annotation"])
    ds = RegionVideoDataset(tmp_path / "region_qa.json", num_frames=16)
    batch = collate_regions([ds[0], ds[1]])
    assert batch["frames"].shape[1:] == (16, 64, 64, 3)
    first = qa[0]
    t = int(first["frame_idx"])
    want = rle_to_mask(first["annotation"][0][first["frame_idx"]]["segmentation"])
    assert (batch["masks"][0, 0, t].numpy() == want).all() and batch["given"][0, 0, t]
