"""Inference: the eval System on benchmark Samples, the clip protocol for long videos, the user API, loading."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from regionlm.errors import RegionError, RegionLMError
from regionlm.eval.benchmarks import get_benchmark
from regionlm.eval.benchmarks.base import BenchmarkOptions, Sample
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.inference import (FrameSource, RegionLMSystem, clip_starts, load_eval_system,
                                      nearest_positions, weights_fingerprint)
from regionlm.model.processing import RegionLMProcessor
from regionlm.model.tokenizer import train_tokenizer, world_corpus
from regionlm.regions import box_to_ints, mask_to_box, mask_to_rle
from regionlm.world import generate_split

TINY_VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
               "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(world_corpus(2), vocab_size=512)


def tiny(tokenizer, region_encoder="token_mark", **kw) -> RegionLMSystem:
    torch.manual_seed(0)
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "tie_word_embeddings": True}
    cfg = RegionLMConfig(region_encoder=region_encoder, vision_config=dict(TINY_VISION), text_config=text,
                         num_frames=4)
    return RegionLMSystem(RegionLMForConditionalGeneration(cfg), RegionLMProcessor(tokenizer, cfg), **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_split(out, "test", 1, seed=0, progress=False)
    return out


def first_sample(world: Path, name: str) -> Sample:
    bench = get_benchmark(name)(BenchmarkOptions(data=world))
    return bench.samples(bench.load())[0]


# ---------------------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize("n,length,overlap", [(1, 4, 1), (4, 4, 1), (5, 4, 1), (16, 4, 1), (17, 8, 3), (9, 3, 0),
                                              (100, 16, 4)])
def test_clip_starts_cover_every_frame_with_the_overlap(n, length, overlap):
    starts = clip_starts(n, length, overlap)
    assert starts[0] == 0
    covered = set()
    for k, s in enumerate(starts):
        covered |= set(range(s, min(s + length, n)))
        if n >= length:
            assert s + length <= n  # every clip has the trained length
        if k:
            assert starts[k - 1] + length - s >= overlap  # consecutive clips share at least `overlap` frames
            assert s > starts[k - 1]
    assert covered == set(range(n))
    assert min(starts[-1] + length, n) == n
    with pytest.raises(RegionLMError):
        clip_starts(10, 4, 4)


def test_frame_source_decodes_a_video_file_once_and_sees_it_change(world, tmp_path, monkeypatch):
    """Video files' frames are cached across FrameSources (several questions per video); the cache hands out
    copies, and a file that changes (size or modification time) is read again."""
    import os
    import shutil

    from regionlm.model import inference
    from regionlm.video import VideoReader, write_video

    videos = sorted((world / "videos").glob("*.mp4"))
    path = tmp_path / "v.mp4"
    shutil.copy(videos[0], path)
    monkeypatch.setattr(inference, "_FRAMES", inference._FrameCache())
    opened = []

    class Counting(VideoReader):
        def __init__(self, *a, **k):
            opened.append(a[0])
            super().__init__(*a, **k)

    monkeypatch.setattr(inference, "VideoReader", Counting)
    with VideoReader(path) as r:
        truth = r.get_frames(list(range(r.num_frames)))
    with FrameSource(path) as src:
        first = src.get([0, 3, 3, 5])
    assert np.array_equal(first, truth[[0, 3, 3, 5]]) and len(opened) == 1
    first[:] = 0  # the caller's copy: the cache keeps the frames
    with FrameSource(path, indices=[5, 3]) as src:
        assert src.num_frames == 2 and (src.height, src.width) == truth.shape[1:3]
        assert np.array_equal(src.get([1, 0]), truth[[3, 5]])
    assert len(opened) == 1  # no file opened: metadata and frames came from the cache
    with FrameSource(path) as src:
        assert np.array_equal(src.tail(1).get([0]), truth[[1]])  # a frame not cached yet: the file is opened
    assert len(opened) == 2
    # the file changes: the frames in reverse written over it, with another modification time
    write_video(path, truth[::-1], fps=8)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    with VideoReader(path) as r:
        other = r.get_frames([0])
    with FrameSource(path) as src:
        assert np.array_equal(src.get([0]), other) and not np.array_equal(other, truth[[0]])
    # a small budget keeps the most recent frames only
    cache = inference._FrameCache(max_bytes=2 * truth[0].nbytes)
    monkeypatch.setattr(inference, "_FRAMES", cache)
    with FrameSource(path) as src:
        src.get([0, 1, 2])
    assert len(cache.frames) == 2 and cache.nbytes == 2 * truth[0].nbytes


def test_nearest_positions():
    sampled = [0, 5, 10, 15]
    assert nearest_positions([0, 5], sampled) == {0: 0, 5: 1}
    assert nearest_positions([7], sampled) == {7: 1}
    assert nearest_positions([8], sampled) == {8: 2}
    # two annotated frames on one sampled frame: the nearer keeps it
    assert nearest_positions([4, 6], sampled) == {4: 1}
    assert nearest_positions([16, 99], sampled) == {16: 3}


class ScriptedSystem(RegionLMSystem):
    """The clip protocol with the model replaced by a script: answers come from ``reply(example, clip number)``."""

    def __init__(self, reply, num_frames, clip_overlap):
        self.num_frames, self.clip_overlap, self.max_new_tokens = num_frames, clip_overlap, 64
        self.rsot_mode, self.sot_mode = "generate", "generate"
        self.reply, self.asked = reply, []
        self.model = type("M", (), {"config": type("C", (), {"uses_objects": False})()})()

    def generate(self, examples, max_new_tokens=None):
        ex = examples[0]
        self.asked.append(ex)
        return [self.reply(ex, len(self.asked) - 1)]

    def _track_budget(self, n):
        return 64


def frames(n, size=100):
    return np.zeros((n, size, size, 3), np.uint8)


def test_clip_protocol_seeds_and_merges():
    # clip c answers, for its frame at position t: [10 + t, 10 + c, 50 + t, 50] (ints, i.e. percent of 100 px)
    def reply(ex, c):
        return "\n".join(f"Frame {j + 1}: [{10 + t},{10 + c},{50 + t},50]" for j, t in enumerate(ex.meta["positions"]))

    sys_ = ScriptedSystem(reply, num_frames=3, clip_overlap=1)
    boxes = sys_.track_frames(FrameSource(frames(7)), init_xyxy=[1, 2, 30, 40])
    assert [ex.meta["positions"] for ex in sys_.asked] == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    assert boxes[0] == [1, 2, 30, 40]  # the given box stays
    clip_of = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}  # a seed frame keeps the box it was seeded with
    for t, c in clip_of.items():
        assert boxes[t] == [10 + t, 10 + c, 50 + t, 50]
    # each clip is seeded, as a box region on its first frame, with the box of that frame
    for ex, t in zip(sys_.asked, (0, 2, 4)):
        assert ex.task == "sot" and np.flatnonzero(ex.regions[0].given).tolist() == [0]
        assert list(mask_to_box(ex.regions[0].masks[0])) == [round(v) for v in boxes[t]]

    # a larger overlap: the later clip's box wins on the shared frames after its seed frame
    sys_ = ScriptedSystem(reply, num_frames=4, clip_overlap=2)
    boxes = sys_.track_frames(FrameSource(frames(6)), init_xyxy=[1, 2, 30, 40])
    assert [ex.meta["positions"] for ex in sys_.asked] == [[0, 1, 2, 3], [2, 3, 4, 5]]
    assert boxes[2][1] == 10 and boxes[3][1] == 11 and boxes[5][1] == 11


def test_clip_protocol_lost_objects_and_junk():
    # clip 0 loses the object after its first frame; clip 1 is seeded with the latest box before its start
    def reply(ex, c):
        return "Frame 1: [10,10,20,20]" if c == 0 else "Frame 2: [30,30,40,40], Frame 9: [1,1,2,2]"

    sys_ = ScriptedSystem(reply, num_frames=3, clip_overlap=1)
    boxes = sys_.track_frames(FrameSource(frames(5)), init_xyxy=[10, 10, 20, 20])
    assert boxes == [[10, 10, 20, 20], None, None, [30, 30, 40, 40], None]  # Frame 9 is outside the clip
    assert list(mask_to_box(sys_.asked[1].regions[0].masks[0])) == [10, 10, 20, 20]

    junk = ScriptedSystem(lambda ex, c: "Frame 1: [5,5,1,1] Frame two: [..] ]]][[", num_frames=3, clip_overlap=1)
    assert junk.track_frames(FrameSource(frames(5)), init_xyxy=[1, 1, 9, 9]) == [[1, 1, 9, 9]] + [None] * 4

    # referring tracking: expression clips until a box is known, then box-seeded clips
    def refer(ex, c):
        return "nothing" if c == 0 else "Frame 1: [10,10,20,20]\nFrame 2: [11,10,21,20]\nFrame 3: [12,10,22,20]"

    sys_ = ScriptedSystem(refer, num_frames=3, clip_overlap=1)
    boxes = sys_.track_frames(FrameSource(frames(7)), expression="the red star")
    assert [ex.task for ex in sys_.asked] == ["rsot", "rsot", "sot"]
    assert "the red star" in sys_.asked[0].prompt
    assert boxes[:2] == [None, None] and boxes[2] == [10, 10, 20, 20] and boxes[4] == [12, 10, 22, 20]
    with pytest.raises(RegionLMError, match="box on the first frame or a referring expression"):
        sys_.track_frames(FrameSource(frames(3)))


# ---------------------------------------------------------------------------------------------------- a tiny model


def test_answers_are_strings_for_every_text_benchmark(world, tokenizer):
    sys_ = tiny(tokenizer, max_new_tokens=6)
    for name in ("world-q", "world-vqa", "world-d", "world-reg"):
        sample = first_sample(world, name)
        out = sys_.answer(sample)
        assert isinstance(out, str), name


def test_batched_answers_equal_one_by_one(world, tokenizer, tmp_path):
    """answer_many left-pads a batch: the greedy answers must not change (the eval runner batches with it)."""
    from regionlm.eval.runner import evaluate

    sys_ = tiny(tokenizer, max_new_tokens=6, choice_mode="generate")
    bench = get_benchmark("world-q")(BenchmarkOptions(data=world))
    samples = bench.samples(bench.load())[:6]
    assert len({len(sys_.processor([sys_._sample_example(s)], train=False)["input_ids"][0])
                for s in samples}) > 1  # prompts of different lengths: padding really happens
    assert sys_.answer_many(samples) == [sys_.answer(s) for s in samples]
    sys_.batch_size = 4  # the runner's chunks: 4 + 2, cached as they complete
    res = evaluate(bench, sys_, tmp_path / "q", limit=3, progress=False)
    cached = (tmp_path / "q" / "predictions.jsonl").read_text().splitlines()
    assert res["num_samples"] == 3 and len(cached) == len(bench.samples(bench.load()[:3]))


def test_rank_answers_the_option_the_model_finds_most_likely(world, tokenizer, tmp_path):
    """choice_mode="rank": every option is scored as the answer in one right-padded batch; each score must be the
    log-likelihood of that option alone (summed over its tokens and the end of turn), and the answer the best
    option, written out in full so that the benchmark's letter extraction reads it."""
    from regionlm.eval.metrics.multiple_choice import extract_choice

    sys_ = tiny(tokenizer)
    assert sys_.choice_mode == "rank" and sys_.config["choice_mode"] == "rank"
    padded = False
    for name in ("world-q", "world-vqa"):
        sample = first_sample(world, name)
        ex = sys_._sample_example(sample)
        scores = sys_.option_scores(ex, sample.options)
        padded |= len({len(sys_.processor.tokenizer(o)["input_ids"]) for o in sample.options}) > 1
        for option, score in zip(sample.options, scores):
            ex.answer = option
            batch = sys_.processor([ex], train=True)
            labels = batch.pop("labels")[0]
            with torch.no_grad():
                logp = torch.log_softmax(sys_.model(**batch).logits[0].float(), -1)
            want = sum(logp[t - 1, labels[t]].item() for t in range(1, len(labels)) if labels[t] != -100)
            assert score == pytest.approx(want, abs=1e-4)
        best = sample.options[int(np.argmax(scores))]
        assert sys_.answer(sample) == best and sys_.answer_many([sample, sample]) == [best, best]
        assert extract_choice(best) == best[1]
    assert padded  # options of different token lengths: the batch really was padded
    # the options share the video, regions and prompt: those go through the model once per question
    calls = []
    hook = sys_.model.vision_tower.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(kwargs["pixel_values"].shape[0]), with_kwargs=True)
    try:
        sys_.option_scores(sys_._sample_example(sample), sample.options)
    finally:
        hook.remove()
    assert calls == [sys_.num_frames] and len(sample.options) == 4
    # generate mode decodes greedily instead
    gen = tiny(tokenizer, max_new_tokens=6, choice_mode="generate")
    sample = first_sample(world, "world-q")
    assert gen.answer(sample) == gen.generate([gen._sample_example(sample)])[0]
    with pytest.raises(RegionLMError, match="choice_mode"):
        tiny(tokenizer, choice_mode="best")


@pytest.mark.parametrize("encoder", ["mask_pool", "object_tokens", "roi_box", "text_coords", "visual_marks"])
def test_ranking_with_the_shared_prompt_scores_as_whole_answers_do(world, tokenizer, encoder):
    """option_scores runs the prompt once and the options from its cache: the same log-likelihoods as scoring
    each option with its prompt in full, whatever the region encoder puts into the prompt."""
    sys_ = tiny(tokenizer, encoder)
    sample = first_sample(world, "world-q")
    ex = sys_._sample_example(sample)
    whole = sys_.answer_logprobs([dataclasses.replace(ex, answer=o) for o in sample.options])
    assert sys_.option_scores(ex, sample.options) == pytest.approx(whole, abs=1e-4)


@pytest.mark.parametrize("encoder", ["token_mark", "mask_pool", "text_coords"])
def test_questions_ranked_in_one_batch_score_as_one_by_one(world, tokenizer, encoder):
    """options_scores_many: the questions' prompts (of different lengths: left-padded) go through the model
    together, then every option from its own question's cache; the scores are option_scores' one by one, and
    answer_many (the eval runner's path) answers with them."""
    sys_ = tiny(tokenizer, encoder)
    bench = get_benchmark("world-q")(BenchmarkOptions(data=world))
    samples = bench.samples(bench.load())[:6]
    examples = [sys_._sample_example(s) for s in samples]
    lengths = {len(sys_.processor([dataclasses.replace(e, answer=None)], train=False)["input_ids"][0])
               for e in examples}
    assert len(lengths) > 1  # the batch is padded
    one = [sys_.option_scores(e, s.options) for e, s in zip(examples, samples)]
    many = sys_.options_scores_many(examples, [s.options for s in samples])
    assert [len(x) for x in many] == [len(s.options) for s in samples]
    for a, b in zip(one, many):
        assert b == pytest.approx(a, abs=1e-4)
    calls = []
    real = sys_.options_scores_many
    sys_.options_scores_many = lambda ex, opts: calls.append(len(ex)) or real(ex, opts)
    assert sys_.answer_many(samples) == [s.options[int(np.argmax(x))] for s, x in zip(samples, one)]
    assert calls == [len(samples)]


@pytest.mark.parametrize("encoder", ["token_mark", "mask_pool", "object_tokens", "roi_box", "text_coords",
                                     "visual_marks"])
def test_region_views_with_the_shared_head_score_as_whole_answers_do(world, tokenizer, encoder):
    """region_view_logprobs (grounding's views: one prompt and answer, different regions) runs the rows' common
    head once and each row's tail from its cache: the same log-likelihoods as answer_logprobs, whatever the
    encoder changes (region tokens, the video tokens, the prompt's text)."""
    from regionlm.model.example import Example, Region
    from regionlm.model.grounding import single_views
    from regionlm.model.prompts import build_prompt

    sys_ = tiny(tokenizer, encoder)
    frames = sys_._sample_example(first_sample(world, "world-q")).frames
    t, h, w = frames.shape[:3]
    views = []
    for y in (4, 30):  # two candidate squares, each on every frame, shown one frame at a time
        masks = np.zeros((t, h, w), bool)
        for j in range(t):
            masks[j, y:y + 12, 4 + 3 * j:16 + 3 * j] = True
        views += single_views(Example(task="reg", frames=frames, prompt=build_prompt("reg"), answer="the red star",
                                      regions=[Region(masks, np.ones(t, bool))]))
    lengths = []
    hook = sys_.model.language_model.register_forward_hook(
        lambda module, args, kwargs, out: lengths.append(tuple(kwargs["inputs_embeds"].shape[:2])),
        with_kwargs=True)
    try:
        shared = sys_.region_view_logprobs(views)
    finally:
        hook.remove()
    assert shared == pytest.approx(sys_.answer_logprobs(views), abs=1e-4)
    if encoder == "mask_pool":  # the video and the prompt up to the region: once, then a few tokens per row
        (one, head), (rows, tail) = lengths
        assert one == 1 and rows == len(views) == 2 * t and tail < 20 < head


def test_captions_use_beam_search(world, tokenizer):
    """Descriptions and referring expressions are decoded with ``caption_beams`` beams (batched as one by one);
    questions stay greedy."""
    bench = get_benchmark("world-d")(BenchmarkOptions(data=world))
    samples = bench.samples(bench.load())[:3]
    beam = tiny(tokenizer, max_new_tokens=12, choice_mode="generate")
    greedy = tiny(tokenizer, max_new_tokens=12, choice_mode="generate", caption_beams=1)
    assert beam.config["caption_beams"] == 3 and greedy.config["caption_beams"] == 1
    calls = []
    for system in (beam, greedy):
        original = system.model.generate

        def spy(*args, _original=original, **kwargs):
            calls.append(kwargs["num_beams"])
            return _original(*args, **kwargs)

        system.model.generate = spy
    assert beam.answer_many(samples) == [beam.answer(s) for s in samples]
    assert calls == [3] * 4
    greedy.answer_many(samples)
    question = first_sample(world, "world-q")
    beam.answer(question)
    beam.answer_many([question, samples[0]])  # mixed: one by one, each with its own decoding
    assert calls == [3] * 4 + [1, 1, 1, 3]
    with pytest.raises(RegionLMError, match="caption_beams"):
        tiny(tokenizer, caption_beams=0)


def test_batched_tracking_equals_one_by_one(world, tokenizer):
    sys_ = tiny(tokenizer, num_frames=4, max_new_tokens=8)
    sys_._track_budget = lambda n: 14  # random weights: keep the junk short
    for name in ("world-sot", "world-rsot"):
        bench = get_benchmark(name)(BenchmarkOptions(data=world))
        samples = bench.samples(bench.load())[:3]
        assert sys_.track_many(samples) == [sys_.track(s) for s in samples], name


@pytest.mark.parametrize("encoder", ["token_mark", "text_coords", "object_tokens"])
def test_track_gives_one_box_or_none_per_frame(world, tokenizer, encoder):
    sys_ = tiny(tokenizer, encoder, num_frames=4, max_new_tokens=8)
    sys_._track_budget = lambda n: 12  # random weights: keep the junk short
    sample = first_sample(world, "world-sot")
    sample = Sample(**{**sample.__dict__, "frame_indices": sample.frame_indices[:6], "num_frames": 6})
    boxes = sys_.track(sample)
    assert len(boxes) == 6
    assert boxes[0] == pytest.approx(list(sample.init_box))
    for b in boxes:
        assert b is None or (len(b) == 4 and b[2] > 0 and b[3] > 0)


def test_each_tracking_clip_is_told_its_first_box_as_text(world, tokenizer):
    """Clip 1 gets the user's box, clip k the box the model gave for its first frame (the previous clip's last),
    both as the region and as Elysium's ``Frame 1: [x1,y1,x2,y2]`` text."""
    from regionlm.model.inference import FrameSource, _TrackState

    sys_ = tiny(tokenizer, num_frames=4)
    video = np.zeros((7, 64, 64, 3), np.uint8)
    with FrameSource(video) as src:
        state = _TrackState(sys_, src, init_xyxy=[8, 16, 24, 40])
        first = state.next_example()
        assert first.prompt == "Track <region> in every frame. Frame 1: [12,25,37,62]"
        state.consume("Frame 1: [0,0,5,5]\nFrame 2: [10,10,20,20]\nFrame 3: [50,50,60,60]\nFrame 4: [25,50,75,75]")
        second = state.next_example()  # starts on frame 3, the last of clip 1 (overlap 1)
        assert state.pos[0] == 3 and second.prompt.endswith("Frame 1: [25,50,75,75]")


def test_rsot_and_the_eval_runner(world, tokenizer, tmp_path):
    from regionlm.eval.runner import evaluate

    sys_ = tiny(tokenizer, max_new_tokens=6, num_frames=8)
    sys_._track_budget = lambda n: 10
    bench = get_benchmark("world-rsot")(BenchmarkOptions(data=world))
    res = evaluate(bench, sys_, tmp_path / "rsot", limit=1, progress=False)
    assert res["num_samples"] == 1 and set(res["metrics"]) >= {"auc", "precision"}
    bench = get_benchmark("world-vqa")(BenchmarkOptions(data=world))
    res = evaluate(bench, sys_, tmp_path / "vqa", limit=1, progress=False)
    assert res["num_samples"] == 1 and 0 <= res["metrics"]["overall"] <= 100


def test_user_api(tokenizer):
    sys_ = tiny(tokenizer, max_new_tokens=5)
    video = np.random.default_rng(0).integers(0, 255, (10, 48, 64, 3), dtype=np.uint8)
    assert isinstance(sys_.ask(video, "What is <region> doing?", ["box:10,10,30,30@2"]), str)
    assert isinstance(sys_.ask(video, "How many objects are there?"), str)
    assert isinstance(sys_.describe(video, "point:20,20@9"), str)
    assert isinstance(sys_.refer(video, "box:1,1,20,20@0"), str)
    box = sys_.locate(video[3], "the red star")
    assert box is None or len(box) == 4
    with pytest.raises(RegionError, match="1 <region> placeholders but 2 regions"):
        sys_.ask(video, "Compare <region>.", ["box:1,1,5,5@0", "box:1,1,5,5@1"])
    with pytest.raises(RegionError, match="past the end"):
        sys_.describe(video, "box:1,1,5,5@10")
    sys_._track_budget = lambda n: 8
    boxes = sys_.track(video, region="box:10,8,30,28@7")
    assert len(boxes) == 10 and boxes[:7] == [None] * 7 and boxes[7] == [10, 8, 20, 20]


def test_sample_regions_map_to_the_nearest_sampled_frame(tokenizer):
    """A region annotated on a frame that is not sampled moves to the nearest sampled one (multi mode)."""
    sys_ = tiny(tokenizer, region_mode="multi")
    masks = {3: np.ones((8, 8), bool), 12: np.zeros((8, 8), bool)}
    masks[12][2:4, 2:4] = True
    region = sys_._region(masks, [0, 5, 10, 15], key=3, height=8, width=8)
    assert np.flatnonzero(region.given).tolist() == [1, 2]
    assert region.masks[1].all() and region.masks[2].sum() == 4 and not region.masks[0].any()
    single = tiny(tokenizer)._region(masks, [0, 3, 10, 15], key=3, height=8, width=8)
    assert np.flatnonzero(single.given).tolist() == [1]


def test_descriptions_follow_the_region_from_its_key_frame_alone(world, tokenizer):
    """region_propagation: a description's region is tracked from the key frame's mask to the other sampled
    frames; the sample's annotations on other frames are not used (single mode), and questions keep the key
    frame only."""
    sample = first_sample(world, "world-d")
    key = sample.frame_idx
    corner = np.zeros((64, 64), bool)  # a decoy annotation on every other frame
    corner[:2, :2] = True
    decoy = mask_to_rle(corner)
    region = {str(f): ({"segmentation": decoy} if int(f) != key else v) for f, v in dict(sample.regions[0]).items()}
    sample = dataclasses.replace(sample, regions=(region,))
    followed = tiny(tokenizer)._sample_example(sample).regions[0]
    kept = tiny(tokenizer, region_propagation="off")._sample_example(sample).regions[0]
    assert kept.given.sum() == 1
    assert followed.given.sum() > 1 and followed.given[np.flatnonzero(kept.given)[0]]
    for j in np.flatnonzero(followed.given):
        assert not np.array_equal(followed.masks[j], corner)  # the decoy annotation is never shown
    question = first_sample(world, "world-q")
    assert tiny(tokenizer)._sample_example(question).regions[0].given.sum() == 1
    assert tiny(tokenizer).config["region_propagation"] == "classical"
    assert "region_propagation" not in tiny(tokenizer, task="region_qa").config  # its eval caches stay valid
    with pytest.raises(RegionLMError, match="region_propagation must be one of off, classical"):
        tiny(tokenizer, region_propagation="sam2")


def test_descriptions_are_decoded_with_the_loop_guard_and_questions_without(world, tokenizer):
    """caption_loop_guard: the guard reaches generate for caption tasks only; a random tiny model's description,
    which is free to loop, never writes a span of >= 4 tokens three times in a row."""
    from regionlm.model.loop_guard import NoTripleRepeat

    sys_ = tiny(tokenizer, region_propagation="off")
    seen, real = [], sys_.model.generate

    def spy(**kwargs):
        out = real(**kwargs)
        seen.append((list(kwargs["logits_processor"]), out[0].tolist()))
        return out

    sys_.model.generate = spy
    sys_.max_new_tokens = 60
    sys_.generate([sys_._sample_example(first_sample(world, "world-d"))])
    sys_.generate([sys_._sample_example(first_sample(world, "world-q"))])
    (caption_guard, ids), (question_guard, _) = seen
    assert [type(g) for g in caption_guard] == [NoTripleRepeat] and question_guard == []
    assert not any(ids[i:i + k] == ids[i + k:i + 2 * k] == ids[i + 2 * k:i + 3 * k]
                   for k in range(4, 21) for i in range(len(ids) - 3 * k + 1))
    off = tiny(tokenizer, region_propagation="off", caption_loop_guard=False)
    off.model.generate, seen[:] = spy, []
    off.generate([off._sample_example(first_sample(world, "world-d"))])
    assert seen[0][0] == []
    assert tiny(tokenizer).config["caption_loop_guard"] is True
    assert "caption_loop_guard" not in tiny(tokenizer, task="sot").config  # its eval caches stay valid
    with pytest.raises(RegionLMError, match="caption_loop_guard must be True or False"):
        tiny(tokenizer, caption_loop_guard="yes")


def test_free_answers_stop_at_a_loop_and_keep_its_first_copy(world, tokenizer):
    """answer_loop_stop: questions decode with StopOnLoop (descriptions and tracking do not), and an answer that
    ends in a loop comes back with one copy of the looping span; off, it comes back whole."""
    from regionlm.model.loop_guard import StopOnLoop

    sys_ = tiny(tokenizer, region_propagation="off")
    word = sys_.processor.tokenizer.convert_tokens_to_ids(sys_.processor.tokenizer.tokenize(" circle"))
    looping = [word[0]] + word * 12
    seen, real = [], sys_.model.generate

    def loops(**kwargs):  # the real decoder runs (its arguments checked), then a looping answer is returned
        out = real(**kwargs)
        seen.append([type(c) for c in kwargs["stopping_criteria"]])
        return torch.tensor([looping], dtype=out.dtype)

    sys_.model.generate = loops
    question = sys_._sample_example(first_sample(world, "world-q"))
    answer = sys_.generate([question])[0]
    sys_.generate([sys_._sample_example(first_sample(world, "world-d"))])
    assert seen == [[StopOnLoop], []]
    assert answer == sys_.processor.decode(word)
    off = tiny(tokenizer, answer_loop_stop=False)
    off.model.generate = loops
    assert off.generate([question])[0] == sys_.processor.decode(looping)
    assert tiny(tokenizer).config["answer_loop_stop"] is True
    assert "answer_loop_stop" not in tiny(tokenizer, task="region_qa").config  # ranked: its eval caches stay valid
    assert tiny(tokenizer, task="region_qa", choice_mode="generate").config["answer_loop_stop"] is True
    with pytest.raises(RegionLMError, match="answer_loop_stop must be True or False"):
        tiny(tokenizer, answer_loop_stop=1)


# ---------------------------------------------------------------------------------------------------- loading


def test_load_eval_system(tokenizer, tmp_path, world, monkeypatch):
    sys_ = tiny(tokenizer, max_new_tokens=6)
    folder = tmp_path / "model"
    sys_.model.save_pretrained(folder)
    sys_.processor.save_pretrained(folder)
    loaded = load_eval_system(folder, benchmark=get_benchmark("world-q")(BenchmarkOptions(data=world)),
                              max_new_tokens=6)
    assert loaded.task == "region_qa" and loaded.config["model"] == str(folder)
    assert loaded.config["weights"] == weights_fingerprint(folder) != ""
    assert load_eval_system(folder, benchmark="world-sot").task == "sot"
    sample = first_sample(world, "world-q")
    assert loaded.answer(sample) == sys_.answer(sample)  # same weights, same greedy answer

    # through the CLI (regionlm.model re-exports load_eval_system)
    import regionlm.model
    from regionlm.cli import main

    def short(path, benchmark=None, **options):
        return load_eval_system(path, benchmark=benchmark, max_new_tokens=4, **options)

    monkeypatch.setattr(regionlm.model, "load_eval_system", short, raising=False)

    def system_run(out, *extra, bench="world-vqa"):
        """The eval run's system options, after it succeeded."""
        code = main(["eval", "--benchmark", bench, "--data", str(world), "--model", str(folder), "--out",
                     str(tmp_path / out), "--limit", "1", *extra, "--json"])
        assert code == 0
        return json.loads((tmp_path / out / "run.json").read_text())["system"]

    assert system_run("ev")["choice_mode"] == "rank"
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["num_samples"] == 1
    assert system_run("ev-gen", "--choice-mode", "generate")["choice_mode"] == "generate"
    # VideoRefer-Bench-Q's multi-frame mode: the region on every annotated frame
    assert system_run("ev-multi", "--region-mode", "multi", bench="world-q")["region_mode"] == "multi"
    for bad in (["--benchmark", "world-vqa", "--choice-mode", "best"],
                ["--benchmark", "world-q", "--region-mode", "all"],
                ["--benchmark", "world-vqa", "--objects", "detector"]):
        assert main(["eval", *bad, "--data", str(world), "--model", str(folder),
                     "--out", str(tmp_path / "ev-bad")]) == 2
    # retrained into the same folder: the cached answers belong to other weights, so the run is refused
    with torch.no_grad():
        next(sys_.model.parameters()).add_(1.0)
    sys_.model.save_pretrained(folder)
    code = main(["eval", "--benchmark", "world-vqa", "--data", str(world), "--model", str(folder), "--out",
                 str(tmp_path / "ev"), "--limit", "1", "--json"])
    assert code == 2


def test_weights_fingerprint_follows_the_bytes(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"a" * 1000)
    small = weights_fingerprint(tmp_path)
    assert small == weights_fingerprint(tmp_path) and len(small) == 16
    (tmp_path / "model.safetensors").write_bytes(b"a" * 999 + b"b")
    assert weights_fingerprint(tmp_path) != small
    # a large file is sampled (header and chunks), and a change in a sampled chunk still shows
    blob = bytearray(8 + 16 + 4000)
    blob[:8] = (16).to_bytes(8, "little")
    (tmp_path / "model.safetensors").write_bytes(bytes(blob))
    sampled = weights_fingerprint(tmp_path, whole_up_to=100, samples=4, chunk=64)
    blob[-1] = 7
    (tmp_path / "model.safetensors").write_bytes(bytes(blob))
    assert weights_fingerprint(tmp_path, whole_up_to=100, samples=4, chunk=64) != sampled
    assert weights_fingerprint(tmp_path / "none") == ""


def test_load_errors(tmp_path):
    with pytest.raises(RegionLMError, match="no such folder"):
        load_eval_system(tmp_path / "missing")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(RegionLMError, match="not a folder"):
        load_eval_system(tmp_path / "file.bin")
    with pytest.raises(RegionLMError, match="no config.json"):
        load_eval_system(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(RegionLMError, match="'bert' model, not a RegionLM"):
        load_eval_system(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "regionlm"}))
    with pytest.raises(RegionLMError, match="cannot load the model"):
        load_eval_system(tmp_path)


def test_an_object_token_models_object_list_comes_from_the_pipeline_the_truth_or_the_regions(world, tokenizer):
    """VideoOrion lists the objects its pipeline finds; a video question has no region, so listing the prompt's
    regions (the old behaviour, objects="regions") gave an object-token model no object at all there."""
    sample = first_sample(world, "world-vqa")
    truth = json.loads((world / "ground_truth.json").read_text())["videos"][0]
    by_source = {}
    for source in ("pipeline", "truth", "regions"):
        sys_ = tiny(tokenizer, "object_tokens", objects=source)
        assert sys_.config["objects"] == source
        example = sys_._sample_example(sample)
        by_source[source] = example.objects
        assert all(m.shape == example.frames.shape[:3] and m.dtype == bool for m in example.objects)
    idx = sys_._sample_example(sample).meta["frame_indices"]
    seen = [o for o in truth["objects"] if any(o["frames"][t]["segmentation"] is not None for t in idx)]
    assert len(by_source["truth"]) == len(seen) >= 2
    assert by_source["regions"] == []  # a video question: no region, so no object
    assert len(by_source["pipeline"]) >= 1 and all(m.any() for m in by_source["pipeline"])
    # the pipeline finds the true objects: each true mask of the first sampled frame is mostly covered by a track
    first = [m[0] for m in by_source["truth"] if m[0].sum() >= 20]
    found = [max((m & p[0]).sum() / m.sum() for p in by_source["pipeline"]) for m in first]
    assert first and np.mean(np.array(found) > 0.5) >= 0.5
    assert "objects" not in tiny(tokenizer, "mask_pool").config  # other encoders' caches are not touched
    with pytest.raises(RegionLMError, match="objects must be one of"):
        tiny(tokenizer, "object_tokens", objects="detector")
    with pytest.raises(RegionLMError, match="needs a RegionWorld benchmark sample"):
        tiny(tokenizer, "object_tokens", objects="truth")._objects(np.zeros((4, 64, 64, 3), np.uint8), [])
