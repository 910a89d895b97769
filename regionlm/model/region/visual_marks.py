"""visual_marks (Set-of-Mark / ViP-LLaVA baseline): the region is drawn on the frames before the vision tower.

Each valid region's contour (a 2-pixel outline along the inside of its mask; the frame's border counts as outside,
so a region touching the edge is outlined there too) is painted in its own colour on the frames where it is given,
directly in the normalised pixel space the vision tower sees (colour - image_mean) / image_std. The prompt then
names the colour instead of a `<region>` embedding: the processor imports ``MARK_COLOURS`` and writes region i as
"the object outlined in MARK_COLOURS[i][0]" (config.tokens_per_region is 0), so forward adds nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regionlm.errors import RegionError

from .base import RegionEncoder, RegionEncoding, register_region_encoder
from .common import check_resolution

# (name, RGB in [0, 1]) by region slot; saturated hues first, the ones easiest to tell apart and to name.
MARK_COLOURS = [
    ("red", (1.0, 0.0, 0.0)),
    ("green", (0.0, 1.0, 0.0)),
    ("blue", (0.0, 0.0, 1.0)),
    ("yellow", (1.0, 1.0, 0.0)),
    ("cyan", (0.0, 1.0, 1.0)),
    ("magenta", (1.0, 0.0, 1.0)),
    ("orange", (1.0, 0.5, 0.0)),
    ("purple", (0.5, 0.0, 1.0)),
    ("white", (1.0, 1.0, 1.0)),
    ("black", (0.0, 0.0, 0.0)),
    ("pink", (1.0, 0.6, 0.8)),
    ("brown", (0.6, 0.3, 0.1)),
]
CONTOUR_WIDTH = 2  # pixels


def contour(masks: torch.Tensor, width: int = CONTOUR_WIDTH) -> torch.Tensor:
    """(..., H, W) masks -> (..., H, W) bool: mask pixels within ``width`` pixels (chessboard distance) of a pixel
    outside the mask or of the frame's edge."""
    inside = masks > 0.5
    lead, (hh, ww) = inside.shape[:-2], inside.shape[-2:]
    outside = (~inside).reshape(-1, 1, hh, ww).float()
    outside = F.pad(outside, (width,) * 4, value=1.0)  # beyond the frame counts as outside
    near_outside = F.max_pool2d(outside, 2 * width + 1, stride=1) > 0
    return inside & near_outside.reshape(*lead, hh, ww)


@register_region_encoder("visual_marks")
class VisualMarksEncoder(RegionEncoder):
    def __init__(self, config, connector):
        super().__init__(config, connector)
        if config.max_regions > len(MARK_COLOURS):
            raise RegionError(f"config.max_regions is {config.max_regions}, visual_marks has only "
                              f"{len(MARK_COLOURS)} named colours")

    def colours(self, device, dtype) -> torch.Tensor:
        """(len(MARK_COLOURS), 3) mark colours in the normalised pixel space."""
        rgb = torch.tensor([c for _, c in MARK_COLOURS], device=device, dtype=dtype)
        mean = torch.tensor(self.config.image_mean, device=device, dtype=dtype)
        std = torch.tensor(self.config.image_std, device=device, dtype=dtype)
        return (rgb - mean) / std

    def prepare_pixels(self, pixel_values, regions):
        if regions.masks is None:
            return pixel_values
        check_resolution(regions, pixel_values.shape[-1])
        r = regions.masks.shape[1]
        if r > len(MARK_COLOURS):
            raise RegionError(f"region_masks: {r} region slots, visual_marks has only {len(MARK_COLOURS)} colours")
        colours = self.colours(pixel_values.device, pixel_values.dtype)
        lines = contour(regions.masks) & regions.given.to(torch.bool)[..., None, None]  # (B, R, T, S, S)
        lines = lines & regions.valid.to(torch.bool)[:, :, None, None, None]
        out = pixel_values.clone()
        for i in range(r):  # later regions are drawn over earlier ones where outlines cross
            where = lines[:, i, :, None]  # (B, T, 1, S, S)
            out = torch.where(where, colours[i][None, None, :, None, None], out)
        return out

    def forward(self, features, regions, context):
        return RegionEncoding()
