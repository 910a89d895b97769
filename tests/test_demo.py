"""`regionlm demo`: the whole main job on a fresh RegionWorld video with a tiny untrained model (its answers are
garbage; the shapes, the ground truth next to them and the report are what is checked)."""

from __future__ import annotations

import contextlib
import html
import io
import json

import pytest
import torch

from regionlm.cli import main
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.processing import RegionLMProcessor
from regionlm.model.tokenizer import train_tokenizer, world_corpus
from regionlm.world import WorldConfig, make_video

SEED = 3


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A saved tiny RegionLM (random weights), as RegionLM.load reads it."""
    tok = train_tokenizer(world_corpus(2), vocab_size=512)
    torch.manual_seed(0)
    vision = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
              "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tok), "tie_word_embeddings": True}
    cfg = RegionLMConfig(region_encoder="token_mark", vision_config=vision, text_config=text, num_frames=8)
    folder = tmp_path_factory.mktemp("tiny_model")
    RegionLMForConditionalGeneration(cfg).save_pretrained(folder)
    RegionLMProcessor(tok, cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def demo_run(tiny_model, tmp_path_factory):
    """One --json run, shared by the tests: (exit code, out folder, stdout, stderr)."""
    out = tmp_path_factory.mktemp("demo")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--out", str(out), "--seed", str(SEED), "--model", str(tiny_model), "--json"])
    return code, out, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="session")
def world():
    """The same video's annotations, generated again: the ground truth the demo must show."""
    _, _, notes = make_video(SEED, "test", 0, WorldConfig(), video_path="video.mp4")
    return notes


def test_demo_json_has_every_part_next_to_the_ground_truth(demo_run, world):
    code, out, stdout, _ = demo_run
    assert code == 0
    result = json.loads(stdout)  # one JSON object, nothing else on stdout
    assert result["seed"] == SEED and result["report"] == str(out / "index.html")
    records = {q["id"]: q for q in world.region_qa}
    assert 3 <= len(result["questions"]) <= 4
    assert len({q["type"] for q in result["questions"]}) == len(result["questions"])  # one per type
    for q in result["questions"]:
        rec = records[q["id"]]
        assert q["gt_answer"] == rec["Answer"] and q["options"] == rec["options"]
        assert q["gt_choice"] == rec["Answer"][1] and "<region>" not in q["question"]
        assert isinstance(q["model_answer"], str) and isinstance(q["correct"], bool)
        assert q["correct"] == (q["model_choice"] is not None and q["model_choice"].upper() == q["gt_choice"])
    d = result["description"]
    caption = next(c for c in world.region_caption if c["object_ids"][0] == d["object_id"])
    assert d["gt"] == caption["caption"] and isinstance(d["model"], str)
    assert set(d["attributes"]) == {"colour", "shape", "size", "motion"}
    tr = result["tracking"]
    sot = next(s for s in world.sot if s["object_id"] == tr["object_id"])
    T = world.ground_truth["num_frames"]
    assert len(tr["boxes"]) == len(tr["iou"]) == T and tr["gt_boxes"] == sot["boxes"]
    assert tr["init_frame"] == sot["init_frame"] and all(b is None for b in tr["boxes"][:tr["init_frame"]])
    scored = [v for v in tr["iou"] if v is not None]
    assert tr["frames_scored"] == len(scored) > 0 and all(0.0 <= v <= 1.0 for v in scored)
    assert tr["mean_iou"] == pytest.approx(sum(scored) / len(scored), abs=1e-3)
    objects = result["objects"]
    visible = [o for o in world.ground_truth["objects"] if any(f["segmentation"] for f in o["frames"])]
    assert objects["true"] == len(visible) and objects["found"] >= objects["matched"]
    assert objects["found"] == objects["matched"] + len(objects["extra"])
    fd = result["finding"]
    truth = next(o for o in world.ground_truth["objects"] if str(o["id"]) == str(tr["object_id"]))
    assert fd["object_id"] == tr["object_id"] and fd["expression"] == truth["expression"]
    assert fd["candidates"] == objects["found"] and fd["picked"] in [None] + list(range(1, objects["found"] + 1))
    row = next(r for r in objects["truth"] if str(r["id"]) == str(tr["object_id"]))
    assert fd["found_as"] == row["found_as"] and fd["correct"] == (fd["picked"] is not None
                                                                   and fd["picked"] == row["found_as"])
    # the picked track scored on the frames the tracking is scored on: a number where those exist
    assert (fd["mean_iou"] is None) == (tr["frames_scored"] == 0)
    assert fd["mean_iou"] is None or 0.0 <= fd["mean_iou"] <= 1.0
    if fd["picked"] is None and fd["mean_iou"] is not None:
        assert fd["mean_iou"] == 0.0
    assert {"load_model", "video", "objects", "questions", "description", "tracking", "finding", "render",
            "total"} <= set(result["timings"])


def test_demo_writes_the_report_with_the_video_inlined(demo_run):
    code, out, stdout, _ = demo_run
    result = json.loads(stdout)
    for name in ("video.mp4", "demo.mp4", "demo.gif", "index.html"):
        assert (out / name).stat().st_size > 0
    assert result["rendered"] == [str(out / "demo.mp4"), str(out / "demo.gif")]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert '<img src="data:image/gif;base64,' in page
    for q in result["questions"]:
        assert html.escape(q["gt_answer"]) in page and html.escape(q["question"]) in page
    assert html.escape(result["description"]["gt"]) in page and "mean IoU" in page and "Timings" in page
    assert html.escape(result["finding"]["expression"]) in page and "picked track" in page


def test_demo_prints_progress_for_each_phase(demo_run):
    _, _, _, stderr = demo_run
    for words in ("loading the model", "generating a RegionWorld video", "finding objects", "asking",
                  "describing", "tracking object", "finding object", "rendering", "done in"):
        assert f"demo: {words}" in stderr


def test_demo_table_shows_model_and_truth(demo_run, world, capsys):
    from regionlm.demo import print_summary

    result = json.loads(demo_run[2])
    print_summary(result, world.ground_truth)
    text = capsys.readouterr().out
    assert "mean IoU" in text and "index.html" in text and f"of {len(result['questions'])} right" in text
    for q in result["questions"]:
        assert q["gt_answer"][:25] in text


def test_missing_model_folder_exits_2_with_one_line(tmp_path, capsys):
    missing = tmp_path / "no_model"
    assert main(["demo", "--out", str(tmp_path / "out"), "--model", str(missing), "--json"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()[-1]
    assert str(missing) in err and err.startswith("regionlm: error:") and captured.out == ""
    assert not (tmp_path / "out").exists()  # failed before any work


def test_missing_default_model_is_a_one_line_error_not_a_fallback(tmp_path, capsys, monkeypatch):
    import regionlm.api

    monkeypatch.setattr(regionlm.api, "DEFAULT_MODEL_DIR", tmp_path / "default_model")
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no default model" in err and "--model" in err
