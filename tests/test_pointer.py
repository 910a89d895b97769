"""The pointer tracker (regionlm.model.pointer): its geometry, its cheap score equal to the formula, a fitted head
following a moving object its query names (better than copying, and past a look-alike), its file, and the
RegionLMSystem / CLI modes that use it."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from regionlm.errors import RegionLMError
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.inference import RegionLMSystem, weights_fingerprint
from regionlm.model.pointer import (POINTER_FILE, PointerConfig, PointerHead, box_cover, cell_centres, follow,
                                    full_size, grid_features, load_pointer, placed, point_track, pointed_place,
                                    save_pointer, seen_part)
from regionlm.model.outline import OutlineConfig, outline_track
from regionlm.model.pointer_fit import Sequences, fit_pointer, seen_whole_aspect
from regionlm.model.processing import RegionLMProcessor, pixel_values
from regionlm.model.tokenizer import train_tokenizer, world_corpus

VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
          "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def test_box_cover_is_each_cells_share_of_the_box():
    g = 4
    whole = box_cover(torch.tensor([0.25, 0.25, 0.75, 0.5]), g).reshape(g, g)  # cells (1..2, 1)
    assert whole.sum() == pytest.approx(2.0) and whole[1, 1] == 1 and whole[1, 2] == 1
    half = box_cover(torch.tensor([0.125, 0.0, 0.25, 0.25]), g).reshape(g, g)  # the right half of cell (0, 0)
    assert half[0, 0] == pytest.approx(0.5) and half.sum() == pytest.approx(0.5)
    assert cell_centres(g)[g + 2].tolist() == [0.625, 0.375]  # row 1, column 2


def test_the_windowed_place_keeps_to_the_likeliest_of_two():
    g = 8
    p = torch.zeros(1, g * g)
    p[0, 2 * g + 1], p[0, 2 * g + 2], p[0, 6 * g + 6] = 0.4, 0.2, 0.4 - 1e-3  # two look-alikes, the first likelier
    centres = cell_centres(g)
    between = [(1.5 * 0.4 + 2.5 * 0.2 + 6.5 * 0.4) / 8, (2.5 * 0.6 + 6.5 * 0.4) / 8]
    assert pointed_place(p, centres)[0].tolist() == pytest.approx(between, abs=1e-3)
    assert pointed_place(p, centres, window=1)[0].tolist() == pytest.approx([(1.5 * 2 + 2.5) / 3 / 8, 2.5 / 8])


def test_a_box_cut_by_the_frame_is_guessed_whole_and_placed_by_its_seen_part():
    # 0.1 wide and 0.2 tall, cut by the left edge: at least as wide as tall at aspect 1, half as wide at 0.5
    cut = torch.tensor([0.0, 0.4, 0.1, 0.6])
    assert full_size(cut, 1.0).tolist() == pytest.approx([0.2, 0.2])
    assert full_size(cut, 0.5).tolist() == pytest.approx([0.1, 0.2])
    assert full_size(cut, 0.0).tolist() == pytest.approx([0.1, 0.2])  # no guess
    assert full_size(torch.tensor([0.0, 0.0, 0.1, 0.2]), 1.0).tolist() == pytest.approx([0.1, 0.2])  # a corner
    assert full_size(torch.tensor([0.3, 0.0, 0.5, 0.1]), 1.0).tolist() == pytest.approx([0.2, 0.2])  # the top
    assert full_size(torch.tensor([0.3, 0.4, 0.4, 0.6]), 1.0).tolist() == pytest.approx([0.1, 0.2])  # inside
    near = torch.tensor([0.01, 0.4, 0.11, 0.6])  # a pixel from the left edge of a 100-pixel frame: cut there
    assert full_size(near, 1.0).tolist() == pytest.approx([0.1, 0.2])
    assert full_size(near, 1.0, (0.01, 0.01)).tolist() == pytest.approx([0.2, 0.2])
    size = torch.tensor([0.2, 0.2])
    inside = placed(torch.tensor([0.5, 0.5]), size)
    assert inside.tolist() == pytest.approx([0.4, 0.4, 0.6, 0.6])
    for place in ([0.05, 0.5], [0.97, 0.08]):  # near the left edge / the top-right corner
        box = placed(torch.tensor(place), size)
        seen = seen_part(*(box[:2] * 100).tolist(), *((box[2:] - box[:2]) * 100).tolist(), 100, 100)
        assert [seen[0] + seen[2] / 2, seen[1] + seen[3] / 2] == pytest.approx([v * 100 for v in place])
        assert (box[2:] - box[:2]).tolist() == pytest.approx([0.2, 0.2])


def test_the_aspect_guess_is_the_median_of_boxes_seen_whole():
    boxes = torch.tensor([[[0.1, 0.1, 0.3, 0.2], [0.2, 0.2, 0.3, 0.4], [0.5, 0.5, 0.7, 0.7], [0.0, 0.1, 0.9, 0.2]]])
    present = torch.tensor([[True, True, True, True]])
    data = Sequences(torch.zeros(1, 4, 4, 2), boxes, present)
    assert seen_whole_aspect(data) == pytest.approx(1.0)  # of 2, 0.5 and 1; the cut 9-wide box not counted
    data.present[0, 2] = False
    assert seen_whole_aspect(data) == pytest.approx(0.5)  # of 2 and 0.5: torch's median is the lower
    data.present[:] = False
    assert seen_whole_aspect(data) == 0.0


def test_the_cheap_score_is_the_formula():
    torch.manual_seed(0)
    head = PointerHead(8, PointerConfig(rank=4))
    q, x, d2 = torch.randn(3, 16), torch.randn(3, 5, 8), torch.rand(3, 5)
    explicit = ((head.a(q)[:, None] * head.b(x)).sum(-1) / 2 + head.u(x)[..., 0]
                - torch.nn.functional.softplus(head.c) * 100 * d2)
    assert torch.allclose(head(q, x, d2), explicit, atol=1e-5)


def moving_objects(n: int, seed: int, t: int = 6, g: int = 8, dim: int = 16) -> Sequences:
    """Features on a g x g grid: each sequence's object (a random code on the cell it covers) walks one cell per
    frame to the right or down; another object (another code) walks beside it, two cells away."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, t, g * g, dim, generator=gen)
    boxes = torch.zeros(n, t, 4)
    for s in range(n):
        code = torch.randn(dim, generator=gen)
        other = torch.randn(dim, generator=gen)
        row, col = (int(v) for v in torch.randint(0, g - t, (2,), generator=gen))
        right = bool(torch.rand(1, generator=gen) < 0.5)
        for f in range(t):
            r, c = (row, col + f) if right else (row + f, col)
            orow, ocol = (row + 2, c) if right else (r, col + 2)
            x[s, f, r * g + c] += code
            x[s, f, orow * g + ocol] += other
            boxes[s, f] = torch.tensor([c, r, c + 1, r + 1]) / g
    return Sequences(x, boxes, torch.ones(n, t, dtype=torch.bool))


def centre_error(head, data: Sequences) -> tuple:
    """Mean distance (cells) of the followed centres from the truth on frames 1.., and of copying frame 0's."""
    g = int(round(math.sqrt(data.x.shape[2])))
    truth = (data.boxes[..., :2] + data.boxes[..., 2:]) / 2
    with torch.no_grad():
        _, places = follow(head, head.standardise(data.x), data.boxes[:, 0])
    err = (places[:, 1:] - truth[:, 1:]).norm(dim=-1).mean() * g
    return float(err), float((truth[:, :1] - truth[:, 1:]).norm(dim=-1).mean() * g)


@pytest.mark.parametrize("training", ["teacher", "rollout"])
def test_a_fitted_head_follows_the_object_its_query_names(training):
    config = PointerConfig(rank=8, prior="last", noise=0.0, training=training)
    head = fit_pointer(moving_objects(200, 0), config, steps=200, batch=256, lr=1e-2, log=lambda m: None)
    err, copy = centre_error(head, moving_objects(60, 1))
    assert copy > 2.0  # it walks a cell a frame: copying misses by 2.5 cells on average
    assert err < 0.5, (err, copy)  # it stays on the object, not the other


def test_fit_needs_frames_where_the_object_is_seen():
    data = moving_objects(4, 0)
    data.present[:] = False
    with pytest.raises(RegionLMError, match="no training frames"):
        fit_pointer(data, steps=1, log=lambda m: None)


def test_the_adapter_starts_as_no_change_and_sees_neighbours():
    torch.manual_seed(0)
    head = PointerHead(8, PointerConfig(rank=4, adapter=6))
    x = torch.randn(2, 3, 16, 8)  # 4 x 4 grids
    assert torch.equal(head.adapt(x), x)  # zero-initialised output layer
    torch.nn.init.normal_(head.adapter[2].weight)
    moved_one = x.clone()
    moved_one[0, 0, 5] += 1.0  # one patch of one frame: its neighbours change, far patches and other frames not
    diff = (head.adapt(moved_one) - head.adapt(x)).abs().sum(-1)
    assert diff[0, 0, [0, 1, 2, 4, 6, 8, 9, 10]].min() > 0 and diff[0, 0, [3, 7, 11, 12, 15]].max() == 0
    assert diff[0, 1:].max() == 0 and diff[1].max() == 0
    assert PointerHead(8, PointerConfig(adapter=0)).adapter is None


def test_bad_configs_are_refused():
    with pytest.raises(RegionLMError, match="prior"):
        PointerHead(8, PointerConfig(prior="ahead"))
    with pytest.raises(RegionLMError, match="training"):
        PointerHead(8, PointerConfig(training="online"))
    with pytest.raises(RegionLMError, match="adapter"):
        PointerHead(8, PointerConfig(adapter=-1))


def test_the_head_round_trips_and_a_bad_file_is_one_error(tmp_path):
    torch.manual_seed(0)
    head = PointerHead(8, PointerConfig(rank=4, prior="last"))
    head.mean.normal_()
    head.aspect.fill_(1.25)
    assert load_pointer(tmp_path) is None
    save_pointer(head, tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    back = load_pointer(tmp_path)
    assert back.config == head.config
    assert all(torch.equal(back.state_dict()[k], v) for k, v in head.state_dict().items())
    from safetensors import safe_open  # a head saved before the aspect guess loads, guessing none
    from safetensors.torch import load_file, save_file

    path = tmp_path / POINTER_FILE
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file({k: v for k, v in load_file(str(path)).items() if k != "aspect"}, str(path), metadata=meta)
    assert float(load_pointer(tmp_path).aspect) == 0.0
    (tmp_path / POINTER_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(RegionLMError, match=POINTER_FILE):
        load_pointer(tmp_path)


# ------------------------------------------------------------------------------------------ on a tiny model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = train_tokenizer(world_corpus(2), vocab_size=512)
    torch.manual_seed(0)
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "tie_word_embeddings": True}
    cfg = RegionLMConfig(region_encoder="mask_pool", vision_config=dict(VISION), text_config=text, num_frames=4)
    RegionLMForConditionalGeneration(cfg).save_pretrained(folder)
    RegionLMProcessor(tokenizer, cfg).save_pretrained(folder)
    return folder


def load(folder, **options) -> RegionLMSystem:
    model = RegionLMForConditionalGeneration.from_pretrained(folder)
    return RegionLMSystem(model, RegionLMProcessor.from_pretrained(folder, config=model.config), path=str(folder),
                          **options)


def square_video(t: int = 5, size: int = 64) -> np.ndarray:
    frames = np.zeros((t, size, size, 3), np.uint8)
    for f in range(t):
        frames[f, 20:32, 10 + 4 * f:22 + 4 * f] = (220, 40, 40)
    return frames


def test_pixel_values_are_the_processors(tiny_folder):
    system = load(tiny_folder, sot_mode="generate")
    clips = [square_video(4), square_video(4)[::-1].copy()]
    from regionlm.model.example import Example

    batch = system.processor([Example("video_qa", c, "What happens?") for c in clips], train=False)
    assert torch.equal(batch["pixel_values"], torch.from_numpy(pixel_values(clips, system.model.config)))


def test_the_system_tracks_with_the_pointer_when_asked(tiny_folder, tmp_path):
    auto = load(tiny_folder)
    assert auto.sot_mode == "generate" and "sot_mode" not in auto.config  # no head in the folder
    with pytest.raises(RegionLMError, match=f"no {POINTER_FILE}"):
        load(tiny_folder, sot_mode="point")
    with pytest.raises(RegionLMError, match="sot_mode"):
        load(tiny_folder, sot_mode="follow")

    before = weights_fingerprint(tiny_folder)
    torch.manual_seed(0)
    head = PointerHead(32, PointerConfig(rank=4))
    save_pointer(head, tiny_folder)
    try:
        assert weights_fingerprint(tiny_folder) == before  # the model's eval caches stay valid
        system = load(tiny_folder)
        assert system.sot_mode == "point" and system.config["sot_mode"] == "point"
        assert len(system.config["pointer"]) == 16
        assert load(tiny_folder, sot_mode="generate").sot_mode == "generate"
        video = square_video()
        pointed = load(tiny_folder, outline=False)
        assert system.config["outline"] == {"grow": 1.3, "min_iou": 0.3, "work_side": 128} and pointed.config["outline"] is None
        boxes = pointed.track(video, region="box:10,20,22,32@1")
        assert boxes[0] is None and boxes[1] == [10, 20, 12, 12]
        assert all(b is not None and b[2:] == [12, 12] for b in boxes[1:])  # the first box's size, moved
        assert all(v == round(v) for b in boxes[1:] for v in b)  # in whole pixels
        direct = point_track(system.model, system.pointer, video[1:], [10, 20, 12, 12])
        assert np.allclose(np.asarray(boxes[1:], float), np.asarray(direct, float))
        chunked = point_track(system.model, system.pointer, video[1:], [10, 20, 12, 12], chunk=2)
        assert np.allclose(np.asarray(chunked, float), np.asarray(direct, float), atol=1e-4)  # frames encoded alone
        outlined = system.track(video, region="box:10,20,22,32@1")  # the default: each later box outlined
        assert outlined[1] == [10, 20, 12, 12]
        assert np.allclose(np.asarray(outlined[1:], float), np.asarray(outline_track(
            lambda a, b: video[1:][a:b], 4, direct, OutlineConfig()), float))
    finally:
        (tiny_folder / POINTER_FILE).unlink()


def test_track_cli_sot_mode_is_checked(tmp_path, capsys):
    from regionlm.cli import main

    video = tmp_path / "v.npy"
    assert main(["track", str(video), "--region", "box:1,1,5,5@0", "--sot-mode", "follow", "--json"]) == 2
    assert "--sot-mode must be one of" in capsys.readouterr().err
    assert main(["track", str(video), "--region", "box:1,1,5,5@0", "--backend", "classical",
                 "--sot-mode", "point"]) == 2
    assert "--sot-mode works only with --backend model" in capsys.readouterr().err


def test_stitched_features_are_the_towers_on_shifted_frames(tiny_folder):
    system = load(tiny_folder, sot_mode="generate")
    model = system.model
    flat = np.full((1, 32, 32, 3), 90, np.uint8)  # a uniform frame: every shift of it is the frame itself
    pixels = torch.from_numpy(pixel_values([flat], model.config))
    plain = grid_features(model, pixels)[0, 0].reshape(4, 4, -1)
    fine = grid_features(model, pixels, stitch=True)[0, 0].reshape(8, 8, -1)
    assert torch.allclose(fine[::2, ::2], plain, atol=1e-5) and torch.allclose(fine[1::2, 1::2], plain, atol=1e-5)
    video = square_video(2, 32)
    pixels = torch.from_numpy(pixel_values([video], model.config))
    fine = grid_features(model, pixels, stitch=True)[0, 1].reshape(8, 8, -1)
    # q = patch 8 / 4 = 2 px: the frame seen 2 px higher and 2 px further right (its edges repeated) gives the
    # even rows' odd columns
    up, left = [0, 0] + list(range(30)), list(range(2, 32)) + [31, 31]
    moved_frame = pixels[:, :, :, up][:, :, :, :, left]
    assert torch.allclose(fine[::2, 1::2], grid_features(model, moved_frame)[0, 1].reshape(4, 4, -1), atol=1e-5)
    assert not torch.allclose(fine[::2, 1::2], fine[::2, ::2], atol=1e-3)  # the square makes the shifts differ


def test_fit_pointer_command_writes_the_head(tiny_folder, tmp_path, capsys):
    import shutil

    from regionlm.cli import main
    from regionlm.world import generate_split

    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    generate_split(tmp_path / "world", "train", 2, seed=5, progress=False)
    assert main(["fit-pointer", "--data", str(tmp_path / "world"), "--model", str(folder), "--steps", "3",
                 "--max-frames", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["pointer"] == str(folder / POINTER_FILE) and out["sequences"] >= 1 and out["steps"] == 3
    assert out["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert 0 < out["frames"] <= 6 * out["sequences"]
    assert load(folder).sot_mode == "point"  # auto finds it
    assert main(["fit-pointer", "--data", str(tmp_path / "world"), "--benchmark", "davis"]) == 2
    assert "--benchmark must be one of" in capsys.readouterr().err
    assert main(["fit-pointer", "--data", str(tmp_path / "world"), "--steps", "0"]) == 2
    assert "--steps must be a positive integer" in capsys.readouterr().err
    assert main(["fit-pointer", "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["fit-pointer", "--data", str(tmp_path / "world"), "--model", str(folder), "--device", "bogus"]) == 2
    assert "--device bogus" in capsys.readouterr().err


def test_a_head_fitted_on_other_weights_is_not_used(tiny_folder, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    torch.manual_seed(0)
    save_pointer(PointerHead(32, PointerConfig(rank=4)), folder)
    model = RegionLMForConditionalGeneration.from_pretrained(folder)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the model trained again, its head not
    model.save_pretrained(folder)
    with pytest.warns(UserWarning, match="fitted on other weights"):
        assert load(folder).sot_mode == "generate"
    with pytest.raises(RegionLMError, match="fit it again"):
        load(folder, sot_mode="point")
