"""Region propagation: a region given on one frame is followed to the other frames of the clip by a tracker, so
the model sees it on every sampled frame where it is found.

The model trains on regions given on every frame where the object is seen in half of its examples
(``ExampleOptions.multi_frame_prob``), the rest on one key frame. A user (or a single-frame benchmark, as
VideoRefer-Bench's single-frame mode) gives one frame. With the region on every frame the model no longer has
to find the object again in the coarse context tokens. With the 8,000-step model the attributes its descriptions
name are right more often on the held-out test split (51.0% from the key frame alone, 52.8% with the classical
tracker's masks on every frame); CIDEr does not move beyond its noise (docs/RESULTS.md).

``PROPAGATIONS``: ``off`` (the region on its given frames only) or ``classical`` (no weights: the classical mask
tracker for masks, the classical box tracker without CSRT for boxes; objects/classical/track.py).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from ..errors import RegionLMError
from ..regions import box_to_mask, mask_to_box

PROPAGATIONS = ("off", "classical")


def is_box_mask(mask: np.ndarray) -> bool:
    """A mask that fills its bounding box is a box prompt (a filled box), and is followed as a box."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return False
    return int(mask.sum()) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)


# Frames tracked per direction at most: a long video is followed through every k-th frame (always through the
# targets), so a description of a real video does not track thousands of frames; read CHUNK frames at a time.
MAX_TRACKED = 64
CHUNK = 16
# Frames are tracked at most this size on their long side: the model sees the region resized to its own input
# (64x64 for the shipped model), so full-HD tracking would buy nothing and cost ~10x the time.
MAX_SIDE = 256


def _follow_mask(frames: Iterator[np.ndarray], mask: np.ndarray) -> Iterator[np.ndarray]:
    """The mask on the first frame followed through the others (an empty mask where the tracker lost it)."""
    from ..objects.classical.track import ClassicalMaskTracker

    tracker = ClassicalMaskTracker()
    tracker.start(next(frames), {1: mask})
    for frame in frames:
        yield tracker.step(frame)[1]


def _follow_box(frames: Iterator[np.ndarray], mask: np.ndarray) -> Iterator[np.ndarray]:
    """The box prompt on the first frame followed through the others as filled boxes (empty where lost)."""
    from ..objects.classical.track import BoxTrackerConfig, ClassicalBoxTracker

    h, w = mask.shape
    tracker = ClassicalBoxTracker(BoxTrackerConfig(csrt=False))  # CSRT: ~2/3 of the time, for rare rescues
    tracker.init(next(frames), mask_to_box(mask))
    for frame in frames:
        box = tracker.update(frame)
        yield box_to_mask(box, h, w) if box is not None else np.zeros((h, w), bool)


def tracking_path(key: int, end: int, targets: Sequence[int], limit: int = MAX_TRACKED) -> list[int]:
    """The frames from ``key`` to ``end`` (either direction) the tracker steps through: every frame, or every
    k-th one when there are more than ``limit``, and always the targets in between."""
    sign = 1 if end >= key else -1
    stride = max(1, math.ceil(abs(end - key) / limit))
    lo, hi = min(key, end), max(key, end)
    path = set(range(key, end + sign, sign * stride)) | {t for t in targets if lo <= t <= hi}
    return sorted(path, reverse=sign < 0)


def _read(get_frames: Callable[[list[int]], np.ndarray], path: list[int], size) -> Iterator[np.ndarray]:
    for i in range(0, len(path), CHUNK):
        for frame in get_frames(path[i:i + CHUNK]):
            yield frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _scaled(mask: np.ndarray, size) -> np.ndarray:
    """A mask at ``size`` ((w, h); None: as it is); an object smaller than a pixel there keeps one."""
    if size is None:
        return mask
    cover = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return cover >= 0.5 if (cover >= 0.5).any() else cover >= cover.max()


def propagate_region(get_frames: Callable[[list[int]], np.ndarray], masks: dict[int, np.ndarray], key: int,
                     targets: Sequence[int], method: str = "classical") -> dict[int, np.ndarray]:
    """``masks`` ({frame: (H, W) bool}) completed on ``targets``: the region on frame ``key`` is tracked forward
    to the last target and backward to the first (:func:`tracking_path`; ``get_frames(indices)`` ->
    (N, H, W, 3)); frames the tracker lost are left out. Frames already in ``masks`` keep their masks."""
    if method not in PROPAGATIONS:
        raise RegionLMError(f"region propagation must be one of {', '.join(PROPAGATIONS)}, got {method!r}")
    out = dict(masks)
    todo = [t for t in targets if t not in masks]
    if method == "off" or not todo or key not in masks or not masks[key].any():
        return out
    follow = _follow_box if is_box_mask(masks[key]) else _follow_mask
    h, w = masks[key].shape
    scale = MAX_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale))) if scale < 1 else None
    start = _scaled(masks[key], size)
    ends = [end for end, side in ((max(todo), max(todo) > key), (min(todo), min(todo) < key)) if side]
    for end in ends:  # forward to the last target, backward to the first: each side once
        path = tracking_path(key, end, todo)
        for f, m in zip(path[1:], follow(_read(get_frames, path, size), start)):
            if f in todo and m.any():
                out[f] = m if size is None else cv2.resize(m.astype(np.uint8), (w, h),
                                                           interpolation=cv2.INTER_NEAREST).astype(bool)
    return out


__all__ = ["MAX_SIDE", "MAX_TRACKED", "PROPAGATIONS", "is_box_mask", "propagate_region", "tracking_path"]
