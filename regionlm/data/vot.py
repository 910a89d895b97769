"""VOT sequence folders: `groundtruth.txt` with a polygon (8 numbers, a rotated rectangle) or an axis-aligned
`x,y,w,h` (4 numbers) per line; a line of NaNs means the target is absent.

Polygon -> axis-aligned box, the convention of the VOT toolkit and siamese-fc ("preserve area"): take the
bounding box of the points, then scale its width and height about its centre by sqrt(A_polygon / A_bbox),
where A_polygon comes from the shoelace formula. The result keeps the polygon's centre (for a parallelogram,
the bbox centre is the vertex mean) and area. Unlike the MATLAB-derived code we add no "+1" to w and h: boxes
here are in continuous pixel coordinates.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult
from regionlm.data.sot import Sequence, check_counts, find_frames, find_groundtruth, load_sequences, read_number_lines
from regionlm.errors import DataFormatError


def polygon_area(polygons: np.ndarray) -> np.ndarray:
    """Shoelace area of (N, 2k) polygons given as x1,y1,x2,y2,..."""
    xs, ys = polygons[:, 0::2], polygons[:, 1::2]
    return 0.5 * np.abs(np.sum(xs * np.roll(ys, -1, axis=1) - np.roll(xs, -1, axis=1) * ys, axis=1))


def polygons_to_xywh(polygons: np.ndarray) -> np.ndarray:
    """(N, 2k) polygons -> (N, 4) x,y,w,h boxes with the same centre and area (see the module docstring)."""
    polygons = np.asarray(polygons, dtype=np.float64).reshape(len(polygons), -1)
    xs, ys = polygons[:, 0::2], polygons[:, 1::2]
    x1, x2, y1, y2 = xs.min(1), xs.max(1), ys.min(1), ys.max(1)
    bw, bh = x2 - x1, y2 - y1
    bbox_area = bw * bh
    with np.errstate(invalid="ignore", divide="ignore"):
        # A degenerate (zero-area) bbox has nothing to rescale: keep it.
        scale = np.where(bbox_area > 0, np.sqrt(polygon_area(polygons) / np.where(bbox_area > 0, bbox_area, 1)), 1.0)
    w, h = bw * scale, bh * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)


def load_vot_sequence(seq_dir: str | os.PathLike, *, name: str | None = None) -> Sequence:
    """Load one VOT sequence folder (frames in the folder, color/ or frames/). Raises DataFormatError."""
    seq_dir = Path(seq_dir)
    name = name or seq_dir.name
    gt = find_groundtruth(seq_dir)
    if gt is None:
        raise DataFormatError(seq_dir, name, None, "no groundtruth.txt")
    frames_dir, frames = find_frames(seq_dir)
    rows = read_number_lines(gt, name, lambda k: k == 4 or (k >= 6 and k % 2 == 0),
                             "4 numbers x,y,w,h or a polygon of 8 numbers x1,y1,...,x4,y4")
    check_counts(gt, name, len(rows), frames_dir, len(frames))

    boxes = np.full((len(rows), 4), np.nan)
    width = max((len(r) for r in rows), default=8)
    polygons = np.full((len(rows), max(width, 8)), np.nan)
    for n, row in enumerate(rows):
        if np.isnan(row).any():
            continue  # absent target
        if len(row) == 4:
            if row[2] < 0 or row[3] < 0:
                raise DataFormatError(gt, name, f"line {n + 1}", f"negative width or height ({row[2]:g}, {row[3]:g})")
            boxes[n] = row
            x, y, w, h = row
            polygons[n, :8] = [x, y, x + w, y, x + w, y + h, x, y + h]
        else:
            boxes[n] = polygons_to_xywh(row[None])[0]
            polygons[n, : len(row)] = row
    absent = np.isnan(boxes).any(axis=1) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    return Sequence(name=name, frames_dir=frames_dir, frames=frames, boxes_xywh=boxes, absent=absent,
                    polygons=polygons)


@register_format("vot")
def load_vot(path: str | os.PathLike, *, errors: str = "raise") -> LoadResult:
    """Load a VOT sequence folder, or a folder of them, as Sequence records (axis-aligned boxes + polygons)."""
    return load_sequences(path, load_vot_sequence, errors)
