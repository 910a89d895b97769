"""The shipped default model (regionlm/assets/default_model): it loads, answers about a freshly generated video
through the Python API and the CLI in the trained answer forms (its measured quality is in benchmarks/default_model.py
and docs/RESULTS.md; this guards against shipping a broken model)."""

from __future__ import annotations

import json

import pytest

from regionlm import RegionLM
from regionlm.api import DEFAULT_MODEL_DIR
from regionlm.cli import main
from regionlm.eval.benchmarks import get_benchmark
from regionlm.eval.benchmarks.base import BenchmarkOptions
from regionlm.eval.metrics.multiple_choice import extract_choice
from regionlm.world import generate_split


@pytest.fixture(scope="module")
def model():
    return RegionLM.load()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_split(out, "test", 4, seed=977, progress=False)  # a seed no training run uses
    return out


def test_the_shipped_model_is_small_safetensors_only():
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()}
    assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files
    assert not [n for n in files if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert sum(files.values()) <= 60 * 2**20


def test_region_questions_get_one_of_the_options(model, world):
    bench = get_benchmark("world-q")(BenchmarkOptions(data=world))
    items = bench.load()[:24]
    samples = [s for s in bench.samples(items) if "@" not in s.id]
    answers = model.system.answer_many(samples)
    letters = [extract_choice(a) for a in answers]
    # every answer picks one of its question's options, in the trained form "(X) option text"
    for a, letter, rec in zip(answers, letters, items):
        assert letter is not None and ord(letter) - ord("A") < len(rec["options"]), (a, rec["options"])
        assert a.startswith(f"({letter})"), a


def test_ask_describe_track_on_a_generated_video(model, world):
    video = next(world.glob("videos/*.mp4"))
    answer = model.ask(video, "What colour is <region>?", regions=["box:8,8,40,40@0"])
    assert isinstance(answer, str) and answer
    assert model.describe(video, "box:8,8,40,40@0")
    boxes = model.track(video, region="box:8,8,40,40@0")
    assert len(boxes) == 16 and boxes[0] is not None


def test_cli_uses_the_shipped_model_by_default(world, capsys):
    video = next(world.glob("videos/*.mp4"))
    assert main(["ask", str(video), "Where is <region> going?", "--region", "box:8,8,40,40@0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] and out["model"].endswith("default_model")


def test_the_shipped_model_grounds_expressions_among_the_true_objects(model, world):
    """Referring tracking by grounding, with the true objects as the candidates: the shipped model must pick the
    named object far above chance (it picked 70% right on 120 held-out sequences; chance is ~1 in 4.5)."""
    import numpy as np

    from regionlm.model.grounding import ground
    from regionlm.regions import rle_to_mask
    from regionlm.video import VideoReader

    gt = {v["video"]: v for v in json.loads((world / "ground_truth.json").read_text())["videos"]}
    right = total = 0
    for line in (world / "rsot.jsonl").read_text().splitlines():
        rec = json.loads(line)
        video = gt[rec["video"]]
        first = rec["init_frame"]
        with VideoReader(world / rec["video"]) as reader:
            frames = reader.get_frames(list(range(first, reader.num_frames)))
        tracks, ids = [], []
        for obj in video["objects"]:
            masks = np.stack([rle_to_mask(f["segmentation"]) if f.get("segmentation") else np.zeros((64, 64), bool)
                              for f in obj["frames"]])[first:]
            tracks.append(masks)
            ids.append(int(obj["id"]))
        picked = ground(model.system, frames, rec["expression"], tracks)
        right += ids[picked.index] == int(rec["object_id"])
        total += 1
    print(f"grounded {right} of {total}")
    assert total >= 8 and right >= total / 2, (right, total)


def test_configs_default_yaml_is_the_shipped_models_recipe():
    """The shipped weights were trained by configs/default.yaml: everything that shapes a run's trajectory (model,
    data, stages, batch, seed, ...) is the same as in the train_config.json saved beside them."""
    from pathlib import Path

    from regionlm.train.config import TrainConfig, load_config, with_defaults

    repo = Path(__file__).resolve().parents[1]
    recipe = load_config(repo / "configs" / "default.yaml").to_dict()
    # options added since it was trained are compared at their defaults, as --resume does
    saved = with_defaults(json.loads((DEFAULT_MODEL_DIR / "train_config.json").read_text()))
    for key in TrainConfig.TRAJECTORY_KEYS:
        assert recipe.get(key) == saved.get(key), key
