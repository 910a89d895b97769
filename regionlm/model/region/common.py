"""Shared arithmetic of the region encoders: masks at input resolution -> coverage of the feature grid, masked
pooling, boxes from masks, and the bookkeeping of which frames a region is given on.

Masks arrive at the processor's resolution S (e.g. 64 px) while features live on the patch grid (e.g. 8x8), so a
mask becomes a *coverage* map: the fraction of each grid cell the mask covers (area averaging, not nearest
sampling), which keeps regions smaller than a patch from vanishing and keeps pooling differentiable in the
features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regionlm.errors import RegionError


def grid_coverage(masks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(..., S, S) masks in [0, 1] -> (..., h, w): the mean of the mask over each grid cell's pixels.

    When S is a multiple of the grid (the usual case: S = grid * patch) every cell averages exactly its own
    pixels; otherwise adaptive pooling's overlapping windows approximate it."""
    lead, (s_h, s_w) = masks.shape[:-2], masks.shape[-2:]
    x = masks.reshape(-1, 1, s_h, s_w)
    if s_h % h == 0 and s_w % w == 0:
        y = F.avg_pool2d(x, (s_h // h, s_w // w))
    else:
        y = F.adaptive_avg_pool2d(x, (h, w))
    return y.reshape(*lead, h, w)


def masked_pool(features: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6):
    """Weighted average of grid features per region and frame.

    features: (B, T, h, w, C); weights: (B, R, T, h, w) coverage. Returns (pooled (B, R, T, C), area (B, R, T)):
    pooled = sum_hw w f / sum_hw w, exactly zero where the region covers nothing on that frame (area 0)."""
    weights = weights.to(features.dtype)
    area = weights.sum(dim=(-2, -1))
    total = torch.einsum("brthw,bthwc->brtc", weights, features)
    pooled = total / area.clamp_min(eps)[..., None]
    return pooled * (area > 0)[..., None].to(features.dtype), area


def mask_boxes(masks: torch.Tensor, threshold: float = 0.5):
    """(..., S, S) masks -> (boxes (..., 4) float xyxy in pixels with x2/y2 exclusive, nonempty (...) bool).

    The torch twin of regions.mask_to_box, batched; pixels count as inside where mask > threshold. Empty masks
    get the box (0, 0, 0, 0)."""
    inside = masks > threshold
    rows, cols = inside.any(dim=-1), inside.any(dim=-2)  # (..., S) each
    nonempty = rows.any(dim=-1)

    def span(occupied):
        n = occupied.shape[-1]
        idx = torch.arange(n, device=occupied.device)
        return torch.where(occupied, idx, n).amin(dim=-1), torch.where(occupied, idx, -1).amax(dim=-1) + 1

    y1, y2 = span(rows)
    x1, x2 = span(cols)
    boxes = torch.stack([x1, y1, x2, y2], dim=-1).to(torch.float32)
    return boxes * nonempty[..., None], nonempty


GEOMETRY_DIM = 7  # centre x, y (from the frame's centre), box w, h, velocity x, y, velocity known
VELOCITY_SCALE = 10.0  # a clip frame moves an object a few hundredths of the frame: bring it near unit size


def region_geometry(masks: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """Where a region is and how it moves, per frame, from its masks alone: (B, R, T, S, S), (B, R, T) bool ->
    (B, R, T, GEOMETRY_DIM). Coordinates are fractions of the frame: the mask's centroid minus 0.5, its box's
    width and height, and its velocity in frame-fractions per clip frame (x VELOCITY_SCALE) to the next frame
    where it is given and seen (from the previous one on its last such frame), with a flag saying whether a
    velocity could be measured (a region shown on one frame has none). Frames not given or empty are zeros."""
    b, r, t, s_h, s_w = masks.shape
    m = masks.to(torch.float32)
    area = m.sum(dim=(-2, -1))
    seen = given & (area > 0)
    ys = (torch.arange(s_h, dtype=m.dtype, device=m.device) + 0.5) / s_h
    xs = (torch.arange(s_w, dtype=m.dtype, device=m.device) + 0.5) / s_w
    safe = area.clamp_min(1e-6)
    centre = torch.stack([(m.sum(dim=-2) * xs).sum(-1) / safe, (m.sum(dim=-1) * ys).sum(-1) / safe], dim=-1)
    boxes, _ = mask_boxes(m)
    size = torch.stack([(boxes[..., 2] - boxes[..., 0]) / s_w, (boxes[..., 3] - boxes[..., 1]) / s_h], dim=-1)
    # the nearest seen frame after (and before) each frame; -1 where there is none (running min / max over the
    # frames shifted by one, not a loop over frames: a few device kernels however long the clip)
    frame = torch.arange(t, device=m.device).expand(b, r, t)
    nxt = torch.where(seen, frame, t)[..., 1:]
    after = torch.cat([nxt.flip(-1).cummin(-1).values.flip(-1), nxt.new_full((b, r, 1), t)], -1)
    after = torch.where(after == t, -1, after)
    prev = torch.where(seen, frame, -1)[..., :-1]
    before = torch.cat([prev.new_full((b, r, 1), -1), prev.cummax(-1).values], -1)
    other = torch.where(after >= 0, after, before)
    known = seen & (other >= 0)
    gap = (other - frame).to(m.dtype)
    gap = torch.where(known, gap, torch.ones_like(gap))
    moved = torch.gather(centre, 2, other.clamp_min(0)[..., None].expand(b, r, t, 2)) - centre
    velocity = moved / gap[..., None] * known[..., None] * VELOCITY_SCALE
    geometry = torch.cat([centre - 0.5, size, velocity, known[..., None].to(m.dtype)], dim=-1)
    return (geometry * seen[..., None]).to(masks.dtype)


TRAJECTORY_DIM = 16


def region_trajectory(geometry: torch.Tensor) -> torch.Tensor:
    """A region's whole path in one vector, from its per-frame geometry (region_geometry): (B, R, T, GEOMETRY_DIM)
    -> (B, R, TRAJECTORY_DIM): centre and size on its first and last seen frames, its first measured velocity and
    its mean velocity, whether any velocity was measured, the share of the clip's frames it is seen on, and where
    its first and last seen frames fall in the clip (0..1). The per-frame embedding adds these numbers to
    appearance features, where a small LM trained from scratch did not learn to read velocity; here they have a
    token of their own. A region seen on no frame gives zeros."""
    b, r, t, _ = geometry.shape
    seen = geometry[..., 2:4].abs().sum(-1) > 0  # a seen frame has a box of some size
    known = geometry[..., 6] > 0
    frame = torch.arange(t, device=geometry.device).expand(b, r, t)
    first = torch.where(seen, frame, t).amin(-1).clamp_max(t - 1)
    last = torch.where(seen, frame, -1).amax(-1).clamp_min(0)
    first_known = torch.where(known, frame, t).amin(-1).clamp_max(t - 1)

    def at(idx):
        return torch.gather(geometry, 2, idx[..., None, None].expand(b, r, 1, geometry.shape[-1]))[:, :, 0]

    n_known = known.sum(-1, keepdim=True).clamp_min(1).to(geometry.dtype)
    mean_velocity = (geometry[..., 4:6] * known[..., None]).sum(2) / n_known
    any_known = known.any(-1, keepdim=True).to(geometry.dtype)
    any_seen = seen.any(-1, keepdim=True).to(geometry.dtype)
    span = max(t - 1, 1)
    out = torch.cat([at(first)[..., 0:4], at(last)[..., 0:4], at(first_known)[..., 4:6] * any_known,
                     mean_velocity, any_known, seen.sum(-1, keepdim=True).to(geometry.dtype) / t,
                     first[..., None].to(geometry.dtype) / span, last[..., None].to(geometry.dtype) / span], dim=-1)
    return out * any_seen


SILHOUETTE_SIZE = 6  # a silhouette is the mask inside its box resampled to 6x6 cells


def region_silhouette(masks: torch.Tensor, given: torch.Tensor, k: int = SILHOUETTE_SIZE) -> torch.Tensor:
    """The mask's shape inside its own box, per frame: (B, R, T, S, S), (B, R, T) -> (B, R, T, k * k), each cell
    the share of it the mask covers (sampled at 4x4 points per cell), so the same shape gives the same silhouette
    at any size or place (Ferret samples the free-form region for the same reason). A box prompt gives all ones;
    frames not given or empty are zeros."""
    b, r, t, s_h, s_w = masks.shape
    m = masks.to(torch.float32).reshape(-1, 1, s_h, s_w)
    boxes, nonempty = mask_boxes(m[:, 0])
    # normalised [-1, 1] corners of each box, for grid_sample (align_corners=False: pixel edges at +-1)
    x1, y1 = boxes[:, 0] / s_w * 2 - 1, boxes[:, 1] / s_h * 2 - 1
    x2, y2 = boxes[:, 2] / s_w * 2 - 1, boxes[:, 3] / s_h * 2 - 1
    n = 4 * k
    steps = (torch.arange(n, dtype=m.dtype, device=m.device) + 0.5) / n
    gx = x1[:, None] + (x2 - x1)[:, None] * steps  # (N, n)
    gy = y1[:, None] + (y2 - y1)[:, None] * steps
    grid = torch.stack([gx[:, None, :].expand(-1, n, n), gy[:, :, None].expand(-1, n, n)], dim=-1)
    sampled = F.grid_sample(m, grid, mode="nearest", align_corners=False)  # (N, 1, n, n)
    cells = F.avg_pool2d(sampled, 4).reshape(b, r, t, k * k)
    seen = (given & nonempty.reshape(b, r, t))[..., None]
    return (cells * seen).to(masks.dtype)


def region_slots(regions) -> list:
    """Per sample, the indices of its valid region slots, in order (the order of its `<region>` placeholders)."""
    if regions.masks is None:
        return []
    return [torch.nonzero(row, as_tuple=False).flatten().tolist() for row in regions.on_host()[1]]


def check_resolution(regions, size: int, what: str = "region_masks") -> None:
    """Masks must be at the model's input resolution (the processor resizes them with the frames)."""
    for name, masks in ((what, regions.masks), ("object_masks", regions.object_masks)):
        if masks is not None and tuple(masks.shape[-2:]) != (size, size):
            raise RegionError(f"{name}: masks are {tuple(masks.shape[-2:])} pixels, the model takes "
                              f"{size}x{size} frames; resize them with the frames")


def present_mean(tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(..., T, C) frame tokens, (..., T) bool -> (..., C) mean over present frames (zeros for a track never
    present)."""
    weight = present.to(tokens.dtype)
    return (tokens * weight[..., None]).sum(-2) / weight.sum(-1).clamp_min(1.0)[..., None]


def listed_objects(tokens: torch.Tensor, regions, max_objects: int) -> list:
    """(B, O, D) one token per object of ``regions.object_masks`` -> per sample, its valid objects' tokens in
    order, at most ``max_objects``."""
    valid = (regions.object_valid if regions.object_valid is not None
             else torch.ones(tokens.shape[:2], dtype=torch.bool))
    return [tokens[i, torch.nonzero(row.cpu()).flatten()[:max_objects].to(tokens.device)]
            for i, row in enumerate(valid)]


def empty_embeds(batch: int, dim: int, like: torch.Tensor) -> list:
    """One (0, dim) tensor per sample: no placeholders to fill."""
    return [like.new_zeros(0, dim) for _ in range(batch)]
