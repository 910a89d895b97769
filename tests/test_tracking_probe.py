"""benchmarks/tracking_probe.py: the probe follows an object its tokens identify (and not with a wrong query),
the place prior alone copies the start, and a whole run on a tiny model writes every row."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from regionlm.model.tokenizer import train_tokenizer, world_corpus

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import tracking_probe  # noqa: E402
from test_geometry_probe import save_tiny  # noqa: E402


def two_objects(samples: int, seed: int) -> tracking_probe.Tokens:
    """8x8 tokens on 4 frames; two objects (identity = a random code in the tokens) walk one token per frame,
    the tracked one right, the other down. Each token holds noise plus the code of the object on it."""
    g = torch.Generator().manual_seed(seed)
    t, side, dim = 4, 8, 16
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centres = torch.stack([(xs + 0.5) / side, (ys + 0.5) / side], -1).reshape(1, 1, side * side, 2)
    x = 0.3 * torch.randn(samples, t, side * side, dim, generator=g)
    cover = torch.zeros(samples, t, side * side)
    for s in range(samples):
        codes = torch.randn(2, dim, generator=g)
        row, col, other_row = (int(v) for v in torch.randint(0, 4, (3,), generator=g))
        for f in range(t):  # the tracked one in columns 0..6, the other in column 7: they never meet
            mine, other = row * side + col + f, (other_row + f) * side + side - 1
            x[s, f, mine] += codes[0]
            x[s, f, other] += codes[1]
            cover[s, f, mine] = 1.0
    return tracking_probe.Tokens(x, cover, centres.expand(samples, t, -1, -1).clone(), 64.0)


def test_the_probe_follows_the_object_its_query_names():
    fit_data, test_data = two_objects(200, 0), two_objects(100, 1)
    probe = tracking_probe.fit(fit_data, {}, steps=300)
    right = tracking_probe.score(probe, test_data)
    wrong = tracking_probe.score(probe, test_data, shuffle_queries=True)
    assert right["frames"] == 100 * 3
    assert right["copy_error_px"] > 10  # it walks 8 px a frame: copying frame 0 misses
    assert right["hit"] > 90 and right["peak_error_px"] < 2
    assert right["follows_x"] > 0.9
    assert wrong["hit"] < 60  # another sample's code points at nothing in particular
    alone = tracking_probe.score(tracking_probe.fit(fit_data, tracking_probe.PROBES["no query"], steps=300),
                                 test_data)
    assert alone["hit"] < 60  # without the query it cannot tell the two objects apart


def test_the_place_prior_alone_points_at_the_start():
    data = two_objects(50, 2)
    probe = tracking_probe.fit(data, tracking_probe.PROBES["place prior alone"], steps=50)
    res = tracking_probe.score(probe, data)
    assert abs(res["peak_error_px"] - res["copy_error_px"]) < 1e-3


def test_a_whole_run_on_a_tiny_model_writes_every_row(tmp_path):
    tokenizer = train_tokenizer(world_corpus(2), vocab_size=512)
    model = save_tiny(tmp_path / "m", tokenizer)
    out = tmp_path / "out"
    assert tracking_probe.main(["--model", str(model), "--train", "8", "--test", "8", "--steps", "3", "--sot", "0",
                                "--out", str(out), "--threads", "1"]) == 0
    result = json.loads((out / "tracking_probe.json").read_text())
    rows = result["rows"]
    assert set(rows) == {f"{m}: {r}" for m in ("trained", "fresh weights") for r in
                         ("probe", "probe, queries of other samples", "probe, on its own fit clips", "no query",
                          "probe + place prior", "probe + place prior, queries of other samples",
                          "place prior alone")}
    for r in rows.values():
        assert r["frames"] > 0 and 0 <= r["hit"] <= 100


def test_point_track_moves_the_first_box_and_keeps_its_size(tmp_path):
    from regionlm.model import RegionLMForConditionalGeneration
    from regionlm.model.processing import RegionLMProcessor

    tokenizer = train_tokenizer(world_corpus(2), vocab_size=512)
    folder = save_tiny(tmp_path / "m", tokenizer)
    model = RegionLMForConditionalGeneration.from_pretrained(folder).eval()
    processor = RegionLMProcessor.from_pretrained(folder)
    data = tracking_probe.collect(model, processor, 5, 8)
    probe = tracking_probe.fit(data, tracking_probe.PROBES["probe + place prior"], steps=3)
    frames = np.random.default_rng(0).integers(0, 255, (6, 48, 48, 3), dtype=np.uint8)
    boxes = tracking_probe.point_track(model, processor, probe, frames, (10.0, 12.0, 8.0, 6.0))
    assert len(boxes) == 6 and boxes[0] == [10.0, 12.0, 8.0, 6.0]
    for x, y, w, h in boxes[1:]:
        assert (w, h) == (8.0, 6.0)
        assert 0 <= x + w / 2 <= 48 and 0 <= y + h / 2 <= 48  # a mean of token centres: inside the frame


def test_guide_track_follows_from_clip_to_clip_and_a_model_without_a_head_is_refused(tmp_path):
    from regionlm.model import RegionLMForConditionalGeneration
    from regionlm.model.processing import RegionLMProcessor

    tokenizer = train_tokenizer(world_corpus(2), vocab_size=512)
    folder = save_tiny(tmp_path / "marks", tokenizer, region_marks=True, guide_head=True)
    model = RegionLMForConditionalGeneration.from_pretrained(folder).eval()
    processor = RegionLMProcessor.from_pretrained(folder)
    frames = np.random.default_rng(0).integers(0, 255, (9, 40, 40, 3), dtype=np.uint8)  # clips of 4: 0-3, 3-6, 6-8
    for peak in (False, True):
        boxes = tracking_probe.guide_track(model, processor, frames, (4.0, 6.0, 10.0, 8.0), peak=peak)
        assert len(boxes) == 9 and boxes[0] == [4.0, 6.0, 10.0, 8.0]
        for x, y, w, h in boxes[1:]:
            assert (w, h) == (10.0, 8.0) and 0 <= x + w / 2 <= 40 and 0 <= y + h / 2 <= 40
    plain = save_tiny(tmp_path / "plain", tokenizer)
    assert tracking_probe.main(["--model", str(plain), "--guide", str(plain), "--out", str(tmp_path / "o")]) == 2
