"""The model core: config token counts, connectors, splicing, save/load, generate, real-path parts."""

import math

import pytest
import torch

from regionlm.errors import RegionLMError
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.connectors import build_connector, cell_centres, cell_times, fourier_positions

TINY_VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
               "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
TINY_TEXT = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "tie_word_embeddings": True}


def tiny_config(**kw):
    kw.setdefault("region_encoder", "text_coords")
    return RegionLMConfig(vision_config=dict(TINY_VISION), text_config=dict(TINY_TEXT), **kw)


def prompt_ids(config, num_frames, batch=2):
    n = config.num_context_tokens(num_frames)
    row = torch.cat([torch.tensor([10, 11]), torch.full((n,), config.video_token_id), torch.tensor([12, 13, 14])])
    return row.repeat(batch, 1)


@pytest.mark.parametrize("connector", ["pool", "stc", "t_selector"])
@pytest.mark.parametrize("num_frames", [1, 3, 8])
def test_connector_token_count_matches_config(connector, num_frames):
    cfg = tiny_config(connector=connector, t_selector_keep=5)
    conn = build_connector(cfg, 32, 64)
    g = cfg.grid_size
    out = conn(torch.randn(2, num_frames, g, g, 32))
    assert out.tokens.shape == (2, cfg.num_context_tokens(num_frames), 64)
    assert out.frame_index.shape == (cfg.num_context_tokens(num_frames),)
    expected = {"pool": num_frames * math.ceil(g / 2) ** 2,
                "stc": math.ceil(num_frames / 2) * (g // 2) ** 2,
                "t_selector": num_frames * 5}[connector]
    assert cfg.num_context_tokens(num_frames) == expected
    # maps are routed like the features: a map of ones stays ones, a zero feature map gives a zero residual
    ones = conn.reduce_maps(torch.ones(2, num_frames, g, g, 3), out)
    assert ones.shape == (2, expected, 3) and torch.allclose(ones, torch.ones_like(ones))
    zero = conn.project_residual(torch.zeros(2, num_frames, g, g, 32), out)
    assert zero.shape == (2, expected, 64) and torch.count_nonzero(zero) == 0


@pytest.mark.parametrize("connector", ["pool", "stc", "t_selector"])
def test_context_positions_embed_each_tokens_place(connector):
    cfg = tiny_config(connector=connector, t_selector_keep=5, context_positions=True)
    conn = build_connector(cfg, 32, 64)
    g = cfg.grid_size
    features = torch.randn(2, 4, g, g, 32)
    out = conn(features)
    pos = conn.position_embeds(features, out)
    assert pos.shape == out.tokens.shape
    # the place a token stands for: its cells' mean centre, so the embedding is the same on every frame (pool,
    # stc) and differs between the places within a frame
    centres = conn.reduce_maps(cell_centres(2, 4, g, g, "cpu", torch.float32), out)
    assert torch.all((centres > 0) & (centres < 1))
    assert torch.allclose(pos, conn.position(fourier_positions(centres)))
    per_frame = out.tokens.shape[1] // len(set(out.frame_index.tolist()))
    if connector != "t_selector":
        assert torch.allclose(pos[:, :per_frame], pos[:, per_frame:2 * per_frame])
    assert len({tuple(c) for c in centres[0, :per_frame].tolist()}) == per_frame
    # off by default: no parameters, and the model adds nothing
    assert not hasattr(build_connector(tiny_config(connector=connector), 32, 64), "position")


@pytest.mark.parametrize("connector", ["pool", "stc", "t_selector"])
def test_context_frames_embed_the_time_each_token_stands_for(connector):
    cfg = tiny_config(connector=connector, t_selector_keep=5, context_frames=True)
    conn = build_connector(cfg, 32, 64)
    g, frames = cfg.grid_size, 4
    features = torch.randn(2, frames, g, g, 32)
    out = conn(features)
    emb = conn.frame_embeds(features, out)
    assert emb.shape == out.tokens.shape
    times = conn.reduce_maps(cell_times(2, frames, g, g, "cpu", torch.float32), out)[0, :, 0]
    assert torch.allclose(emb, conn.frame_position(fourier_positions(times[None, :, None].expand(2, -1, 1))))
    # a token stands for the mean time of its frames: its own frame's centre, or (stc) the merged frames' mean
    stride = cfg.stc_temporal_stride if connector == "stc" else 1
    assert torch.allclose(times, (out.frame_index.float() + stride / 2) / frames)  # frame_index: the first one
    first, second = (out.frame_index == i for i in out.frame_index.unique()[:2])
    assert torch.allclose(emb[0, first][0], emb[0, first][-1])  # the same within a frame
    assert not torch.allclose(emb[0, first][0], emb[0, second][0])  # different between frames
    assert not hasattr(build_connector(tiny_config(connector=connector), 32, 64), "frame_position")


def test_context_positions_change_the_video_tokens_only_by_their_embedding():
    cfg = tiny_config(context_positions=True)
    torch.manual_seed(0)
    model = RegionLMForConditionalGeneration(cfg).eval()
    ids, pixels = prompt_ids(cfg, 2, batch=1), torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        with_pos = model.embed_inputs(ids, pixels)[0]
        model.connector.position.weight.zero_()
        model.connector.position.bias.zero_()
        without = model.embed_inputs(ids, pixels)[0]
    video = ids == cfg.video_token_id
    assert torch.equal(with_pos[~video], without[~video])
    assert not torch.allclose(with_pos[video], without[video])


def test_stc_matches_videorefer_count_on_a_siglip_384_grid():
    cfg = RegionLMConfig(connector="stc", vision_config={**TINY_VISION, "image_size": 384, "patch_size": 14},
                         text_config=dict(TINY_TEXT))
    assert cfg.grid_size == 27 and cfg.num_context_tokens(16) == 1352  # VideoRefer: 16 frames -> 1,352


def test_stc_project_is_the_convolution_of_a_constant_field():
    cfg = tiny_config(connector="stc")
    conn = build_connector(cfg, 32, 64)
    v = torch.randn(32)
    out = conn(v.expand(1, 4, cfg.grid_size, cfg.grid_size, 32).clone())
    assert torch.allclose(conn.project(v), out.tokens[0, 0], atol=1e-5)


def test_forward_loss_and_splice_checks():
    cfg = tiny_config()
    model = RegionLMForConditionalGeneration(cfg)
    ids = prompt_ids(cfg, 4)
    out = model(input_ids=ids, pixel_values=torch.randn(2, 4, 3, 32, 32), labels=ids)
    assert torch.isfinite(out.loss) and out.logits.shape == (*ids.shape, 300)
    with pytest.raises(ValueError, match="<video> tokens"):  # the prompt was expanded for 4 frames, not 2
        model(input_ids=ids, pixel_values=torch.randn(2, 2, 3, 32, 32))
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=ids)

    # mask_pool: one <region> per region shown on one frame; the prompt's count is checked per sample
    model = RegionLMForConditionalGeneration(tiny_config(region_encoder="mask_pool"))
    one = torch.cat([ids, torch.full((2, 1), model.config.region_token_id)], 1)
    regions = {"region_masks": torch.ones(2, 1, 4, 32, 32), "region_given": torch.zeros(2, 1, 4, dtype=torch.bool),
               "region_valid": torch.ones(2, 1, dtype=torch.bool)}
    regions["region_given"][:, :, 0] = True
    px = torch.randn(2, 4, 3, 32, 32)
    assert torch.isfinite(model(input_ids=one, pixel_values=px, labels=one, **regions).loss)
    with pytest.raises(ValueError, match="sample 0: 0 <region> tokens in the prompt, the encoder gave 1"):
        model(input_ids=ids, pixel_values=px, **regions)
    two = torch.cat([one, torch.full((2, 1), model.config.region_token_id)], 1)
    with pytest.raises(ValueError, match="sample 0: 2 <region> tokens in the prompt, the encoder gave 1"):
        model(input_ids=two, pixel_values=px, **regions)


def test_pixel_targets_are_each_patch_2x2_pooled():
    from regionlm.model.modeling import pixel_targets

    x = torch.arange(2 * 1 * 3 * 16 * 16, dtype=torch.float).reshape(2, 1, 3, 16, 16)
    t = pixel_targets(x, grid=2, patch=8)
    assert t.shape == (2, 1, 2, 2, 3 * 4 * 4)
    # patch (row 0, col 1), channel 1, first target pixel = mean of rows 0-1, cols 8-9
    assert t[1, 0, 0, 1, 16] == x[1, 0, 1, 0:2, 8:10].mean()


def test_pixel_reconstruction_loss_is_added_only_when_on(tmp_path):
    from regionlm.train.trainer import part_of

    ids = prompt_ids(tiny_config(), 4)
    px = torch.randn(2, 4, 3, 32, 32)
    off = RegionLMForConditionalGeneration(tiny_config())
    assert not hasattr(off, "pixel_head") and off(input_ids=ids, pixel_values=px, labels=ids).pixel_loss is None
    torch.manual_seed(0)
    on = RegionLMForConditionalGeneration(tiny_config(pixel_recon_alpha=0.5))
    out = on(input_ids=ids, pixel_values=px, labels=ids)
    assert out.pixel_loss > 0 and torch.allclose(out.loss, out.lm_loss + 0.5 * out.pixel_loss)
    assert on(input_ids=ids, pixel_values=px).pixel_loss is None  # no labels: inference, no extra work
    out.loss.backward()
    assert on.pixel_head.weight.grad is not None and part_of("pixel_head.weight") == "vision_tower"
    on.save_pretrained(tmp_path)  # the head is saved and loaded with the model
    back = RegionLMForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(back.pixel_head.weight, on.pixel_head.weight)


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    cfg = tiny_config(connector="t_selector", t_selector_keep=6)
    model = RegionLMForConditionalGeneration(cfg).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = RegionLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    ids, pixels = prompt_ids(cfg, 3), torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, pixel_values=pixels).logits,
                           loaded(input_ids=ids, pixel_values=pixels).logits)


def test_inference_encodes_each_distinct_frame_once():
    """In eval mode a frame shown twice (in one sample or across the batch) goes through the tower once, with the
    same features as encoding every frame; training encodes every frame."""
    torch.manual_seed(0)
    model = RegionLMForConditionalGeneration(tiny_config()).eval()
    a, b, c = torch.randn(3, 3, 32, 32)
    pixels = torch.stack([torch.stack([a, b, a]), torch.stack([a, b, c])])  # (2, 3, 3, 32, 32): a thrice, b twice
    seen = []
    hook = model.vision_tower.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(len(kwargs["pixel_values"])), with_kwargs=True)
    with torch.no_grad():
        once = model.vision_features(pixels)
        each = torch.stack([torch.stack([model.vision_features(f[None, None])[0, 0] for f in row]) for row in pixels])
        model.train()
        trained = model.vision_features(pixels)
    hook.remove()
    assert seen[0] == 3 and seen[-1] == 6  # 3 distinct frames in eval; all 6 in training
    assert torch.allclose(once, each, atol=1e-5) and torch.allclose(trained, each, atol=1e-5)
    assert torch.equal(once[0, 0], once[1, 0]) and torch.equal(once[0, 0], once[0, 2])


def test_generate_returns_new_tokens_only():
    cfg = tiny_config()
    model = RegionLMForConditionalGeneration(cfg).eval()
    ids = prompt_ids(cfg, 2)
    new = model.generate(ids, pixel_values=torch.randn(2, 2, 3, 32, 32), max_new_tokens=4, do_sample=False)
    assert new.shape == (2, 4)


def test_real_part_classes_load_from_local_folders(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipConfig, SiglipModel

    vision_cfg = {k: v for k, v in TINY_VISION.items() if k not in ("model_type", "vision_use_head")}
    siglip = SiglipModel(SiglipConfig(vision_config=vision_cfg, text_config={
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "vocab_size": 100}))
    siglip.save_pretrained(tmp_path / "siglip")
    lm = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in TINY_TEXT.items() if k != "model_type"}))
    lm.save_pretrained(tmp_path / "qwen2")
    model = RegionLMForConditionalGeneration.from_parts(tmp_path / "siglip", tmp_path / "qwen2",
                                                        region_encoder="text_coords")
    assert type(model.vision_tower).__name__ == "SiglipVisionModel"
    assert type(model.language_model).__name__ == "Qwen2ForCausalLM"
    assert torch.equal(model.language_model.lm_head.weight, lm.lm_head.weight)
    assert torch.equal(model.vision_tower.embeddings.patch_embedding.weight,
                       siglip.vision_model.embeddings.patch_embedding.weight)
    ids = prompt_ids(model.config, 2, batch=1)
    assert torch.isfinite(model(input_ids=ids, pixel_values=torch.randn(1, 2, 3, 32, 32), labels=ids).loss)
    with pytest.raises(RegionLMError, match="no config.json"):
        RegionLMForConditionalGeneration.from_parts(tmp_path, tmp_path / "qwen2")
    with pytest.raises(RegionLMError, match="cannot load a causal language model"):
        RegionLMForConditionalGeneration.from_parts(tmp_path / "siglip", tmp_path / "siglip")
