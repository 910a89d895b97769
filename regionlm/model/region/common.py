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


def region_slots(regions) -> list:
    """Per sample, the indices of its valid region slots, in order (the order of its `<region>` placeholders)."""
    if regions.masks is None:
        return []
    valid = regions.valid if regions.valid is not None else torch.ones(regions.masks.shape[:2], dtype=torch.bool)
    return [torch.nonzero(row, as_tuple=False).flatten().tolist() for row in valid.cpu()]


def given_frames(regions, b: int, r: int) -> list:
    """The frame indices on which region slot ``r`` of sample ``b`` is given."""
    return torch.nonzero(regions.given[b, r].cpu(), as_tuple=False).flatten().tolist()


def check_resolution(regions, size: int, what: str = "region_masks") -> None:
    """Masks must be at the model's input resolution (the processor resizes them with the frames)."""
    for name, masks in ((what, regions.masks), ("object_masks", regions.object_masks)):
        if masks is not None and tuple(masks.shape[-2:]) != (size, size):
            raise RegionError(f"{name}: masks are {tuple(masks.shape[-2:])} pixels, the model takes "
                              f"{size}x{size} frames; resize them with the frames")


def empty_embeds(batch: int, dim: int, like: torch.Tensor) -> list:
    """One (0, dim) tensor per sample: no placeholders to fill."""
    return [like.new_zeros(0, dim) for _ in range(batch)]
