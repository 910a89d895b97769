"""benchmarks/motion_scratch.py (and trajectory_qa.py, built on it): each arm is a valid training config differing
from the base in its own keys only, and the phrases a description says are read and compared with the reference's
as meant."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from regionlm.train.config import config_from_dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import motion_scratch  # noqa: E402
import tracking_scratch  # noqa: E402
import trajectory_qa  # noqa: E402


@pytest.mark.parametrize("name", list(motion_scratch.ARMS))
def test_every_arm_is_a_valid_config_with_only_its_change(name):
    raw = motion_scratch.arm_config(name, steps=700)
    cfg = config_from_dict(raw, where=name)
    assert cfg.stages[0].steps == 700 and cfg.data.tasks == {"region_caption": 1}
    base = motion_scratch.arm_config("every_frame", steps=700)
    data, model, _ = motion_scratch.ARMS[name]
    assert {k for k in raw["data"] if raw["data"][k] != base["data"][k]} == set(data)
    assert {k for k in raw["model"]["config"] if raw["model"]["config"].get(k) != base["model"]["config"].get(k)} \
        == set(model)


def test_phrases_are_read_from_descriptions():
    moving = "A small red star. It starts in the top left and moves down and to the right. It ends at the bottom."
    still = "A large blue ring. It stays still on the right."
    entering = "A small cyan cross. It enters the frame from the top and moves down. It ends in the centre."
    assert [motion_scratch.said(moving, w) for w in ("start", "end", "motion")] == \
        ["in the top left", "at the bottom", "down and to the right"]
    assert [motion_scratch.said(still, w) for w in ("start", "end", "motion")] == \
        ["on the right", None, "stays still"]
    assert motion_scratch.said(entering, "start") is None and motion_scratch.said(entering, "motion") == "down"


def test_phrase_accuracy_counts_only_what_the_reference_says():
    references = {"a": "A red star. It starts on the left and moves up. It ends at the top.",
                  "b": "A blue ring. It stays still in the centre.",
                  "c": "A cyan cross. It enters the frame from the top and moves down. It ends in the centre."}
    predictions = [{"id": "a", "prediction": "A red star. It starts on the left and moves down. It ends at the top."},
                   {"id": "b", "prediction": "A blue ring. It starts in the centre and moves left."},
                   {"id": "c", "prediction": "A cyan cross. It stays still in the centre."}]
    acc = motion_scratch.phrase_accuracy(predictions, references)
    # start (said by a and b): both right, b's place though it moves; end (a and c): a right, c says none;
    # motion (all three): a wrong direction, b moves though still, c still though moving
    assert acc == {"start": 100.0, "end": 50.0, "motion": 0.0}


@pytest.mark.parametrize("name", list(trajectory_qa.ARMS))
def test_question_arms_train_region_questions_only_and_differ_in_their_own_keys(name):
    """benchmarks/trajectory_qa.py: the same small model on region_qa (alone, or 2:1 with descriptions for the
    joint arms); the arms differ only in how regions are given, in the trajectory token, in the LM's width, in
    the examples drawn from each video, in drawing a look-alike question with its swap, in Token Marks and in
    the context tokens' places."""
    raw = trajectory_qa.arm_config(name, 500, trajectory_qa.ARMS)
    cfg = config_from_dict(raw, where=name)
    joint = name.startswith("joint")
    assert cfg.data.tasks == ({"region_qa": 2, "region_caption": 1} if joint else {"region_qa": 1})
    assert cfg.stages[0].steps == 500
    assert cfg.model.config.get("region_trajectory", False) is ("trajectory" in name)
    every = name == "trajectory_every"
    assert (cfg.data.first_frame_only, cfg.data.multi_frame_prob) == ((0.0, 1.0) if every else (0.3, 0.5))
    assert cfg.data.examples_per_video == (8 if name.endswith("_epv8") else 4)
    assert cfg.data.lookalike_pairs is name.endswith("_pairs")
    model = {k: v for k, v in raw["model"]["config"].items() if k != "region_trajectory"}
    assert model.pop("region_marks", False) is ("_marks" in name)  # Token Marks beside the pooled tokens, and:
    assert model.pop("mark_init_std", 1.0) == (0.2 if name.endswith("_small") else 1.0)
    assert model.pop("guide_head", True) is (not name.endswith("_noguide"))
    assert model.pop("guide_alpha", 0.5) == (0.1 if name.endswith("_alpha0.1") else 0.5)
    assert model.pop("context_positions", False) is name.endswith("_positions")
    base = motion_scratch.BASE["model"]["config"]
    if name.endswith("_wide"):  # the LM wider, nothing else
        assert model.pop("text_config") == {**base["text_config"], "hidden_size": 192, "intermediate_size": 576}
        base = {k: v for k, v in base.items() if k != "text_config"}
    assert model == base


def test_paired_effects_pair_each_variant_with_its_base(tmp_path):
    """trajectory_qa.paired_effects: the paired difference (variant - base) over the shared questions, for the
    pairs that ran and the modes scored; a pair missing an arm is left out."""
    import json

    def results(name, correct, follows):
        d = tmp_path / name / "eval-single"
        d.mkdir(parents=True)
        rows = [{"id": f"q{i}", "correct": c, **({"swap_follows": f} if f is not None else {})}
                for i, (c, f) in enumerate(zip(correct, follows))]
        (d / "results.json").write_text(json.dumps({"per_sample": rows}))
        return tmp_path / name

    dirs = {"joint": results("joint", [True, False, False, False], [False, None, False, None]),
            "joint_trajectory": results("jt", [True, True, True, False], [True, None, False, None]),
            "mixed": results("mixed", [True] * 4, [None] * 4)}
    effects = trajectory_qa.paired_effects(dirs, ["single"])
    assert list(effects) == ["joint_trajectory - joint"]
    right, _, _, n = effects["joint_trajectory - joint"]["single"]["correct"]
    follows, _, _, n_swaps = effects["joint_trajectory - joint"]["single"]["swap_follows"]
    assert (right, n, follows, n_swaps) == (50.0, 4, 50.0, 2)


@pytest.mark.parametrize("name", [n for n in tracking_scratch.ARMS if n not in tracking_scratch.INIT_FROM])
def test_tracking_arms_train_the_box_tasks_and_differ_in_their_own_keys_only(name, tmp_path):
    raw, run_dir = tracking_scratch.arm_run(name, 300, 0, tmp_path)
    assert run_dir == tmp_path / "runs" / name
    cfg = config_from_dict(raw, where=name)
    assert cfg.data.tasks == ({"rec": 1} if name.startswith("rec") else {"sot": 2, "rsot": 1, "rec": 1})
    assert cfg.stages[0].steps == 300
    assert cfg.model.ordinal_numbers is (name == "track_ordinal")
    model = dict(raw["model"]["config"])
    assert model.pop("context_positions", False) is (name not in ("track", "rec"))
    assert model.pop("context_frames", False) is (name == "track_frames")
    assert model == motion_scratch.BASE["model"]["config"]


@pytest.mark.parametrize("name", list(tracking_scratch.INIT_FROM))
def test_curriculum_arms_go_on_from_their_parents_final_weights_on_the_mix(name, tmp_path):
    raw, run_dir = tracking_scratch.arm_run(name, 300, 3, tmp_path)
    parent = tracking_scratch.INIT_FROM[name]
    assert run_dir == tmp_path / "runs" / f"{name}-s3"
    parent_final = tmp_path / "runs" / f"{parent}-s3" / "final"
    added = {"context_frames": True} if name.endswith("_frames") else None  # what it adds to its parent
    assert raw["model"] == {"init_from": str(parent_final), **({"config": added} if added else {})}
    parent_final.mkdir(parents=True)  # (the config checks that the folder exists)
    cfg = config_from_dict(raw, where=name)
    assert cfg.data.tasks == {"sot": 2, "rsot": 1, "rec": 1} and cfg.stages[0].steps == 300 and cfg.seed == 3
    assert tracking_scratch.ARMS[parent][1] == {"context_positions": True}  # every parent embeds the places


def test_static_share_counts_frames_whose_box_stays_at_frame_0s():
    tracks = [[[10, 10, 5, 5], [10.5, 10, 5, 5.9], [12, 10, 5, 5], None],  # stays, moves 2 px, no box
              [None, [1, 1, 1, 1]],  # no first box: not counted
              [[0, 0, 4, 4], [0, 0, 4, 4]]]
    assert tracking_scratch.static_share(tracks) == round(100 * 2 / 3, 1)
    assert tracking_scratch.static_share([]) == 0.0


def test_first_box_iou_scores_frame_0_and_counts_a_missing_box_as_0():
    truth = {"a": [[10, 10, 10, 10], None], "b": [[0, 0, 4, 4]], "c": [None, [1, 1, 2, 2]]}
    rows = [{"id": "a", "boxes": [[10, 10, 10, 5], None]}, {"id": "b", "boxes": [None]},
            {"id": "c", "boxes": [[1, 1, 2, 2], None]}]  # c: no truth on frame 0, not counted
    assert tracking_scratch.first_box_iou(rows, truth) == 25.0


def test_follows_correlates_the_boxes_moves_with_the_objects():
    truth = {"a": [[0, 0, 4, 4], [2, 0, 4, 4], [4, 1, 4, 4], [6, 3, 4, 4]],
             "b": [None, [10, 10, 4, 4], [9, 12, 4, 4], [8, 13, 4, 4]]}
    moving = [{"id": "a", "boxes": [[0, 0, 4, 4], [1, 0, 4, 4], [2, 0.5, 4, 4], [3, 1.5, 4, 4]]},
              {"id": "b", "boxes": [None, [10, 10, 4, 4], [9.5, 11, 4, 4], [9, 11.5, 4, 4]]}]
    still = [{"id": k, "boxes": [b if b is None else list(truth[k][1 if k == "b" else 0]) for b in truth[k]]}
             for k in truth]
    assert tracking_scratch.follows(moving, truth) == (1.0, 1.0)  # half the object's moves, same direction
    assert tracking_scratch.follows(still, truth) == (0.0, 0.0)  # a box that stays follows nothing


@pytest.mark.parametrize("name", ["pool", "objects", "pool_objects"])
def test_object_list_arms_differ_in_the_encoder_and_the_list_only(name):
    """benchmarks/object_tokens_vqa.py: video and region questions 1:1, no geometry embedding; the arms differ in
    the region encoder and in whether objects are listed, and each is scored with the lists it can take."""
    import object_tokens_vqa

    raw = motion_scratch.arm_config(name, 300, object_tokens_vqa.ARMS)
    cfg = config_from_dict(raw, where=name)
    assert cfg.data.tasks == {"video_qa": 1, "region_qa": 1} and cfg.stages[0].steps == 300
    model = dict(raw["model"]["config"])
    assert model.pop("region_encoder") == ("object_tokens" if name == "objects" else "mask_pool")
    assert model.pop("object_list", False) is (name == "pool_objects")
    assert model.pop("region_geometry") is False
    assert model == {k: v for k, v in motion_scratch.BASE["model"]["config"].items()
                     if k not in ("region_encoder", "region_geometry")}
    listed = name != "pool"
    assert ("pipeline" in object_tokens_vqa.OBJECT_LISTS[name]) is listed


def test_video_questions_are_sorted_into_their_kinds(tmp_path):
    """object_tokens_vqa.kind reads each question annotate.video_questions writes."""
    import json

    import object_tokens_vqa

    from regionlm.world import generate_split

    generate_split(tmp_path, "test", 3, seed=0, write_videos=False, progress=False)
    questions = [q["Question"] for q in json.loads((tmp_path / "video_qa.json").read_text())]
    kinds = [object_tokens_vqa.kind(q) for q in questions]
    assert kinds[:5] == ["all objects", "by colour", "by shape", "collisions", "yes / no"]
    assert kinds == kinds[:5] * 3
