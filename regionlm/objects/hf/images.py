"""Frames in and masks out of the SAM family without their image processors (the SAM 2 / SAM 3 ones need
torchvision): resize and normalise the frame into the model's square input, and bring mask logits back."""

from __future__ import annotations

import numpy as np


class Geometry:
    """Where a frame of (height, width) lands in the model's side x side input."""

    def __init__(self, height: int, width: int, side: int, square: bool):
        self.height, self.width, self.side, self.square = height, width, side, square
        if square:
            self.new_h, self.new_w = side, side
        else:
            scale = side / max(height, width)
            self.new_h, self.new_w = int(height * scale + 0.5), int(width * scale + 0.5)
        self.sx, self.sy = self.new_w / width, self.new_h / height


def preprocess(frame: np.ndarray, geometry: Geometry, mean, std, device):
    """uint8 (H, W, 3) -> normalised (1, 3, side, side) float tensor."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(frame, dtype=np.uint8)).to(device).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(geometry.new_h, geometry.new_w), mode="bilinear", align_corners=False,
                      antialias=True)
    x = (x - torch.tensor(mean, device=device)[:, None, None]) / torch.tensor(std, device=device)[:, None, None]
    if not geometry.square:
        x = F.pad(x, (0, geometry.side - geometry.new_w, 0, geometry.side - geometry.new_h))
    return x


def masks_to_frame(low_res, geometry: Geometry, threshold: float) -> np.ndarray:
    """Mask logits (N, h, w) of the model's square input -> (N, H, W) bool on the frame."""
    import torch.nn.functional as F

    x = low_res[:, None].float()
    if not geometry.square:
        x = F.interpolate(x, size=(geometry.side, geometry.side), mode="bilinear", align_corners=False)
        x = x[..., : geometry.new_h, : geometry.new_w]
    x = F.interpolate(x, size=(geometry.height, geometry.width), mode="bilinear", align_corners=False)
    return (x[:, 0] > threshold).cpu().numpy()
