"""The refer head (regionlm.model.refer): its cheap score equal to the formula, a fitted head finding the object its
words name among others, its candidates, its file, and the RegionLMSystem / CLI modes that use it."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_pointer import load, square_video, tiny_folder  # noqa: F401 - tiny_folder is a fixture

from regionlm.errors import RegionLMError
from regionlm.model import RegionLMForConditionalGeneration
from regionlm.model.inference import weights_fingerprint
from regionlm.model.pointer import POINTER_FILE, PointerConfig, PointerHead, save_pointer
from regionlm.model.refer import (FIRST_FRAME_SHARE, REFER_FILE, ReferConfig, ReferHead, expression_query,
                                  find_candidates, fit_refer, load_refer, peak_candidates, pick_score, refer_track,
                                  save_refer, view_likelihoods)
from regionlm.objects.classical.segment import ClassicalSegmenter


def test_the_cheap_score_is_the_formula_up_to_a_constant_per_query():
    torch.manual_seed(0)
    head = ReferHead(6, 5, ReferConfig(rank=3, adapter=0))
    q, f = torch.randn(2, 5), torch.randn(2, 9, 6)
    full = ((head.a(q)[:, None] * head.b(f)).sum(-1) / math.sqrt(3) + head.u(f)[..., 0])
    cheap = head(q, f)
    # the terms that do not depend on the patch shift every patch of a query alike: the softmax is the same
    assert torch.allclose(cheap - cheap[:, :1], full - full[:, :1], atol=1e-5)
    assert torch.allclose(cheap.softmax(-1), full.softmax(-1), atol=1e-6)


def colour_frames(n: int, gen: torch.Generator, g: int = 4, colours: int = 4, d: int = 8) -> tuple:
    """n frames of g x g patches with two objects of different colours, one cell each: (features (n, P, d), boxes of
    the first (n, 4), its colour (n,))."""
    x = torch.randn(n, g * g, d, generator=gen) * 0.3
    boxes, named = torch.zeros(n, 4), torch.zeros(n, dtype=torch.long)
    for i in range(n):
        cells = torch.randperm(g * g, generator=gen)[:2]
        cs = torch.randperm(colours, generator=gen)[:2]
        for cell, c in zip(cells.tolist(), cs.tolist()):
            x[i, cell, c] += 3.0
        r, c = divmod(int(cells[0]), g)
        boxes[i] = torch.tensor([c / g, r / g, (c + 1) / g, (r + 1) / g])
        named[i] = cs[0]
    return x, boxes, named


def test_a_fitted_head_finds_the_object_its_words_name_among_others():
    gen = torch.Generator().manual_seed(0)
    x, boxes, named = colour_frames(400, gen)
    words = torch.eye(4)  # one "word embedding" per colour
    head = fit_refer(x, boxes, words[named], ReferConfig(rank=4, adapter=0, size_hidden=8, window=0),
                      steps=300, log=lambda m: 0)
    tx, tboxes, tnamed = colour_frames(100, gen)  # held out
    best = [peak_candidates(head, words[c], head.features(f[None])[0])[0] for f, c in zip(tx, tnamed)]
    centres = (tboxes[:, :2] + tboxes[:, 2:]) / 2
    hit = [(p - c).abs().max() < 0.125 for (p, _, _), c in zip(best, centres)]  # within the named object's cell
    assert sum(hit) >= 90  # the other object, of another colour, would be chance (50) without the words
    size = torch.stack([s for _, s, _ in best]).mean(0)
    assert size.tolist() == pytest.approx([0.25, 0.25], rel=0.2)  # every object is one cell of a 4 x 4 grid


def test_candidates_are_apart_best_first_and_at_most_asked():
    torch.manual_seed(0)
    head = ReferHead(6, 5, ReferConfig(rank=3, adapter=0, candidates=3, suppress=1))
    found = peak_candidates(head, torch.randn(5), torch.randn(64, 6))
    assert len(found) == 3
    assert [s for _, _, s in found] == sorted([s for _, _, s in found], reverse=True)
    cells = [(int(p[1] * 8), int(p[0] * 8)) for p, _, _ in found]  # the window mean stays in the peak's cell area
    for i in range(3):
        for j in range(i):
            assert max(abs(cells[i][0] - cells[j][0]), abs(cells[i][1] - cells[j][1])) >= 1
    single = ReferHead(6, 5, ReferConfig(rank=3, adapter=0, candidates=1))
    assert len(peak_candidates(single, torch.randn(5), torch.randn(64, 6))) == 1


def test_bad_configs_are_refused():
    for bad in ({"candidates": 0}, {"rank": 0}, {"adapter": -1}, {"box_scale": 0.0}, {"head_weight": -1.0}):
        with pytest.raises(RegionLMError, match="refer head"):
            ReferHead(6, 5, ReferConfig(**bad))
    with pytest.raises(RegionLMError, match="no sequences"):
        fit_refer(torch.zeros(0, 16, 6), torch.zeros(0, 4), torch.zeros(0, 5), steps=1)


def test_the_head_round_trips_and_leaves_the_weights_fingerprint(tiny_folder, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    before = weights_fingerprint(folder)
    assert load_refer(folder) is None
    torch.manual_seed(0)
    head = ReferHead(32, 64, ReferConfig(rank=4))
    head.mean.normal_()
    save_refer(head, folder)
    assert weights_fingerprint(folder) == before and not list(folder.glob("*.tmp"))
    back = load_refer(folder)
    assert back.config == head.config
    assert all(torch.equal(back.state_dict()[k], v) for k, v in head.state_dict().items())
    (folder / REFER_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(RegionLMError, match=REFER_FILE):
        load_refer(folder)


def test_the_system_finds_and_follows_a_named_object_when_it_has_both_heads(tiny_folder, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    plain = load(folder)
    assert plain.rsot_mode == "generate" and "refer" not in plain.config  # no heads: the boxes as text
    with pytest.raises(RegionLMError, match=REFER_FILE):
        load(folder, rsot_mode="point")
    with pytest.raises(RegionLMError, match="rsot_mode"):
        load(folder, rsot_mode="find")
    torch.manual_seed(0)
    save_pointer(PointerHead(32, PointerConfig(rank=4)), folder)
    save_refer(ReferHead(32, 64, ReferConfig(rank=4)), folder)
    system = load(folder)
    assert system.rsot_mode == "point" and system.config["rsot_mode"] == "point"
    assert len(system.config["refer"]) == 16 and len(system.config["rsot_pointer"]) == 16
    assert load(folder, rsot_mode="generate").rsot_mode == "generate"
    assert load(folder, sot_mode="generate").rsot_pointer is not None  # the folder's pointer head follows it
    video = square_video()
    boxes = load(folder, outline=False).track(video, expression="the red square")
    assert len(boxes) == len(video) and all(b is not None for b in boxes)
    assert all(b[2:] == boxes[0][2:] for b in boxes[1:] if b[0] > 0 and b[1] > 0 and b[0] + b[2] < 64)
    outlined = system.track(video, expression="the red square")  # the default: later boxes outlined
    assert outlined[0] == boxes[0] and len(outlined) == len(video) and all(b is not None for b in outlined)
    direct = refer_track(system, system.refer_head, system.rsot_pointer, video, "the red square", system.outline)
    assert np.allclose(np.asarray(direct, float), np.asarray(outlined, float))
    box = system.locate(video[0], "the red square")
    found = find_candidates(system, system.refer_head, video[0], "the red square", ClassicalSegmenter())[0]
    # both are one of the head's candidates on that frame (locate picks on it alone, track on the clip)
    assert all([x, y, x + w, y + h] in found for x, y, w, h in (box, boxes[0]))
    query = expression_query(system.model, system.processor.tokenizer, ["the red square"])
    assert query.shape == (1, 64)


def test_the_pick_weighs_frame_0_against_the_later_frames_shown():
    assert FIRST_FRAME_SHARE == 0.5
    ll = np.array([[-2.0, -4.0, -6.0], [-3.0, -np.inf, -np.inf], [-1.0, -np.inf, -9.0]])
    got = pick_score(ll, np.array([1.0, 0.0, 2.0]), 0.5)
    later = np.log((np.exp(-4.0) + np.exp(-6.0)) / 2)
    assert np.allclose(got, [0.5 * -2.0 + 0.5 * later + 0.5, -3.0, 0.5 * -1.0 + 0.5 * -9.0 + 1.0])


def test_each_candidate_is_scored_on_each_frame_it_is_shown_as_grounding_does(tiny_folder):  # noqa: F811
    from regionlm.model.grounding import candidate_example, expression_likelihoods

    system = load(tiny_folder)
    clip = square_video(4)
    shown = np.zeros((2, 4, 64, 64), bool)
    shown[0, :, 20:32, 10:22] = True  # on every frame
    shown[1, 0, 40:50, 40:50] = shown[1, 2, 40:50, 40:50] = True  # on frames 0 and 2
    got = view_likelihoods(system, clip, "the red square", shown)
    assert np.isfinite(got[0]).all() and np.isinf(got[1, [1, 3]]).all() and np.isfinite(got[1, [0, 2]]).all()
    for k in range(2):  # the mean over its views is grounding's "each" likelihood of the candidate
        example = candidate_example(clip, shown[k], range(4))
        each = expression_likelihoods(system, [replace(example, answer="the red square")], "each")[0]
        row = got[k][np.isfinite(got[k])]
        assert np.isclose(np.logaddexp.reduce(row) - np.log(len(row)), each, atol=1e-4)


def test_a_head_fitted_on_other_weights_is_not_used(tiny_folder, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    torch.manual_seed(0)
    save_pointer(PointerHead(32, PointerConfig(rank=4)), folder)
    save_refer(ReferHead(32, 64, ReferConfig(rank=4)), folder)
    model = RegionLMForConditionalGeneration.from_pretrained(folder)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the model trained again, its heads not
    model.save_pretrained(folder)
    with pytest.warns(UserWarning, match="fitted on other weights"):
        assert load(folder).rsot_mode == "generate"
    with pytest.raises(RegionLMError, match="fitted on other weights"):
        load(folder, rsot_mode="point", sot_mode="generate")


def test_fit_pointer_fits_both_heads_on_regionworld_data(tiny_folder, tmp_path, capsys):  # noqa: F811
    from regionlm.cli import main
    from regionlm.world import generate_split

    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    generate_split(tmp_path / "world", "train", 2, seed=5, progress=False)
    assert main(["fit-pointer", "--data", str(tmp_path / "world"), "--model", str(folder), "--heads", "refer",
                 "--refer-steps", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "pointer" not in out and out["refer"]["path"] == str(folder / REFER_FILE)
    assert out["refer"]["sequences"] >= 1 and out["refer"]["steps"] == 3
    assert not (folder / POINTER_FILE).exists() and load(folder).rsot_mode == "generate"  # no pointer head yet
    assert main(["fit-pointer", "--data", str(tmp_path / "world"), "--model", str(folder), "--steps", "2",
                 "--refer-steps", "2", "--max-frames", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["pointer"] == str(folder / POINTER_FILE) and out["refer"]["steps"] == 2
    assert load(folder).rsot_mode == "point"
    for args, message in ((["--heads", "refer", "--benchmark", "vot"], "the refer head is fitted on RegionWorld"),
                          (["--heads", "pointer,finder"], "--heads must list"),
                          (["--refer-steps", "0"], "--refer-steps must be a positive integer")):
        assert main(["fit-pointer", "--data", str(tmp_path / "world"), *args]) == 2
        assert message in capsys.readouterr().err
