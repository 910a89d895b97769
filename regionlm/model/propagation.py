"""Region propagation: a region given on one frame is followed to the other frames of the clip by a tracker, so
the model sees it on every sampled frame where it is found.

The model trains on regions given on every frame where the object is seen in half of its examples
(``ExampleOptions.multi_frame_prob``), the rest on one key frame. A user (or a single-frame benchmark, as
VideoRefer-Bench's single-frame mode) gives one frame. With the region on every frame the model no longer has
to find the object again in the coarse context tokens to say where it goes: on the validation split (seed 2) the
8,000-step model's descriptions read CIDEr 94.5 from the key frame alone and 105.3 from the true masks on every
frame (docs/RESULTS.md, which also has the numbers with a tracker's masks instead of the truth).

``PROPAGATIONS``: ``off`` (the region on its given frames only) or ``classical`` (no weights: the classical mask
tracker for masks, the classical box tracker for boxes; objects/classical/track.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

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


def _follow_mask(frames: Sequence[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """The mask on frames[0] followed through frames[1:] (an empty mask where the tracker lost it)."""
    from ..objects.classical.track import ClassicalMaskTracker

    tracker = ClassicalMaskTracker()
    tracker.start(frames[0], {1: mask})
    return [tracker.step(frame)[1] for frame in frames[1:]]


def _follow_box(frames: Sequence[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """The box prompt on frames[0] followed through frames[1:] as filled boxes (empty where lost)."""
    from ..objects.classical.track import ClassicalBoxTracker

    h, w = mask.shape
    tracker = ClassicalBoxTracker()
    tracker.init(frames[0], mask_to_box(mask))
    out = []
    for frame in frames[1:]:
        box = tracker.update(frame)
        out.append(box_to_mask(box, h, w) if box is not None else np.zeros((h, w), bool))
    return out


def propagate_region(get_frames: Callable[[list[int]], np.ndarray], masks: dict[int, np.ndarray], key: int,
                     targets: Sequence[int], method: str = "classical") -> dict[int, np.ndarray]:
    """``masks`` ({frame: (H, W) bool}) completed on ``targets``: the region on frame ``key`` is tracked forward
    to the last target and backward to the first through every frame in between (``get_frames(indices)`` ->
    (N, H, W, 3)); frames the tracker lost are left out. Frames already in ``masks`` keep their masks."""
    if method not in PROPAGATIONS:
        raise RegionLMError(f"region propagation must be one of {', '.join(PROPAGATIONS)}, got {method!r}")
    out = dict(masks)
    todo = [t for t in targets if t not in masks]
    if method == "off" or not todo or key not in masks or not masks[key].any():
        return out
    follow = _follow_box if is_box_mask(masks[key]) else _follow_mask
    for path in (list(range(key, max(todo) + 1)), list(range(key, min(todo) - 1, -1))):
        if len(path) < 2:
            continue
        followed = follow(list(get_frames(path)), masks[key])
        for f, m in zip(path[1:], followed):
            if f in todo and m.any():
                out[f] = m
    return out


__all__ = ["PROPAGATIONS", "is_box_mask", "propagate_region"]
