"""roi_box (GPT4RoI / Artemis-like baseline): the region is reduced to its bounding box and described by box-shaped
pooling of the vision features, the way RoI features are, rather than by its exact mask.

Per given frame, the box of the mask (pixels > 0.5, in input pixels) is mapped to the feature grid and split into
``roi_grid`` x ``roi_grid`` equal cells; each cell, and then the whole box, is average-pooled with exact area
weights (a grid cell counts by the fraction of it inside the box: RoIAlign's average with the integral taken
exactly instead of sampled, so a box smaller than a patch still pools the patch it lies in). The roi_grid^2 + 1
vectors are averaged over the given frames where the region is not empty (Artemis pools its RoI over the frames it
tracks), and the encoder's own two-layer MLP maps them to the LM's width: roi_grid^2 + 1 `<region>` tokens in the
order cells row by row, then the whole box.
"""

from __future__ import annotations

import torch

from regionlm.model.connectors import Projector

from .base import RegionEncoder, RegionEncoding, register_region_encoder
from .common import check_resolution, empty_embeds, mask_boxes, region_slots


def box_cells(boxes: torch.Tensor, k: int) -> torch.Tensor:
    """(..., 4) xyxy boxes -> (..., k*k + 1, 4): the k x k equal cells row by row, then the box itself."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    steps = torch.arange(k + 1, device=boxes.device, dtype=boxes.dtype) / k
    xs = x1[..., None] + (x2 - x1)[..., None] * steps  # (..., k+1)
    ys = y1[..., None] + (y2 - y1)[..., None] * steps
    cx1, cx2 = xs[..., None, :-1].expand(*xs.shape[:-1], k, k), xs[..., None, 1:].expand(*xs.shape[:-1], k, k)
    cy1, cy2 = ys[..., :-1, None].expand(*ys.shape[:-1], k, k), ys[..., 1:, None].expand(*ys.shape[:-1], k, k)
    cells = torch.stack([cx1, cy1, cx2, cy2], dim=-1).flatten(-3, -2)  # (..., k*k, 4)
    return torch.cat([cells, boxes[..., None, :]], dim=-2)


def box_weights(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(..., 4) boxes in grid units -> (..., h, w): the area of each grid cell [j, j+1) x [i, i+1) inside the box."""
    def overlap(lo, hi, n):
        j = torch.arange(n, device=boxes.device, dtype=boxes.dtype)
        return (torch.minimum(hi[..., None], j + 1) - torch.maximum(lo[..., None], j)).clamp_min(0.0)

    x1, y1, x2, y2 = boxes.unbind(-1)
    return overlap(y1, y2, h)[..., :, None] * overlap(x1, x2, w)[..., None, :]


@register_region_encoder("roi_box")
class RoIBoxEncoder(RegionEncoder):
    def __init__(self, config, connector):
        super().__init__(config, connector)
        self.mlp = Projector(int(config.vision_config.hidden_size), int(config.text_config.hidden_size),
                             config.projector_hidden_act)

    def pool(self, features: torch.Tensor, masks: torch.Tensor) -> tuple:
        """features (B, T, h, w, C), masks (B, R, T, S, S) -> (RoI features (B, R, T, k*k+1, C), nonempty
        (B, R, T))."""
        b, t, h, w, c = features.shape
        boxes, nonempty = mask_boxes(masks)
        scale = torch.tensor([w / masks.shape[-1], h / masks.shape[-2]] * 2, device=features.device)
        cells = box_cells(boxes.to(features.device) * scale, self.config.roi_grid).to(features.dtype)
        weights = box_weights(cells, h, w)  # (B, R, T, K, h, w)
        pooled = torch.einsum("brtkhw,bthwc->brtkc", weights, features)
        return pooled / weights.sum((-2, -1)).clamp_min(1e-6)[..., None], nonempty

    def forward(self, features, regions, context):
        b = features.shape[0]
        if regions.masks is None:
            return RegionEncoding(region_embeds=empty_embeds(b, context.tokens.shape[-1], context.tokens))
        check_resolution(regions, self.config.image_size)
        pooled, nonempty = self.pool(features, regions.masks)
        use = (regions.given.to(torch.bool) & nonempty).to(features.dtype)  # (B, R, T)
        per_region = (torch.einsum("brtkc,brt->brkc", pooled, use)
                      / use.sum(-1).clamp_min(1.0)[..., None, None])  # a region empty everywhere: zeros
        tokens = self.mlp(per_region)  # (B, R, K, D)
        return RegionEncoding(region_embeds=[tokens[i, slots].flatten(0, 1)
                                             for i, slots in enumerate(region_slots(regions))])
