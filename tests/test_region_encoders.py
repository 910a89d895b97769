"""Region encoders (issue 4): each one's arithmetic on hand-made inputs, then each one end to end through the model."""

from __future__ import annotations

import pytest
import torch

from regionlm.errors import RegionError
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.connectors import build_connector
from regionlm.model.region import RegionInputs, build_region_encoder
from regionlm.model.region.common import (GEOMETRY_DIM, SILHOUETTE_SIZE, TRAJECTORY_DIM, VELOCITY_SCALE, grid_coverage,
                                         mask_boxes, masked_pool, region_geometry, region_silhouette, region_trajectory)
from regionlm.model.region.mask_pool import merge_adjacent
from regionlm.model.region.object_tokens import OBJECT_PROJECTOR_REGISTRY
from regionlm.model.region.roi_box import box_weights
from regionlm.model.region.visual_marks import MARK_COLOURS, contour
from regionlm.regions import mask_to_box

S, PATCH, C, D = 32, 8, 32, 64  # 32 px frames, 4x4 feature grid, vision width 32, LM width 64
G = S // PATCH
CONNECTORS = ("pool", "stc", "t_selector")
ENCODERS = ("token_mark", "mask_pool", "object_tokens", "roi_box", "visual_marks", "mask_pool+geometry",
            "mask_pool+trajectory", "mask_pool+marks")
EXTRAS = {"geometry": {"region_geometry": True, "region_silhouette": True}, "trajectory": {"region_trajectory": True},
          "marks": {"region_marks": True, "region_trajectory": True}}


def make_config(encoder="token_mark", connector="pool", **kw) -> RegionLMConfig:
    kw = {"max_regions": 4, "num_marks": 6, "t_selector_keep": 5, **kw}
    return RegionLMConfig(
        region_encoder=encoder, connector=connector,
        vision_config={"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": S,
                       "patch_size": PATCH, "hidden_size": C, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2},
        text_config={"model_type": "qwen2", "hidden_size": D, "intermediate_size": 128, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 300}, **kw)


def make_encoder(config):
    connector = build_connector(config, C, D)
    return build_region_encoder(config, connector), connector


def cell_mask(t: int, cells: dict, r: int = 1) -> torch.Tensor:
    """(r, t, S, S) masks filling whole grid cells: cells maps (region, frame) -> (row0, row1, col0, col1)."""
    m = torch.zeros(r, t, S, S)
    for (i, f), (r0, r1, c0, c1) in cells.items():
        m[i, f, r0 * PATCH:r1 * PATCH, c0 * PATCH:c1 * PATCH] = 1
    return m


def inputs(masks, given=None, valid=None, **objects) -> RegionInputs:
    """RegionInputs for one sample from (R, T, S, S) masks; by default every frame given, every slot valid."""
    r, t = masks.shape[:2]
    given = torch.ones(r, t, dtype=torch.bool) if given is None else given
    valid = torch.ones(r, dtype=torch.bool) if valid is None else valid
    return RegionInputs(masks[None], given[None], valid[None], **objects)


# ------------------------------------------------------------------ common arithmetic

def test_grid_coverage_averages_area():
    m = torch.zeros(S, S)
    m[0:8, 0:4] = 1  # half of cell (0, 0)
    m[8:16, 8:16] = 1  # all of cell (1, 1)
    cover = grid_coverage(m, G, G)
    expected = torch.zeros(G, G)
    expected[0, 0], expected[1, 1] = 0.5, 1.0
    assert torch.equal(cover, expected)


def test_masked_pool_of_a_known_feature_map():
    t = 2
    f = torch.zeros(1, t, G, G, 2)
    f[..., 0] = (torch.arange(G)[:, None] * 10 + torch.arange(G)[None, :]).float()  # row*10 + col
    f[..., 1] = torch.arange(t).float()[:, None, None]  # the frame index
    m = torch.zeros(1, 3, t, S, S)
    m[0, 0, 0, 8:24, 16:32] = 1  # rows 1-2, cols 2-3 of frame 0
    m[0, 1, 1, 0:8, 0:4] = 1  # half of cell (0, 0) on frame 1 ...
    m[0, 1, 1, 0:8, 8:16] = 1  # ... and all of cell (0, 1)
    pooled, area = masked_pool(f, grid_coverage(m, G, G))
    assert pooled[0, 0, 0].tolist() == [(12 + 13 + 22 + 23) / 4, 0.0]
    assert torch.allclose(pooled[0, 1, 1], torch.tensor([(0.5 * 0 + 1 * 1) / 1.5, 1.0]))
    assert area[0, 0].tolist() == [4.0, 0.0] and area[0, 2].tolist() == [0.0, 0.0]
    assert torch.equal(pooled[0, 0, 1], torch.zeros(2)) and torch.equal(pooled[0, 2], torch.zeros(t, 2))


def test_mask_boxes_match_regions_mask_to_box():
    gen = torch.Generator().manual_seed(0)
    masks = torch.zeros(5, S, S)
    for i in range(4):
        x1, y1 = torch.randint(0, S - 2, (2,), generator=gen).tolist()
        masks[i, y1:y1 + 1 + i * 3, x1:x1 + 2 + i] = 1
    boxes, nonempty = mask_boxes(masks)
    assert nonempty.tolist() == [True] * 4 + [False]
    for i in range(4):
        assert boxes[i].tolist() == list(mask_to_box(masks[i].numpy() > 0.5))
    assert boxes[4].tolist() == [0, 0, 0, 0]


# ------------------------------------------------------------------ mask_pool (VideoRefer)

def test_merge_joins_the_most_similar_adjacent_pair_first():
    a, b, c = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])
    # frames 0 and 4 are identical but not adjacent; 2 and 3 are the most similar adjacent pair
    tokens = torch.stack([a, -a, c, c * 1.1 + torch.tensor([0.0, 0.05]), a, b])
    merged, sizes = merge_adjacent(tokens, 5)
    assert sizes.tolist() == [1, 1, 2, 1, 1]
    assert torch.allclose(merged[2], (tokens[2] + tokens[3]) / 2)
    assert torch.equal(merged[[0, 1, 3, 4]], tokens[[0, 1, 4, 5]])


@pytest.mark.parametrize("n,u", [(1, 4), (4, 4), (5, 4), (9, 4), (16, 4), (7, 1), (8, 3)])
def test_merge_ends_with_u_tokens_each_the_mean_of_its_frames(n, u):
    tokens = torch.randn(n, 8, generator=torch.Generator().manual_seed(n * 10 + u))
    merged, sizes = merge_adjacent(tokens, u)
    assert merged.shape == (min(n, u), 8) and int(sizes.sum()) == n
    ends = torch.cumsum(sizes.long(), 0).tolist()
    starts = [0] + ends[:-1]
    for tok, s, e in zip(merged, starts, ends):  # consecutive runs, time order kept
        assert torch.allclose(tok, tokens[s:e].mean(0), atol=1e-6)


@pytest.mark.parametrize("merge", [True, False])
def test_mask_pool_tokens_per_region_follow_the_config(merge):
    t = 7
    config = make_config("mask_pool", merge_tokens=3, temporal_merge=merge)
    enc, conn = make_encoder(config)
    features = torch.randn(1, t, G, G, C)
    masks = cell_mask(t, {(i, f): (0, 2, 0, 2) for i in range(4) for f in range(t)}, r=4)
    given = torch.zeros(4, t, dtype=torch.bool)
    for i, n in enumerate([1, 2, 5, 7]):
        given[i, :n] = True
    out = enc(features, inputs(masks, given), conn(features))
    expected = sum(config.tokens_per_region(n) for n in [1, 2, 5, 7])
    assert out.region_embeds[0].shape == (expected, D)
    assert expected == (1 + 2 + 3 + 3 if merge else 1 + 2 + 5 + 7)


def _merge_one_at_a_time(parts: list, u: int) -> list:
    """The temporal merge as VideoRefer states it, on a list: the test's oracle for the batched merge."""
    weights = [1.0] * len(parts)
    while len(parts) > u:
        sims = [float(torch.cosine_similarity(a, b, dim=0).detach()) for a, b in zip(parts, parts[1:])]
        i = sims.index(max(sims))
        total = weights[i] + weights[i + 1]
        parts[i:i + 2] = [(parts[i] * weights[i] + parts[i + 1] * weights[i + 1]) / total]
        weights[i:i + 2] = [total]
    return parts


@pytest.mark.parametrize("extra", [{}, {"temporal_merge": False}, {"region_trajectory": True, "merge_tokens": 2}])
def test_mask_pool_batched_tokens_equal_region_by_region(extra):
    # samples with 0 to 3 valid regions, each given on 0 to 8 scattered frames: all regions are encoded at once
    t, b, r = 8, 4, 3
    config = make_config("mask_pool", **extra)
    enc, conn = make_encoder(config)
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(b, t, G, G, C, generator=gen, requires_grad=True)
    masks = (torch.rand(b, r, t, S, S, generator=gen) > 0.7).float()
    given = torch.rand(b, r, t, generator=gen) > 0.5
    given[0, 0] = False  # a valid region given on no frame: one zero placeholder
    given[1, 1] = True
    valid = torch.tensor([[True, True, False], [True, True, True], [False, False, False], [False, True, True]])
    regions = RegionInputs(masks, given, valid)
    out = enc(features, regions, conn(features)).region_embeds
    pooled, _ = masked_pool(features, grid_coverage(regions.given_masks(), G, G))
    paths = enc.trajectory(region_trajectory(region_geometry(masks, given))) if extra.get("region_trajectory") else None
    for i in range(b):
        tokens = []
        for k in valid[i].nonzero().flatten().tolist():
            frames = given[i, k].nonzero().flatten().tolist()
            parts = [pooled[i, k, f] for f in frames] or [torch.zeros(C)]
            if config.temporal_merge:
                parts = _merge_one_at_a_time(parts, config.merge_tokens)
            tokens += parts + ([paths[i, k]] if paths is not None else [])
        expected = enc.mlp(torch.stack(tokens)) if tokens else torch.zeros(0, D)
        assert out[i].shape == expected.shape
        assert torch.allclose(out[i], expected, atol=1e-5)
    grad, = torch.autograd.grad(sum(o.sum() for o in out), features)
    assert grad[2].abs().sum() == 0 and grad[1].abs().sum() > 0  # gradients reach the features of shown regions


def _device_ops(fn) -> int:
    """How many tensor operations (views aside) ``fn`` dispatches: on a GPU each is a kernel launch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    views = {"view", "as_strided", "transpose", "t", "_unsafe_view", "select", "slice", "unsqueeze", "squeeze",
             "expand", "permute", "detach", "alias", "split", "split_with_sizes", "unbind", "empty", "lift_fresh"}
    count = [0]

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            count[0] += func.__name__.split(".")[0] not in views
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return count[0]


def test_mask_pool_work_does_not_grow_with_the_regions():
    # a loop over regions launched kernels per region (and read the GPU each time): small models waited on it
    t = 8
    config = make_config("mask_pool", region_trajectory=True, region_geometry=True)
    enc, conn = make_encoder(config)

    def ops(b):
        features = torch.randn(b, t, G, G, C, requires_grad=True)
        masks = torch.ones(b, 2, t, S, S)
        given = torch.rand(b, 2, t, generator=torch.Generator().manual_seed(b)) > 0.3
        regions = RegionInputs(masks, given, torch.ones(b, 2, dtype=torch.bool))
        regions.on_host()
        return _device_ops(lambda: torch.cat(enc(features, regions, conn(features)).region_embeds).sum().backward())

    small, large = ops(1), ops(12)
    assert small > 100 and large - small <= 12, (small, large)  # at most the per-sample split's gradients


def test_mask_pool_single_frame_token_is_the_mlp_of_the_masked_mean():
    config = make_config("mask_pool")
    enc, conn = make_encoder(config)
    features = torch.randn(1, 2, G, G, C)
    masks = cell_mask(2, {(0, 1): (1, 3, 0, 1)})
    given = torch.tensor([[False, True]])
    out = enc(features, inputs(masks, given), conn(features))
    expected = enc.mlp(features[0, 1, 1:3, 0].mean(0))
    assert torch.allclose(out.region_embeds[0][0], expected, atol=1e-6)


def test_region_geometry_centre_size_and_velocity():
    # a 8x8 square at columns 0-7 on frame 0, 8-15 on frame 1, hidden on frame 2, columns 24-31 on frame 3
    t = 4
    masks = torch.zeros(1, 1, t, S, S)
    for f, c0 in ((0, 0), (1, 8), (3, 24)):
        masks[0, 0, f, 8:16, c0:c0 + 8] = 1
    g = region_geometry(masks, torch.ones(1, 1, t, dtype=torch.bool))[0, 0]
    assert g.shape == (t, GEOMETRY_DIM)
    step = 8 / S * VELOCITY_SCALE  # a quarter of the frame per clip frame, scaled
    assert torch.allclose(g[0], torch.tensor([4 / S - 0.5, 12 / S - 0.5, 0.25, 0.25, step, 0.0, 1.0]))
    assert torch.allclose(g[1, 4:], torch.tensor([step, 0.0, 1.0]))  # frame 1 -> 3: 16 px over 2 frames
    assert torch.equal(g[2], torch.zeros(GEOMETRY_DIM))  # not seen: nothing
    assert torch.allclose(g[3, 4:], torch.tensor([step, 0.0, 1.0]))  # the last frame looks back
    # shown on its first frame only: where it is, but no velocity
    first = region_geometry(masks, torch.tensor([[[True, False, False, False]]]))[0, 0]
    assert torch.allclose(first[0], torch.tensor([4 / S - 0.5, 12 / S - 0.5, 0.25, 0.25, 0.0, 0.0, 0.0]))
    assert torch.equal(first[1:], torch.zeros(t - 1, GEOMETRY_DIM))


def test_region_geometry_tells_moving_from_still_with_the_same_appearance():
    t = 3
    still = cell_mask(t, {(0, f): (1, 2, 1, 2) for f in range(t)})
    moving = cell_mask(t, {(0, f): (1, 2, f, f + 1) for f in range(t)})
    features = torch.zeros(1, t, G, G, C)  # the same appearance everywhere: only geometry can tell them apart

    def tokens(masks, **kw):
        torch.manual_seed(0)
        model = RegionLMForConditionalGeneration(make_config("mask_pool", **kw))
        enc, conn = model.region_encoder, model.connector
        return enc(features, inputs(masks), conn(features)).region_embeds[0]

    assert torch.equal(tokens(still), tokens(moving))  # plain mask pooling: the same
    assert not torch.allclose(tokens(still, region_geometry=True), tokens(moving, region_geometry=True))
    model = RegionLMForConditionalGeneration(make_config("mask_pool", region_geometry=True))
    assert 0.1 < float(model.region_encoder.geometry.weight.detach().std()) < 0.3  # seen at once (mask_pool.py)
    wide = RegionLMForConditionalGeneration(make_config("mask_pool", region_geometry=True, region_embedding_std=1.0))
    assert 0.7 < float(wide.region_encoder.geometry.weight.detach().std()) < 1.3
    with pytest.raises(ValueError, match="region_geometry is a mask_pool option"):
        make_config("roi_box", region_geometry=True)
    with pytest.raises(ValueError, match="region_silhouette is a mask_pool option"):
        make_config("token_mark", region_silhouette=True)


def test_region_trajectory_sums_up_the_path():
    # the square of the geometry test: columns 0-7 on frame 0, 8-15 on frame 1, hidden on 2, 24-31 on 3, not on 4
    t = 5
    masks = torch.zeros(1, 2, t, S, S)
    for f, c0 in ((0, 0), (1, 8), (3, 24)):
        masks[0, 0, f, 8:16, c0:c0 + 8] = 1
    path = region_trajectory(region_geometry(masks, torch.ones(1, 2, t, dtype=torch.bool)))
    assert path.shape == (1, 2, TRAJECTORY_DIM)
    step = 8 / S * VELOCITY_SCALE
    y, w = 12 / S - 0.5, 0.25
    expected = [4 / S - 0.5, y, w, w,  28 / S - 0.5, y, w, w,  step, 0.0,  step, 0.0,  1.0,  3 / t,  0.0, 3 / (t - 1)]
    assert torch.allclose(path[0, 0], torch.tensor(expected))
    assert torch.equal(path[0, 1], torch.zeros(TRAJECTORY_DIM))  # never seen: nothing
    # shown on one frame: where it is, no velocity
    one = region_trajectory(region_geometry(masks[:, :1], torch.tensor([[[False, True, False, False, False]]])))[0, 0]
    assert torch.allclose(one[8:], torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1 / t, 1 / (t - 1), 1 / (t - 1)]))
    assert torch.allclose(one[:4], one[4:8])


def test_region_trajectory_is_one_more_token_that_tells_moving_from_still():
    t = 3
    still = cell_mask(t, {(0, f): (1, 2, 1, 2) for f in range(t)})
    moving = cell_mask(t, {(0, f): (1, 2, f, f + 1) for f in range(t)})
    features = torch.zeros(1, t, G, G, C)  # the same appearance everywhere: only the path can tell them apart
    config = make_config("mask_pool", region_trajectory=True, merge_tokens=2)
    assert [config.tokens_per_region(n) for n in (0, 1, 3)] == [2, 2, 3]
    torch.manual_seed(0)
    model = RegionLMForConditionalGeneration(config)
    enc, conn = model.region_encoder, model.connector
    a = enc(features, inputs(still), conn(features)).region_embeds[0]
    b = enc(features, inputs(moving), conn(features)).region_embeds[0]
    assert a.shape == b.shape == (3, D)
    assert torch.equal(a[:2], b[:2])  # appearance tokens: the same
    assert not torch.allclose(a[2], b[2])  # the trajectory token: not
    with pytest.raises(ValueError, match="region_trajectory is a mask_pool option"):
        make_config("token_mark", region_trajectory=True)


def test_region_silhouette_is_the_shape_inside_the_box_at_any_size_and_place():
    k = SILHOUETTE_SIZE
    masks = torch.zeros(1, 4, 2, S, S)
    masks[0, 0, 0, 2:8, 3:9] = 1  # a 6x6 box prompt
    masks[0, 1, 0, 0:12, 0:12] = 1  # an L: a 12x12 square less its top-right 6x6 quarter
    masks[0, 1, 0, 0:6, 6:12] = 0
    masks[0, 2, 0, 20:26, 20:26] = 1  # the same L at half the size, elsewhere
    masks[0, 2, 0, 20:23, 23:26] = 0
    masks[0, 3, 1, 4:8, 4:8] = 1  # seen on a frame that is not given
    given = torch.tensor([[[True, False]] * 3 + [[True, False]]])
    g = region_silhouette(masks, given)
    assert g.shape == (1, 4, 2, k * k)
    assert torch.equal(g[0, 0, 0], torch.ones(k * k))
    ell = torch.ones(k, k)
    ell[: k // 2, k // 2:] = 0
    assert torch.equal(g[0, 1, 0].reshape(k, k), ell) and torch.equal(g[0, 2, 0], g[0, 1, 0])
    assert torch.equal(g[0, :, 1], torch.zeros(4, k * k))  # not given or empty: zeros


# ------------------------------------------------------------------ token_mark (Omni-RGPT)

def _two_regions(t):
    """Region 0: top-left 2x2 cells on every frame; region 1: bottom-right cell, overlapping nothing."""
    cells = {(0, f): (0, 2, 0, 2) for f in range(t)}
    cells.update({(1, f): (3, 4, 3, 4) for f in range(t)})
    return cell_mask(t, cells, r=2)


@pytest.mark.parametrize("connector", CONNECTORS)
def test_token_mark_residual_is_zero_outside_every_mask(connector):
    config = make_config("token_mark", connector, t_selector_keep=16)  # keep all cells: some are outside
    enc, conn = make_encoder(config)
    t = 3
    features = torch.randn(1, t, G, G, C)
    masks = _two_regions(t)
    given = torch.tensor([[True, False, True], [True, True, True]])
    context = conn(features)
    out = enc(features, inputs(masks, given), context)
    assert out.residual.shape == context.tokens.shape
    touched = conn.reduce_maps(grid_coverage(inputs(masks, given).given_masks(), G, G).sum(1)[..., None],
                               context)[0, :, 0] > 0
    assert 0 < int(touched.sum()) < touched.numel()
    norms = out.residual[0].norm(dim=-1)
    assert norms[~touched].max() <= 1e-6
    assert norms[touched].min() > 1e-4


@pytest.mark.parametrize("connector", CONNECTORS)
def test_mask_pool_marks_add_the_regions_mark_to_its_tokens_and_the_context_inside_its_masks(connector):
    t = 3
    masks = _two_regions(t)
    given = torch.tensor([[True, False, True], [True, True, True]])
    features = torch.randn(1, t, G, G, C)
    torch.manual_seed(0)
    marked = make_config("mask_pool", connector, t_selector_keep=16, region_marks=True, region_trajectory=True,
                         merge_tokens=2)
    model = RegionLMForConditionalGeneration(marked).eval()
    enc, conn = model.region_encoder, model.connector
    context = conn(features)
    regions = inputs(masks, given)
    out = enc(features, regions, context)
    # its tokens: the unmarked ones (pooled, merged, trajectory), then its own projected mark (slot i -> mark i)
    unmarked = RegionLMForConditionalGeneration(make_config(
        "mask_pool", connector, t_selector_keep=16, region_trajectory=True, merge_tokens=2)).eval()
    missing, unexpected = unmarked.load_state_dict(model.state_dict(), strict=False)
    assert not missing and {k.split(".")[1] for k in unexpected} == {"marks", "guide_head"}
    plain = unmarked.region_encoder(features, regions, context).region_embeds[0]
    counts = [marked.tokens_per_region(int(g.sum())) for g in given]
    assert counts == [2 + 2, 2 + 2] and marked.tokens_per_region(1) == 1 + 2  # merged to 2, trajectory, mark
    first, second = out.region_embeds[0].split(counts)
    assert torch.allclose(torch.cat([first[:-1], second[:-1]]), plain, atol=1e-6)
    assert torch.allclose(first[-1], conn.project(enc.marks[0]), atol=1e-6)
    assert torch.allclose(second[-1], conn.project(enc.marks[1]), atol=1e-6)
    # the context: the same residual token_mark adds, zero where no given mask touches
    touched = conn.reduce_maps(grid_coverage(regions.given_masks(), G, G).sum(1)[..., None], context)[0, :, 0] > 0
    norms = out.residual[0].norm(dim=-1)
    assert norms[~touched].max() <= 1e-6 and norms[touched].min() > 1e-4
    assert out.aux == {}  # the guide head's targets only in training
    enc.train()
    assert enc(features, regions, context).aux["guide_targets"].shape == (1, context.tokens.shape[1], 7)
    small = RegionLMForConditionalGeneration(make_config("mask_pool", region_marks=True, mark_init_std=0.2))
    assert 0.15 < small.region_encoder.marks.std().item() < 0.25 and 0.75 < enc.marks.std().item() < 1.25
    with pytest.raises(ValueError, match="region_marks is a mask_pool option"):
        make_config("roi_box", region_marks=True)
    with pytest.raises(ValueError, match="num_marks"):
        make_config("mask_pool", region_marks=True, num_marks=3)


@pytest.mark.parametrize("connector", CONNECTORS)
def test_token_mark_text_length_does_not_depend_on_frames(connector):
    config = make_config("token_mark", connector)
    enc, conn = make_encoder(config)
    enc.eval()
    lengths = []
    for t in (1, 2, 5, 8):
        features = torch.randn(1, t, G, G, C)
        out = enc(features, inputs(_two_regions(t)), conn(features))
        lengths.append(out.region_embeds[0].shape[0])
        assert [config.tokens_per_region(n) for n in range(1, t + 1)] == [1] * t
    assert lengths == [2, 2, 2, 2]


def test_token_marks_random_in_training_fixed_at_inference():
    config = make_config("token_mark", num_marks=6)
    enc, conn = make_encoder(config)
    enc.train()
    draws = enc.assign_marks(50, 4, "cpu")
    assert all(len(set(row.tolist())) == 4 for row in draws)  # without replacement within a sample
    assert len({tuple(row.tolist()) for row in draws}) > 1 and set(draws.flatten().tolist()) == set(range(6))
    enc.eval()
    assert enc.assign_marks(3, 4, "cpu").tolist() == [[0, 1, 2, 3]] * 3
    features = torch.randn(1, 2, G, G, C)
    masks = cell_mask(2, {(0, 0): (0, 1, 0, 1), (2, 0): (1, 2, 1, 2)}, r=3)
    out = enc(features, inputs(masks, valid=torch.tensor([True, False, True])), conn(features))
    assert torch.allclose(out.region_embeds[0], conn.project(enc.marks[[0, 2]]), atol=1e-6)  # slot i -> mark i


@pytest.mark.parametrize("connector", CONNECTORS)
def test_guide_head_soft_labels_sum_to_one(connector):
    config = make_config("token_mark", connector, t_selector_keep=16, num_marks=6)
    enc, conn = make_encoder(config)
    t = 4
    masks = torch.zeros(2, t, S, S)
    masks[0, :, 0:16, 0:16] = 1  # cells rows 0-1, cols 0-1
    masks[1, :, 8:16, 8:24] = 1  # cells row 1, cols 1-2: overlaps region 0 on cell (1, 1)
    given = torch.zeros(2, t, dtype=torch.bool)
    given[:, 0] = True  # shown on the first frame only; the head is supervised on all frames
    features = torch.randn(1, t, G, G, C)
    enc.train()
    context = conn(features)
    out = enc(features, inputs(masks, given), context)
    labels = out.aux["guide_targets"][0]  # (N, num_marks + 1)
    assert labels.shape == (context.tokens.shape[1], config.num_marks + 1)
    assert torch.allclose(labels.sum(-1), torch.ones(labels.shape[0]), atol=1e-6)
    assert (labels >= 0).all()
    if connector == "t_selector":  # one token per cell, raster order: exact labels
        per_frame = labels.reshape(t, G * G, -1)
        region0 = per_frame[:, 0].argmax(-1)  # cell (0, 0): region 0 only (its mark was drawn at random)
        region1 = per_frame[:, 6].argmax(-1)  # cell (1, 2): region 1 only
        assert (region0 == region0[0]).all() and (region1 == region1[0]).all() and region0[0] != region1[0]
        shared = per_frame[:, 5]  # cell (1, 1): both regions, equal coverage -> half each
        assert torch.allclose(shared[:, region0[0]], torch.full((t,), 0.5))
        assert torch.allclose(shared[:, region1[0]], torch.full((t,), 0.5))
        assert torch.equal(per_frame[:, 15, -1], torch.ones(t))  # nothing covers cell (3, 3): background
        assert torch.equal(per_frame[3, 0, region0[0]], torch.tensor(1.0))  # frame 3 was not given
    enc.eval()
    assert enc(features, inputs(masks, given), conn(features)).aux == {}  # no head at inference


def test_guide_head_loss_is_the_soft_cross_entropy():
    config = make_config("token_mark")
    enc, conn = make_encoder(config)
    enc.train()
    features = torch.randn(1, 2, G, G, C)
    out = enc(features, inputs(_two_regions(2)), conn(features))
    hidden = torch.randn(1, out.residual.shape[1], D)
    loss = enc.aux_loss(out, hidden)
    logp = torch.log_softmax(enc.guide_head(hidden), -1)
    assert torch.allclose(loss, -(out.aux["guide_targets"] * logp).sum(-1).mean())
    loss.backward()
    assert enc.guide_head.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ T-Selector (the lead's connector, tested here)

def test_t_selector_keeps_k_tokens_per_frame_in_raster_order():
    config = make_config("mask_pool", "t_selector", t_selector_keep=5)
    conn = build_connector(config, C, D)
    with torch.no_grad():  # score = gelu(feature 0): the ranking is known
        first, second = conn.gate[0], conn.gate[2]
        first.weight.zero_(), first.bias.zero_(), second.weight.zero_(), second.bias.zero_()
        first.weight[0, 0] = 1.0
        second.weight[0, 0] = 1.0
    t = 3
    features = torch.randn(1, t, G, G, C)
    gen = torch.Generator().manual_seed(1)
    for f in range(t):
        features[0, f, :, :, 0] = (torch.randperm(G * G, generator=gen).float() + 1).reshape(G, G)
    out = conn(features)
    cells = features.reshape(1, t, G * G, C)
    assert out.tokens.shape == (1, t * 5, D) and t * 5 == config.num_context_tokens(t)
    for f in range(t):
        expected = sorted(cells[0, f, :, 0].topk(5).indices.tolist())
        assert out.state["index"][0, f].tolist() == expected
        assert torch.allclose(out.tokens[0, f * 5:(f + 1) * 5], conn.projector(cells[0, f, expected]), atol=1e-6)
    assert out.frame_index.tolist() == [f for f in range(t) for _ in range(5)]


def test_t_selector_gate_gets_gradient():
    config = make_config("mask_pool", "t_selector", t_selector_keep=5)
    conn = build_connector(config, C, D)
    out = conn(torch.randn(2, 3, G, G, C))
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    for p in conn.gate.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


# ------------------------------------------------------------------ object_tokens (VideoOrion)

@pytest.mark.parametrize("projector", sorted(OBJECT_PROJECTOR_REGISTRY))
def test_object_tokens_one_per_object_and_a_region_equal_to_a_track_gets_its_token(projector):
    config = make_config("object_tokens", object_projector=projector, max_objects=2)
    enc, conn = make_encoder(config)
    t = 4
    features = torch.randn(1, t, G, G, C)
    objects = cell_mask(t, {(0, 0): (0, 1, 0, 2), (0, 1): (0, 2, 0, 2), (0, 3): (1, 2, 1, 2),  # absent on 2
                            (1, 0): (2, 4, 2, 4), (1, 1): (3, 4, 3, 4),
                            (2, 2): (0, 1, 3, 4)}, r=3)
    regions = RegionInputs(objects[None, :2].clone(), torch.ones(1, 2, t, dtype=torch.bool),
                           torch.ones(1, 2, dtype=torch.bool), objects[None], torch.ones(1, 3, dtype=torch.bool))
    out = enc(features, regions, conn(features))
    assert out.object_embeds[0].shape == (2, D)  # 3 valid objects, at most max_objects
    assert torch.allclose(out.region_embeds[0], out.object_embeds[0], atol=1e-6)
    # the token reads only the frames and cells where the object is: changing anything else changes nothing
    cover = grid_coverage(objects[:2], G, G).sum(0) > 0  # (T, G, G)
    changed = features.clone()
    changed[0][~cover] = torch.randn(int((~cover).sum()), C)
    again = enc(changed, regions, conn(changed))
    assert torch.allclose(again.object_embeds[0], out.object_embeds[0], atol=1e-6)
    # a region shown on the first frame only is pooled from that frame alone
    first_only = RegionInputs(objects[None, :1], torch.tensor([[[True, False, False, False]]]),
                              torch.ones(1, 1, dtype=torch.bool))
    single = enc(features, first_only, conn(features)).region_embeds[0]
    alone = RegionInputs(objects[None, :1, :1], torch.ones(1, 1, 1, dtype=torch.bool),
                         torch.ones(1, 1, dtype=torch.bool))
    assert torch.allclose(single, enc(features[:, :1], alone, conn(features[:, :1])).region_embeds[0], atol=1e-6)
    # the projector learns: every weight it uses gets gradient (avg has none of its own: the connector's)
    (out.object_embeds[0] * torch.randn_like(out.object_embeds[0])).sum().backward()
    # (not the attention key's bias: it shifts every frame's score alike, so its gradient is 0 up to rounding)
    trained = [p for n, p in enc.named_parameters() if n != "projector.key.bias"] or list(conn.projector.parameters())
    assert trained and all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_object_tokens_skip_invalid_objects_and_handle_none():
    config = make_config("object_tokens")
    enc, conn = make_encoder(config)
    features = torch.randn(2, 2, G, G, C)
    objects = torch.zeros(2, 3, 2, S, S)
    objects[:, :, :, :8, :8] = 1
    valid = torch.tensor([[True, False, True], [False, False, False]])
    regions = RegionInputs(None, None, None, objects, valid)
    out = enc(features, regions, conn(features))
    assert [e.shape[0] for e in out.object_embeds] == [2, 0]
    assert [e.shape[0] for e in out.region_embeds] == [0, 0]


@pytest.mark.parametrize("extras", [{}, {"region_geometry": True, "region_trajectory": True}])
def test_mask_pool_object_list_one_token_per_object_in_the_region_tokens_space(extras):
    """object_list: an object seen on every frame gets the token a single-token region of it would get before the
    MLP averages frames: here (no merge, one frame) exactly a one-frame region's token."""
    config = make_config("mask_pool", object_list=True, temporal_merge=False, max_objects=2, **extras)
    assert config.uses_objects and not make_config("mask_pool").uses_objects
    enc, conn = make_encoder(config)
    features = torch.randn(1, 1, G, G, C)
    objects = cell_mask(1, {(0, 0): (0, 1, 0, 2), (1, 0): (2, 4, 2, 4), (2, 0): (0, 1, 3, 4)}, r=3)
    as_regions = RegionInputs(objects[None, :2].clone(), torch.ones(1, 2, 1, dtype=torch.bool),
                              torch.ones(1, 2, dtype=torch.bool), objects[None], torch.ones(1, 3, dtype=torch.bool))
    out = enc(features, as_regions, conn(features))
    assert out.object_embeds[0].shape == (2, D)  # 3 valid objects, at most max_objects
    first_tokens = out.region_embeds[0].reshape(2, -1, D)[:, 0]  # each region's pooled (not trajectory) token
    assert torch.allclose(out.object_embeds[0], first_tokens, atol=1e-5)
    # a video question: objects and no region; an object absent from a frame is averaged over the others only
    t = 3
    features = torch.randn(1, t, G, G, C)
    track = cell_mask(t, {(0, 0): (0, 2, 0, 2), (0, 2): (0, 2, 0, 2)})
    only = enc(features, RegionInputs(None, None, None, track[None], None), conn(features))
    assert [e.shape[0] for e in only.region_embeds] == [0] and only.object_embeds[0].shape == (1, D)
    changed = features.clone()
    changed[0, 1] = torch.randn(G, G, C)  # the frame it is not seen on
    again = enc(changed, RegionInputs(None, None, None, track[None], None), conn(changed))
    assert torch.allclose(again.object_embeds[0], only.object_embeds[0], atol=1e-6)
    (only.object_embeds[0] ** 2).sum().backward()
    assert enc.mlp.fc2.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="object_list is a mask_pool option"):
        make_config("roi_box", object_list=True)


# ------------------------------------------------------------------ roi_box

def test_box_weights_are_exact_areas():
    w = box_weights(torch.tensor([0.5, 1.0, 2.25, 2.0]), G, G)  # x 0.5-2.25, y 1-2
    expected = torch.zeros(G, G)
    expected[1, :3] = torch.tensor([0.5, 1.0, 0.25])
    assert torch.allclose(w, expected)


def test_roi_box_pools_cells_of_the_box_then_the_whole_box():
    config = make_config("roi_box", roi_grid=2)
    enc, conn = make_encoder(config)
    features = torch.randn(1, 1, G, G, C)
    masks = torch.zeros(1, 1, S, S)
    masks[0, 0, 8:24, 8:24] = 1  # box = cells rows 1-2, cols 1-2
    masks[0, 0, 8:16, 16:24] = 0  # an L shape: the box, not the mask, decides the pooling
    masks[0, 0, 8, 23] = 1
    pooled, nonempty = enc.pool(features, masks[None])
    cells = features[0, 0, 1:3, 1:3].reshape(4, C)
    assert nonempty.tolist() == [[[True]]]
    assert torch.allclose(pooled[0, 0, 0], torch.cat([cells, cells.mean(0, keepdim=True)]), atol=1e-6)
    out = enc(features, inputs(masks), conn(features))
    assert out.region_embeds[0].shape == (config.tokens_per_region(1), D) == (5, D)
    assert torch.allclose(out.region_embeds[0], enc.mlp(pooled[0, 0, 0]), atol=1e-6)


def test_roi_box_averages_given_nonempty_frames():
    config = make_config("roi_box", roi_grid=1)
    enc, conn = make_encoder(config)
    features = torch.randn(1, 3, G, G, C)
    masks = cell_mask(3, {(0, 0): (0, 1, 0, 1), (0, 2): (3, 4, 3, 4)})  # empty on frame 1
    out = enc(features, inputs(masks), conn(features))
    mean = (features[0, 0, 0, 0] + features[0, 2, 3, 3]) / 2
    assert torch.allclose(out.region_embeds[0], enc.mlp(mean).expand(2, D), atol=1e-6)


# ------------------------------------------------------------------ visual_marks

def test_mark_colours_are_named_and_enough():
    names = [n for n, _ in MARK_COLOURS]
    assert len(set(names)) == len(names) >= make_config().max_regions
    assert all(len(rgb) == 3 and all(0 <= v <= 1 for v in rgb) for _, rgb in MARK_COLOURS)


def test_contour_is_a_two_pixel_inner_outline():
    m = torch.zeros(S, S)
    m[4:14, 6:16] = 1
    ring = m.clone().bool()
    ring[6:12, 8:14] = False
    assert torch.equal(contour(m), ring)
    full = torch.ones(S, S)  # the frame's edge counts as outside
    assert int(contour(full).sum()) == S * S - (S - 4) ** 2


def test_visual_marks_change_pixels_only_on_the_contour_of_given_frames():
    config = make_config("visual_marks", image_mean=(0.5, 0.4, 0.3), image_std=(0.2, 0.25, 0.5))
    enc, _ = make_encoder(config)
    t = 3
    masks = torch.zeros(3, t, S, S)
    masks[0, :, 4:14, 6:16] = 1
    masks[1, :, 18:30, 2:28] = 1
    masks[2, :, 0:S, 0:S] = 1  # an invalid slot: never drawn
    given = torch.tensor([[True, False, True], [False, True, False], [True, True, True]])
    valid = torch.tensor([True, True, False])
    pixels = torch.randn(1, t, 3, S, S)
    before = pixels.clone()
    regions = inputs(masks, given, valid)
    out = enc.prepare_pixels(pixels, regions)
    drawn = torch.zeros(t, S, S, dtype=torch.bool)
    for i in range(2):
        lines = contour(masks[i]) & given[i][:, None, None]
        drawn |= lines
        rgb = torch.tensor(MARK_COLOURS[i][1])
        colour = (rgb - torch.tensor(config.image_mean)) / torch.tensor(config.image_std)
        assert torch.allclose(out[0].permute(0, 2, 3, 1)[lines], colour.expand(int(lines.sum()), 3))
    changed = (out != pixels).any(dim=2)[0]
    assert torch.equal(changed, drawn) and changed[1].sum() > 0 and changed[0].sum() > 0
    assert torch.equal(pixels, before)  # drawn on a copy
    assert enc(torch.randn(1, t, G, G, C), regions, None).region_embeds is None


# ------------------------------------------------------------------ errors

def test_masks_at_the_wrong_resolution_are_a_region_error():
    for name in ("token_mark", "mask_pool", "roi_box", "object_tokens"):
        enc, conn = make_encoder(make_config(name))
        features = torch.randn(1, 1, G, G, C)
        with pytest.raises(RegionError, match="region_masks"):
            enc(features, inputs(torch.ones(1, 1, 16, 16)), conn(features))


def test_more_regions_than_marks_is_a_region_error():
    enc, conn = make_encoder(make_config("token_mark", num_marks=4))
    features = torch.randn(1, 1, G, G, C)
    with pytest.raises(RegionError, match="num_marks"):
        enc(features, inputs(torch.ones(5, 1, S, S)), conn(features))


# ------------------------------------------------------------------ end to end through the model

def _batch(config, t=3):
    """Two samples: sample 0 has one valid region (given on frame 0), sample 1 two (the second on all frames);
    input ids hold exactly the placeholder counts the config asks for."""
    b, r = 2, 2
    masks = torch.zeros(b, r, t, S, S)
    masks[:, 0, :, 4:12, 4:20] = 1
    masks[:, 1, :, 10:30, 16:30] = 1
    given = torch.zeros(b, r, t, dtype=torch.bool)
    given[:, :, 0] = True
    given[1, 1, :] = True
    valid = torch.tensor([[True, False], [True, True]])
    objects, object_valid = masks.clone(), torch.tensor([[True, True], [True, False]])
    rows = []
    for i in range(b):
        ids = [10, 11] + [config.video_token_id] * config.num_context_tokens(t) + [12]
        for j in range(r):
            if valid[i, j]:
                ids += [config.region_token_id] * config.tokens_per_region(int(given[i, j].sum())) + [13]
        if config.uses_objects:
            ids += [14] + [config.object_token_id] * int(object_valid[i].sum())
        rows.append(ids + [20, 21, 22, 23])
    length = max(map(len, rows))
    input_ids = torch.tensor([row + [0] * (length - len(row)) for row in rows])
    labels = torch.full_like(input_ids, -100)
    for i, row in enumerate(rows):
        labels[i, len(row) - 4:len(row)] = input_ids[i, len(row) - 4:len(row)]
    batch = {"input_ids": input_ids, "attention_mask": (input_ids != 0).long(), "labels": labels,
             "pixel_values": torch.randn(b, t, 3, S, S), "region_masks": masks, "region_given": given,
             "region_valid": valid}
    if config.uses_objects:
        batch.update(object_masks=objects, object_valid=object_valid)
    return batch


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_end_to_end_loss_backward_and_region_gradients(encoder, connector):
    torch.manual_seed(0)
    encoder, _, option = encoder.partition("+")
    extra = EXTRAS.get(option, {})
    config = make_config(encoder, connector, **extra)
    model = RegionLMForConditionalGeneration(config).train()
    captured, seen_pixels = [], []

    def keep_grads(module, args, encoding):
        for part in (encoding.region_embeds or []) + (encoding.object_embeds or []):
            part.retain_grad()
        captured.append(encoding)

    model.region_encoder.register_forward_hook(keep_grads)
    model.vision_tower.register_forward_pre_hook(lambda m, a, kw: seen_pixels.append(kw["pixel_values"]),
                                                 with_kwargs=True)
    batch = _batch(config)
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    encoding = captured[0]
    if encoder == "visual_marks":  # no embeddings: the region reaches the model through the pixels
        assert encoding.region_embeds is None
        assert not torch.equal(seen_pixels[0], batch["pixel_values"].flatten(0, 1))
        return
    parts = list(encoding.region_embeds) + list(encoding.object_embeds or [])
    assert sum(p.shape[0] for p in parts) > 0
    for part in parts:
        if part.shape[0]:
            assert part.grad is not None and part.grad.abs().sum() > 0
    own = [p for p in model.region_encoder.parameters() if p.requires_grad]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in own)
    if encoder in ("token_mark", "mask_pool+marks"):
        assert out.aux_loss is not None and torch.isfinite(out.aux_loss)
        assert torch.allclose(out.loss, out.lm_loss + config.guide_alpha * out.aux_loss)


@pytest.mark.parametrize("encoder,connector,extra", [("token_mark", "stc", {}),
                                                     ("object_tokens", "pool", {"object_projector": "attention"}),
                                                     ("mask_pool", "pool", {"region_geometry": True,
                                                                            "region_silhouette": True}),
                                                     ("mask_pool", "t_selector", {"region_marks": True})])
def test_inference_has_no_aux_loss_and_weights_round_trip(tmp_path, encoder, connector, extra):
    torch.manual_seed(0)
    config = make_config(encoder, connector, **extra)
    model = RegionLMForConditionalGeneration(config).eval()
    batch = _batch(config)
    with torch.no_grad():
        out = model(**batch)
    assert out.aux_loss is None and torch.equal(out.loss, out.lm_loss)
    model.save_pretrained(tmp_path)
    loaded = RegionLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    for (name, p), (_, q) in zip(model.region_encoder.named_parameters(), loaded.region_encoder.named_parameters()):
        assert torch.equal(p, q), name
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, out.logits)
