"""Exact shape masks: each shape is a polygon (or disc / ring) rasterised with sub-pixel precision."""

from __future__ import annotations

import math

import cv2
import numpy as np

_SHIFT = 4  # cv2 fixed-point bits: vertices at 1/16 pixel


def _regular(n: int, start_deg: float) -> np.ndarray:
    a = np.deg2rad(start_deg + np.arange(n) * 360.0 / n)
    return np.stack([np.cos(a), np.sin(a)], 1)


def _star() -> np.ndarray:
    a = np.deg2rad(-90 + np.arange(10) * 36.0)
    r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _cross() -> np.ndarray:
    t = 0.36
    return np.array([(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1),
                     (-t, t), (-1, t), (-1, -t), (-t, -t)], float)


# Unit outlines (radius 1, y down); rotation is applied when drawing.
OUTLINES = {
    "square": _regular(4, 45) * math.sqrt(0.5) * 1.6,  # side 1.6 r: about the area of a circle of radius r
    "triangle": _regular(3, -90) * 1.1,
    "star": _star() * 1.1,
    "diamond": np.array([(0, -1.1), (0.75, 0), (0, 1.1), (-0.75, 0)], float),
    "cross": _cross(),
    "hexagon": _regular(6, 0),
}


def shape_mask(shape: str, cx: float, cy: float, radius: float, angle_deg: float, height: int, width: int,
               out: np.ndarray | None = None) -> np.ndarray:
    """A bool (H, W) mask of `shape` centred at (cx, cy) (pixel centres at integer + 0.5), rotated clockwise."""
    mask = np.zeros((height, width), np.uint8) if out is None else out
    mask[...] = 0
    scale = 1 << _SHIFT
    if shape in ("circle", "ring"):
        centre = (int(round((cx - 0.5) * scale)), int(round((cy - 0.5) * scale)))
        cv2.circle(mask, centre, int(round(radius * scale)), 1, -1, cv2.LINE_8, _SHIFT)
        if shape == "ring":
            cv2.circle(mask, centre, int(round(radius * 0.55 * scale)), 0, -1, cv2.LINE_8, _SHIFT)
    else:
        a = math.radians(angle_deg)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = OUTLINES[shape] @ rot.T * radius + (cx - 0.5, cy - 0.5)
        cv2.fillPoly(mask, [np.round(pts * scale).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def extent(shape: str, radius: float) -> float:
    """Distance from the centre to the farthest point of the shape at any rotation."""
    if shape in ("circle", "ring"):
        return radius
    return float(np.linalg.norm(OUTLINES[shape], axis=1).max() * radius)


def inner_radius(shape: str, radius: float) -> float:
    """Distance from the centre to the nearest edge: a shape of smaller extent placed there is fully covered."""
    if shape == "circle":
        return radius
    if shape == "ring":
        return 0.0  # its hole shows what is behind
    pts = OUTLINES[shape]
    edges = np.roll(pts, -1, 0) - pts
    # distance from the origin to each edge's line (these outlines are star-shaped around the origin)
    cross = edges[:, 0] * pts[:, 1] - edges[:, 1] * pts[:, 0]
    dist = np.abs(cross) / np.linalg.norm(edges, axis=1)
    return float(dist.min() * radius)
