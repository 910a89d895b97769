"""The main job on the command line: `regionlm ask`, `regionlm describe`, `regionlm track` with the model backend,
their one-line errors, and the Python API. A tiny untrained model: the text is garbage, the shapes are not."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from regionlm.ask_cli import parse_option, question_prompt, split_options
from regionlm.cli import main
from regionlm.eval.metrics.multiple_choice import ANSWER_SUFFIX
from regionlm.objects.base import ObjectsResult, ObjectTrack
from regionlm.objects.io import BoxTrack, draw_objects, read_objects_json, write_objects_json
from regionlm.video import write_video
from regionlm.world import WorldConfig, make_video

TINY_VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
               "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
MAX_REGIONS = 2
BOX = "box:10,10,30,30@0"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
    from regionlm.model.processing import RegionLMProcessor
    from regionlm.model.tokenizer import train_tokenizer, world_corpus

    tok = train_tokenizer(world_corpus(2), vocab_size=512)
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tok), "tie_word_embeddings": True}
    cfg = RegionLMConfig(region_encoder="token_mark", vision_config=dict(TINY_VISION), text_config=text,
                         num_frames=4, max_regions=MAX_REGIONS)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    RegionLMForConditionalGeneration(cfg).save_pretrained(folder)
    RegionLMProcessor(tok, cfg).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def video(tmp_path_factory):
    """An 8-frame 64x64 RegionWorld video (mp4)."""
    _, r, _ = make_video(0, "test", 0, WorldConfig(frames=8, size=64))
    path = tmp_path_factory.mktemp("video") / "world.mp4"
    write_video(path, r.frames, fps=8)
    return str(path)


@pytest.fixture(scope="session")
def frame_folder(tmp_path_factory):
    from PIL import Image

    _, r, _ = make_video(0, "test", 1, WorldConfig(frames=8, size=64))
    folder = tmp_path_factory.mktemp("frames")
    for t, f in enumerate(r.frames):
        Image.fromarray(f).save(folder / f"{t:03d}.png")
    return str(folder)


def run_json(capsys, argv) -> dict:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1  # one JSON object, nothing else on stdout
    return json.loads(out)


# ------------------------------------------------------------------ ask / describe


def test_ask_json(capsys, video, model_dir):
    q = "What is <region> doing? (A) moving right (B) standing still"
    out = run_json(capsys, ["ask", video, q, "--region", BOX, "--model", model_dir])
    assert set(out) == {"video", "question", "regions", "answer", "option", "model", "seconds", "note"}
    assert out["note"] is None  # the tiny model has no training record: nothing to say about the video
    assert out["video"] == video and out["question"] == q and out["regions"] == [BOX]
    assert isinstance(out["answer"], str) and out["model"] == model_dir and out["seconds"] >= 0
    # the options are ranked by the model: the answer is one of them, in full
    assert out["answer"] in ("(A) moving right", "(B) standing still") and out["option"] == out["answer"][1]


def test_ask_two_regions_frame_folder_and_plain_text(capsys, frame_folder, model_dir):
    out = run_json(capsys, ["ask", frame_folder, "Is <region> bigger than <region>?", "--region", BOX,
                            "--region", "point:40,40@3", "--model", model_dir])
    assert out["regions"] == [BOX, "point:40,40@3"] and out["option"] is None  # no options in the question
    assert main(["ask", frame_folder, "How many objects are there?", "--model", model_dir]) == 0  # no region
    assert not capsys.readouterr().out.startswith("{")  # without --json: the answer as text


def test_describe_json(capsys, video, model_dir):
    out = run_json(capsys, ["describe", video, "--region", "box:5,5,60,60@2", "--model", model_dir])
    assert set(out) == {"video", "region", "description", "region_propagation", "model", "seconds", "note"}
    assert out["region"] == "box:5,5,60,60@2" and isinstance(out["description"], str)
    assert out["region_propagation"] == "classical"
    out = run_json(capsys, ["describe", video, "--region", "box:5,5,60,60@2", "--model", model_dir,
                            "--region-propagation", "off"])
    assert out["region_propagation"] == "off"


def test_ask_and_describe_a_real_video_with_the_shipped_model(capsys):
    """A real 960x540 mp4 and the shipped model's 8 frames of 64x64: the region masks are resized at a
    non-integer scale, 8 frames at once (once an OpenCV assertion: it takes at most 4 there)."""
    from shared_data import real

    path = str(real("bedroom.mp4"))
    q = "What is <region> doing? (A) moving right (B) standing still"
    out = run_json(capsys, ["ask", path, q, "--region", "box:100,100,300,300@0"])
    assert out["answer"] in ("(A) moving right", "(B) standing still")
    assert "trained on 64x64 RegionWorld videos only; this video is 960x540" in out["note"]  # said, not hidden
    out = run_json(capsys, ["describe", path, "--region", "box:100,100,300,300@150"])
    assert isinstance(out["description"], str) and out["description"]


def test_a_video_unlike_the_training_videos_gets_a_note(capsys, video, model_dir, tmp_path):
    import shutil

    from regionlm.api import trained_world_size

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    assert trained_world_size(folder) is None  # no train_config.json
    for record, size in [({"data": {"source": "world", "world": {"size": 32}}}, 32),
                         ({"data": {"source": "world"}}, 64),  # the world's default size
                         ({"data": {"source": "toy"}}, None), ({"data": None}, None)]:
        (folder / "train_config.json").write_text(json.dumps(record))
        assert trained_world_size(folder) == size, record
    (folder / "train_config.json").write_text("{not json")
    assert trained_world_size(folder) is None  # an unreadable record stops nothing
    (folder / "train_config.json").write_text(json.dumps({"data": {"source": "world", "world": {"size": 32}}}))
    assert main(["ask", video, "What is <region>?", "--region", BOX, "--model", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "trained on 32x32 RegionWorld videos only; this video is 64x64 (WxH)" in err
    out = run_json(capsys, ["describe", video, "--region", BOX, "--model", str(folder)])
    assert "32x32" in out["note"]
    (folder / "train_config.json").write_text(json.dumps({"data": {"source": "world", "world": {"size": 64}}}))
    assert run_json(capsys, ["track", video, "--region", "box:10,10,30,30@2", "--model", str(folder)])["note"] is None


def test_options_are_asked_in_the_training_form_and_read_back():
    q = "What is <region> doing? (A) moving right (B) standing still."
    assert split_options(q) == ("What is <region> doing?", ["(A) moving right", "(B) standing still"])
    assert question_prompt(q) == "What is [<region>] doing? (A) moving right (B) standing still" + ANSWER_SUFFIX
    assert question_prompt("What is <region> doing?") == "What is <region> doing?"
    assert split_options("Is (B) here? (A) yes")[1] == []  # one option is not a choice
    assert parse_option(q, "(B) standing still") == "B"
    assert parse_option(q, "The answer is A") == "A"
    assert parse_option(q, "(C) flying") is None  # not one of the options
    assert parse_option("What is <region> doing?", "(A) x") is None


# ------------------------------------------------------------------ track with the model


def test_track_model_region_json_and_tracks_file(capsys, video, model_dir, tmp_path):
    out_file = tmp_path / "tracks.json"
    out = run_json(capsys, ["track", video, "--region", "box:10,10,30,30@2", "--model", model_dir,
                            "--out", str(out_file)])
    assert set(out) == {"video", "backend", "region", "sot_mode", "outline", "boxes", "out", "render", "model",
                        "seconds", "note"}
    assert out["backend"] == "model" and out["region"] == "box:10,10,30,30@2" and out["render"] is None
    assert out["sot_mode"] == "generate" and not out["outline"]  # auto: this folder has no pointer head
    boxes = out["boxes"]
    assert len(boxes) == 8 and boxes[0] is None and boxes[1] is None  # frames before the region's frame
    assert boxes[2] == [10, 10, 30, 30]  # the given box
    for b in boxes[2:]:
        assert b is None or (len(b) == 4 and 0 <= b[0] < b[2] <= 64 and 0 <= b[1] < b[3] <= 64)
    result = read_objects_json(out["out"])  # box-only frames pass the schema check
    track = result.objects[0]
    assert isinstance(track.masks, BoxTrack)
    assert sorted(track.masks) == [t for t, b in enumerate(boxes) if b is not None]
    doc = json.loads(out_file.read_text())
    assert all(set(e) == {"box"} for e in doc["objects"][0]["frames"].values())


def test_track_sot_mode_point_needs_a_pointer_head(capsys, video, model_dir):
    assert main(["track", video, "--region", "box:10,10,30,30@2", "--model", model_dir, "--sot-mode", "point"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no pointer_head.safetensors" in err and len(err.splitlines()) == 1


def test_track_model_expression_and_render(capsys, frame_folder, model_dir, tmp_path):
    render = tmp_path / "track.mp4"
    out = run_json(capsys, ["track", frame_folder, "--expression", "the small red star", "--model", model_dir,
                            "--out", str(tmp_path / "t.json"), "--render", str(render)])
    assert out["expression"] == "the small red star" and "region" not in out
    assert out["rsot_mode"] == "generate" and "sot_mode" not in out  # a model folder without the heads
    assert len(out["boxes"]) == 8 and out["render"] == str(render)
    assert render.stat().st_size > 0
    assert read_objects_json(out["out"]).objects[0].label == "the small red star"


def test_box_tracks_and_empty_masks_render():
    frame = np.zeros((32, 32, 3), np.uint8)
    boxes = ObjectTrack(1, "star", 1.0, BoxTrack({0: [2.5, 3, 20, 18.25]}))
    lost = ObjectTrack(2, "object", 1.0, {0: np.zeros((32, 32), bool)})  # a plain dict with an empty mask
    drawn = draw_objects(frame, 0, [boxes, lost])
    assert drawn.shape == frame.shape and drawn.any()
    assert (draw_objects(frame, 1, [boxes, lost]) == frame).all()  # no box on that frame


def test_box_track_round_trip(tmp_path):
    result = ObjectsResult("v.mp4", 32, 32, 3, [ObjectTrack(1, "x", 1.0, BoxTrack({0: [1, 2, 10.5, 12], 2: None}))])
    path = write_objects_json(tmp_path / "t.json", result)
    back = read_objects_json(path).objects[0].masks
    assert isinstance(back, BoxTrack) and dict(back) == {0: [1.0, 2.0, 10.5, 12.0]}


# ------------------------------------------------------------------ errors


def bad_cases(d):
    v, m = d["video"], d["model"]
    return [
        (["ask", "missing.mp4", "What is <region>?", "--region", BOX, "--model", m], "not found"),
        (["ask", v, "What is <region>?", "--region", "box:70,10,90,30@0", "--model", m], "outside the 64x64"),
        (["ask", v, "What is <region>?", "--region", "box:-20,-20,0,10@0", "--model", m], "--region box:-20"),
        (["ask", v, "What is <region>?", "--region", "box:10,10,30,30@8", "--model", m], "past the end"),
        (["ask", v, "What is <region>?", "--region", "point:99,5@0", "--model", m], "outside"),
        (["ask", v, "What is <region>?", "--region", "box:1,2@0", "--model", m], "needs 4 numbers"),
        (["ask", v, "Is <region> near <region>?", "--region", BOX, "--model", m], "2 <region> placeholder"),
        (["ask", v, "What is it?", "--region", BOX, "--model", m], "0 <region> placeholder"),
        (["ask", v, " ".join(["<region>"] * 3), *["--region", BOX] * 3, "--model", m], "at most 2"),
        (["ask", v, "What is <region>?", "--region", BOX, "--model", d["nowhere"]], "no such folder"),
        (["ask", v, "What is <region>?", "--region", BOX, "--model", d["not_model"]], "no config.json"),
        (["ask", v, "What is <region>?", "--region", BOX], "no default model"),
        (["ask", v, "What is <region>?", "--region", BOX, "--loop-stop", "maybe", "--model", m],
         "--loop-stop must be on or off"),
        (["describe", v, "--model", m], "exactly one --region"),
        (["describe", v, "--region", BOX, "--region", BOX, "--model", m], "exactly one --region"),
        (["describe", v, "--region", "box:64,0,80,10@0", "--model", m], "outside"),
        (["describe", v, "--region", BOX, "--region-propagation", "sam2", "--model", m],
         "--region-propagation must be one of off, classical"),
        (["track", v, "--model", m], "exactly one of --region"),
        (["track", v, "--region", BOX, "--expression", "the star", "--model", m], "exactly one of --region"),
        (["track", v, "--region", BOX, "--region", BOX, "--model", m], "one --region"),
        (["track", v, "--expression", "  ", "--model", m], "--expression is empty"),
        (["track", v, "--region", "box:0,70,10,90@0", "--model", m], "outside"),
        (["track", v, "--region", BOX, "--segmenter", "x", "--model", m], "needs none"),
        (["track", v, "--expression", "the star", "--backend", "hf"], "--expression works with --backend model or classical"),
        (["track", v, "--region", BOX, "--backend", "classical", "--model", m], "--model works only"),
        (["track", v, "--region", BOX, "--backend", "sam9"], "unknown; available: model"),
    ]


@pytest.mark.parametrize("case", range(26))
def test_bad_input_exits_2_with_one_line(case, capsys, video, model_dir, tmp_path, monkeypatch):
    import regionlm.api

    monkeypatch.setattr(regionlm.api, "DEFAULT_MODEL_DIR", tmp_path / "no_model")
    (tmp_path / "not_model").mkdir()
    d = {"video": video, "model": model_dir, "nowhere": str(tmp_path / "nowhere"),
         "not_model": str(tmp_path / "not_model")}
    cases = bad_cases(d)
    assert len(cases) == 26
    argv, words = cases[case]
    out = tmp_path / "t.json"
    if argv[0] == "track":
        argv = [*argv, "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("regionlm: error:") and words in err, err
    assert captured.out == "" and not out.exists()


def test_bad_model_folder_from_a_subprocess(video, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "regionlm", "describe", video, "--region", BOX, "--model",
                           str(tmp_path / "nowhere"), "--json"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"regionlm: error: --model {tmp_path / 'nowhere'}: no such folder"]


# ------------------------------------------------------------------ Python API


def test_python_api(video, model_dir):
    from regionlm import RegionLM

    m = RegionLM.load(model_dir)
    assert isinstance(m.ask(video, "What is <region> doing?", [BOX]), str)
    assert isinstance(m.describe(video, BOX), str)
    from regionlm.errors import RegionError

    with pytest.raises(RegionError, match="at most 2"):
        m.ask(video, "<region> <region> <region>", [BOX] * 3)
    with pytest.raises(RegionError, match="outside"):
        m.describe(video, "box:500,500,600,600@0")
    with pytest.raises(RegionError, match="past the end"):
        m.track(video, region="box:1,1,20,20@99")
