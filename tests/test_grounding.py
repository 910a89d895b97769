"""Referring tracking by grounding (regionlm.model.grounding): the object pipeline's tracks as candidates, the
model's likelihood of the expression as each one's referring expression (+ the pipeline's log prior) picks one.
The plumbing with a scripted scorer, the whole path with a tiny random model, the CLI and the eval option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from regionlm.cli import main
from regionlm.eval.benchmarks import get_benchmark
from regionlm.eval.benchmarks.base import BenchmarkOptions
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.grounding import (PRIOR_WEIGHT, SMALL_AREA, VIEW_MODE, Candidate, TracksCache, candidate_example,
                                      expression_likelihoods, ground, log_prior, single_views)
from regionlm.model.inference import RegionLMSystem
from regionlm.model.processing import RegionLMProcessor
from regionlm.model.tokenizer import train_tokenizer, world_corpus
from regionlm.regions import mask_to_box, rle_to_mask
from regionlm.world import generate_split

TINY_VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
               "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


class ScriptedScorer:
    """Scores a reg Example by a fixed number per candidate, found by the top row of the mask it shows."""

    num_frames = 4

    def __init__(self, by_row: dict):
        self.by_row, self.seen = by_row, []

    def answer_logprobs(self, examples):
        out = []
        for ex in examples:
            assert ex.task == "reg" and ex.answer == "the red star" and ex.prompt.count("<region>") == 1
            region = ex.regions[0]
            t = int(np.flatnonzero(region.given)[0])
            y = int(np.argwhere(region.masks[t])[0][0])
            self.seen.append((y, int(region.given.sum())))
            out.append(self.by_row[y])
        return out


def square_track(n: int, y: int, x: int, frames=None) -> np.ndarray:
    masks = np.zeros((n, 32, 32), bool)
    for t in range(n) if frames is None else frames:
        masks[t, y:y + 4, x + t:x + t + 4] = True
    return masks


def test_ground_picks_the_best_likelihood_plus_log_prior():
    frames = np.zeros((8, 32, 32, 3), np.uint8)
    a, b, c = square_track(8, 2, 2), square_track(8, 20, 2), square_track(8, 10, 10, frames=[])  # c: never seen
    scorer = ScriptedScorer({2: -3.0, 20: -2.0})
    g = ground(scorer, frames, "the red star", [a, b, c])
    assert g.index == 1 and g.scores[2] == -np.inf
    # each shown on one sampled frame at a time (4 views each), its likelihood the mean over the views
    assert [s[1] for s in scorer.seen] == [1] * 8 and g.likelihoods[:2] == pytest.approx([-3.0, -2.0])
    scorer = ScriptedScorer({2: -3.0, 20: -2.0})
    assert ground(scorer, frames, "the red star", [a, b], views="joint").index == 1
    assert [s[1] for s in scorer.seen] == [4, 4]  # every sampled frame at once
    with pytest.raises(ValueError, match="views"):
        ground(scorer, frames, "the red star", [a], views="both")
    boxes = g.boxes()
    assert len(boxes) == 8 and boxes[3] == [5.0, 20.0, 9.0, 24.0] == list(map(float, mask_to_box(b[3])))
    # the pipeline's prior: b is likelier text-wise, but the pipeline barely believes it is an object
    g = ground(scorer, frames, "the red star", [Candidate(a, 0.9), Candidate(b, 0.1)])
    assert g.index == 0 and g.scores[1] == pytest.approx(-2.0 + PRIOR_WEIGHT * np.log(0.1))
    # a fragment (1 pixel of 1024 where it is seen, under SMALL_AREA of the frame) is penalised in proportion
    speck = np.zeros_like(b)
    speck[:, 20, 2] = True
    assert log_prior(Candidate(speck, 1.0)) == pytest.approx(np.log(1 / 1024 / SMALL_AREA))
    assert log_prior(Candidate(b, 1.0)) == 0.0  # 16 of 1024 pixels: no penalty
    scorer = ScriptedScorer({2: -3.0, 20: -2.0})
    assert ground(scorer, frames, "the red star", [a, speck]).index == 0
    # an object on none of the sampled frames is shown on frames of its own
    late = square_track(8, 12, 2, frames=[0])  # frames 1, 3, 4, 6 are sampled
    scorer = ScriptedScorer({12: -1.0, 20: -2.0})
    assert ground(scorer, frames, "the red star", [late, b]).index == 0 and scorer.seen[0] == (12, 1)
    # nothing to choose from
    assert ground(scorer, frames, "the red star", []).index is None
    nothing = ground(scorer, frames, "the red star", [c])
    assert nothing.index is None and nothing.boxes() == [None] * 8


def test_the_likelihood_over_views_is_their_mean_probability():
    class ByFrame:  # the view on the first given frame is much likelier than the others
        def answer_logprobs(self, examples):
            return [-1.0 if int(np.flatnonzero(ex.regions[0].given)[0]) == 0 else -5.0 for ex in examples]

    frames = np.zeros((4, 32, 32, 3), np.uint8)
    ex = candidate_example(frames, square_track(4, 2, 2), [0, 1, 2, 3])
    assert [v.regions[0].given.tolist() for v in single_views(ex)] == [[True, False, False, False],
                                                                      [False, True, False, False],
                                                                      [False, False, True, False],
                                                                      [False, False, False, True]]
    got = expression_likelihoods(ByFrame(), [ex, ex], views="each")
    assert got == pytest.approx([np.log((np.exp(-1.0) + 3 * np.exp(-5.0)) / 4)] * 2)
    assert expression_likelihoods(ByFrame(), [ex], views="joint") == [-1.0]


def test_candidate_example_and_tracks_cache():
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    track = square_track(8, 2, 2, frames=[1, 5])
    ex = candidate_example(frames, track, [0, 2, 4, 5])
    assert ex.regions[0].given.tolist() == [False, False, False, True] and ex.prompt.count("<region>") == 1
    assert candidate_example(frames, track, [0, 2, 4, 6]) is None
    calls = []

    def objects(fr):
        calls.append(len(fr))
        return [track]

    cache = TracksCache(objects, size=1)
    first = cache(frames)
    assert cache(frames.copy()) is first and calls == [4]  # the same frames: the pipeline ran once
    cache(frames + 1)
    cache(frames)
    assert calls == [4, 4, 4] and isinstance(first[0], Candidate) and first[0].prior == 1.0


# ------------------------------------------------------------------ a tiny model, whole path


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(world_corpus(2), vocab_size=512)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_split(out, "test", 1, seed=0, progress=False)
    return out


def tiny(tokenizer, **kw) -> RegionLMSystem:
    torch.manual_seed(0)
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "tie_word_embeddings": True}
    cfg = RegionLMConfig(region_encoder="mask_pool", vision_config=dict(TINY_VISION), text_config=text,
                         num_frames=4)
    return RegionLMSystem(RegionLMForConditionalGeneration(cfg), RegionLMProcessor(tokenizer, cfg), **kw)


def true_tracks(world, video: str, first: int) -> list:
    """The video's ground-truth objects as candidate tracks, from frame ``first`` on."""
    gt = json.loads((world / "ground_truth.json").read_text())
    rec = next(v for v in gt["videos"] if v["video"] == video)
    tracks = []
    for obj in rec["objects"]:
        masks = np.stack([rle_to_mask(f["segmentation"]) if f.get("segmentation") else np.zeros((64, 64), bool)
                          for f in obj["frames"]])
        tracks.append(masks[first:])
    return tracks


def test_rsot_by_grounding_returns_a_candidate_track(world, tokenizer):
    bench = get_benchmark("world-rsot")(BenchmarkOptions(data=world))
    track = bench.load()[0]
    sample = track.sample
    rec = json.loads((world / "rsot.jsonl").read_text().splitlines()[0])
    cands = true_tracks(world, rec["video"], rec["init_frame"])
    system = tiny(tokenizer, rsot_mode="ground", tracks_fn=lambda frames: cands)
    assert system.config["rsot_mode"] == "ground"
    boxes = system.track(sample)
    assert len(boxes) == sample.num_frames
    as_xywh = lambda m: None if not m.any() else [float(v) for v in mask_to_box(m)]  # noqa: E731
    options = [[None if b is None else [b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in map(as_xywh, t)]
               for t in cands]
    got = [None if b is None else [float(v) for v in b] for b in boxes]
    assert got in options  # exactly one candidate's boxes
    # with one candidate, that candidate
    only = tiny(tokenizer, rsot_mode="ground", tracks_fn=lambda frames: cands[:1])
    assert [None if b is None else [float(v) for v in b] for b in only.track(sample)] == options[0]
    # a box-seeded sample still goes through the model's own tracking
    sot = get_benchmark("world-sot")(BenchmarkOptions(data=world)).load()[0].sample
    assert len(only.track(sot)) == sot.num_frames
    with pytest.raises(Exception, match="rsot_mode"):
        tiny(tokenizer, rsot_mode="boxes")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("model")
    sys_ = tiny(tokenizer)
    sys_.model.save_pretrained(folder)
    sys_.processor.save_pretrained(folder)
    return folder


def test_track_cli_expression_with_the_classical_backend(world, model_dir, tmp_path, capsys):
    video = next((world / "videos").glob("*.mp4"))
    out = tmp_path / "tracks.json"
    code = main(["track", str(video), "--expression", "the red star", "--backend", "classical", "--model",
                 str(model_dir), "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["expression"] == "the red star" and summary["backend"] == "classical" and summary["note"] is None
    assert len(summary["candidates"]) >= 2 and summary["picked"] in [c["pipeline_id"] for c in summary["candidates"]]
    best = max(summary["candidates"], key=lambda c: -np.inf if c["score"] is None else c["score"])
    assert best["pipeline_id"] == summary["picked"]
    objs = json.loads(out.read_text())["objects"]
    assert len(objs) == 1 and objs[0]["label"] == "the red star" and len(objs[0]["frames"]) == summary["frames"] > 0
    for args, words in [(["--backend", "hf", "--segmenter", str(tmp_path)], "classical"),
                        (["--backend", "classical", "--region", "box:1,1,9,9@0"], "not both"),
                        (["--backend", "classical", "--expression", " "], "empty")]:
        argv = ["track", str(video), "--out", str(tmp_path / "x.json"), "--model", str(model_dir)] + args
        if "--expression" not in args:
            argv += ["--expression", "the red star"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert main(["track", str(tmp_path / "missing.mp4"), "--expression", "the red star", "--backend", "classical",
                 "--model", str(model_dir)]) == 2
    assert not (tmp_path / "x.json").exists()


def test_eval_rsot_mode_option(world, model_dir, tmp_path):
    code = main(["eval", "--benchmark", "world-rsot", "--data", str(world), "--model", str(model_dir), "--out",
                 str(tmp_path / "g"), "--limit", "1", "--rsot-mode", "ground", "--json"])
    assert code == 0
    run = json.loads((tmp_path / "g" / "run.json").read_text())["system"]
    assert run["rsot_mode"] == "ground"
    # the prior's terms are part of the run: a cache of picks made with other terms is not reused
    assert run["grounding_prior"] == {"weight": PRIOR_WEIGHT, "small_area": SMALL_AREA, "views": VIEW_MODE}
    run["grounding_prior"]["weight"] = 1.0
    (tmp_path / "g" / "run.json").write_text(json.dumps({"benchmark": "world-rsot", "system": run}))
    assert main(["eval", "--benchmark", "world-rsot", "--data", str(world), "--model", str(model_dir), "--out",
                 str(tmp_path / "g"), "--limit", "1", "--rsot-mode", "ground", "--json"]) == 2
    assert main(["eval", "--benchmark", "world-rsot", "--data", str(world), "--model", str(model_dir), "--out",
                 str(tmp_path / "b"), "--rsot-mode", "boxes"]) == 2


def test_api_track_by_expression_grounds_among_the_pipeline_tracks(world, model_dir):
    from regionlm import RegionLM
    from regionlm.model.grounding import pipeline_objects
    from regionlm.video import VideoReader

    video = next((world / "videos").glob("*.mp4"))
    model = RegionLM.load(model_dir, progress=False, rsot_mode="ground")
    boxes = model.track(video, expression="the red star")
    with VideoReader(video) as reader:
        frames = reader.get_frames(list(range(reader.num_frames)))
    options = [[None if not m.any() else [float(v) for v in mask_to_box(m)] for m in c.masks]
               for c in pipeline_objects(frames)]
    xyxy = [None if b is None else [float(b[0]), float(b[1]), float(b[0] + b[2]), float(b[1] + b[3])] for b in boxes]
    assert len(boxes) == len(frames) and xyxy in options
