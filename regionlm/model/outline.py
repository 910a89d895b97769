"""Outlining what the pointer head points at.

The pointer head (regionlm.model.pointer) says where the object is on each frame but keeps the first box's size.
Here the classical segmenter (the object pipeline's box mode, regionlm.objects.classical) outlines the object
inside the pointed box grown ``grow`` times, and the outline's box is the answer: the box follows the object's own
extent as it turns, grows or leaves the frame. An outline that overlaps the pointed box less than ``min_iou`` is
something else (a neighbour, the background): the pointed box is kept. The model says where; the segmenter says
how far, as SAM outlines what a grounding model points at. The refer head's candidates are outlined the same way
(regionlm.model.refer, ``outline_in``). Chosen on the validation split (docs/RESULTS.md, "Outlining the pointed
box"): world-rsot 60.2 -> 69.1; grow 1.3-1.5 and min_iou 0.2-0.4 all within 0.3 of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import RegionLMError


@dataclass(frozen=True)
class OutlineConfig:
    grow: float = 1.3  # the pointed box grown this much (each side about its centre): room for a drifted object
    min_iou: float = 0.3  # an outline overlapping the pointed box less is another thing: the pointed box is kept
    # on frames larger than the segmenter's colour path takes, GrabCut reads the crop around the box scaled to at
    # most this long side: 128 against the segmenter's 200 is 1.9x faster on the VOT bag (360 x 480) and 3x per
    # frame on a 960 x 540 mp4, with the same AUC (38.9 / 39.2; docs/RESULTS.md)
    work_side: int = 128

    def validate(self) -> None:
        if not self.grow >= 1.0:
            raise RegionLMError(f"outline grow must be >= 1, got {self.grow}")
        if not 0.0 <= self.min_iou <= 1.0:
            raise RegionLMError(f"outline min_iou must be in [0, 1], got {self.min_iou}")
        if not (isinstance(self.work_side, int) and self.work_side >= 16):
            raise RegionLMError(f"outline work_side must be an integer >= 16, got {self.work_side!r}")


def outline_segmenter(config: OutlineConfig):
    """The classical segmenter (its box mode) as the outline uses it: GrabCut at ``config.work_side``."""
    from ..objects.classical.segment import ClassicalSegmenter

    return ClassicalSegmenter(grabcut_side=config.work_side)


def segmenter_view(frame: np.ndarray) -> np.ndarray:
    """The frame as the segmenter reads it: a small decoded frame's chroma smoothed first, as the object pipeline
    does (codec chroma subsampling smears colour edges over whole pixels at 64 x 64)."""
    from ..objects.chroma import small_frame_view

    return small_frame_view(frame)


def grown(box: Sequence[float], scale: float, height: int, width: int) -> list:
    """The xyxy ``box`` grown ``scale`` times about its centre, cut to the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    gx, gy = (x2 - x1) * (scale - 1) / 2, (y2 - y1) * (scale - 1) / 2
    return [max(0.0, x1 - gx), max(0.0, y1 - gy), min(float(width), x2 + gx), min(float(height), y2 + gy)]


def outline_in(segmenter, view: np.ndarray, box: Sequence[float]) -> Optional[np.ndarray]:
    """The (H, W) bool mask the segmenter outlines inside the xyxy ``box`` of ``view`` (segmenter_view), or None
    when the box is empty or nothing is outlined."""
    x1, y1, x2, y2 = box
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    mask = segmenter.segment(view, boxes=np.array([list(box)], float))[0]
    return mask if mask.any() else None


def outline_box(segmenter, view: np.ndarray, box: Sequence[float], config: OutlineConfig) -> list:
    """The box of the object outlined around the pointed xyxy ``box`` (see the module), or ``box`` itself."""
    return outlined(segmenter, view, box, config)[0]


def outlined(segmenter, view: np.ndarray, box: Sequence[float], config: OutlineConfig) -> tuple:
    """(outline_box's box, the outline's (H, W) bool mask, or None when the pointed box is kept)."""
    from ..eval.metrics.boxes import box_iou_xyxy
    from ..regions import mask_to_box

    h, w = view.shape[:2]
    mask = outline_in(segmenter, view, grown(box, config.grow, h, w))
    found = mask_to_box(mask) if mask is not None else None
    if found is None or float(box_iou_xyxy(np.asarray(found, float), np.asarray(box, float))) < config.min_iou:
        return [float(v) for v in box], None
    return [float(v) for v in found], mask


def outline_track(get: Callable, n: int, boxes: list, config: OutlineConfig, segmenter=None,
                  chunk: int = 64) -> list:
    """[x, y, w, h] boxes of frames 0..n-1 (``get(start, stop)`` -> those frames, (k, H, W, 3) uint8) with every
    box after the first (the one given) outlined; read ``chunk`` frames at a time."""
    config.validate()
    segmenter = segmenter or outline_segmenter(config)
    out = [list(boxes[0])]
    for start in range(1, n, chunk):
        frames = get(start, min(start + chunk, n))
        for t, frame in enumerate(frames, start):
            x, y, bw, bh = boxes[t]
            x1, y1, x2, y2 = outline_box(segmenter, segmenter_view(frame), [x, y, x + bw, y + bh], config)
            out.append([x1, y1, x2 - x1, y2 - y1])
    return out
