"""Key-frame splitters: which frames start a new segment, where the pipeline detects and segments afresh.

``videoorion`` follows VideoOrion's object-centric splitting. Every frame gets a tag set (VideoOrion: RAM++ image
tags; here: the labels of the frame's detections, see :func:`frame_tags`). Walking the frames in order:

1. frame 0 is a key frame (the first segment starts there; tracking needs a first key frame). Its tag set is
   the reference.
2. a frame with at most ``theta_a`` tags (``|T_i| <= theta_a``) is noisy (a blurred or empty frame, a failed
   tagging) and skipped: it never becomes a key frame and does not change the reference;
3. otherwise, when its overlap with the last key frame's tags, ``|T_i & T_key|`` (a count of shared tags, not a
   ratio), is below ``theta_b``, the content has changed: the frame is a new key frame and its tags become the
   reference. Frames without tags (``None``: no detection ran on them) are skipped like noisy ones.

Defaults ``theta_a = 3``, ``theta_b = 2`` (VideoOrion's). ``uniform`` makes ``k`` evenly spaced key frames,
``none`` only frame 0. Splitters are stateful: one instance per video, ``is_keyframe`` called once per frame in
order.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from regionlm.errors import RegionLMError
from regionlm.objects.base import KeyframeSplitter, register


@register("splitter", "videoorion")
class VideoOrionSplitter(KeyframeSplitter):
    needs_tags = True

    def __init__(self, theta_a: int = 3, theta_b: int = 2, num_frames: Optional[int] = None):
        if theta_a < 0 or theta_b < 0:
            raise RegionLMError(f"videoorion splitter: theta_a and theta_b must be >= 0, got {theta_a}, {theta_b}")
        self.theta_a, self.theta_b = int(theta_a), int(theta_b)
        self.reference: Optional[set] = None  # tags of the last key frame
        self._next = 0

    def is_keyframe(self, index: int, tags: Optional[set] = None) -> bool:
        _check_order(self, index)
        if self.reference is None:  # the first frame
            self.reference = set(tags or ())
            return True
        if tags is None or len(tags) <= self.theta_a:
            return False  # noisy (or untagged) frame: skipped
        tags = set(tags)
        if len(tags & self.reference) < self.theta_b:
            self.reference = tags
            return True
        return False


@register("splitter", "uniform")
class UniformSplitter(KeyframeSplitter):
    """``k`` key frames at ``floor(i * num_frames / k)``, i = 0..k-1 (frame 0 always; every frame when k >=
    num_frames)."""

    def __init__(self, k: int = 4, num_frames: Optional[int] = None):
        if num_frames is None:
            raise RegionLMError("uniform splitter: needs the video's num_frames")
        if k < 1:
            raise RegionLMError(f"uniform splitter: k must be >= 1, got {k}")
        n = int(num_frames)
        self.keys = {int(i * n // min(k, n)) for i in range(min(k, n))} if n > 0 else set()
        self._next = 0

    def is_keyframe(self, index: int, tags: Optional[set] = None) -> bool:
        _check_order(self, index)
        return index in self.keys


@register("splitter", "none")
class NoSplitter(KeyframeSplitter):
    """Only frame 0: detect once, then track."""

    def __init__(self, num_frames: Optional[int] = None):
        self._next = 0

    def is_keyframe(self, index: int, tags: Optional[set] = None) -> bool:
        _check_order(self, index)
        return index == 0


def _check_order(splitter, index: int) -> None:
    # The rules depend on the frames before: a skipped or repeated call would silently change the answer.
    if index != splitter._next:
        raise ValueError(f"{type(splitter).__name__}: frame {index} given, expected frame {splitter._next} "
                         "(call once per frame, in order)")
    splitter._next += 1


# ------------------------------------------------------------------ tags

# Coarse colour names for class-agnostic detections: hue sectors (OpenCV hue, 0..180) for saturated colours.
_HUES = ((8, "red"), (20, "orange"), (33, "yellow"), (78, "green"), (100, "cyan"), (130, "blue"),
         (160, "purple"), (180, "red"))


def colour_name(rgb) -> str:
    """A coarse colour word for an RGB colour: black/gray/white for unsaturated ones, else a hue name."""
    import cv2

    px = np.asarray(rgb, np.uint8).reshape(1, 1, 3)
    h, s, v = (int(c) for c in cv2.cvtColor(px, cv2.COLOR_RGB2HSV)[0, 0])
    if v < 50:
        return "black"
    if s < 60:
        return "white" if v > 200 else "gray"
    return next(name for top, name in _HUES if h < top)


def frame_tags(frame: np.ndarray, detections) -> set:
    """A frame's tag set from its detections. Labelled detections (open-vocabulary detectors) give their labels,
    as RAM++ tags would. Class-agnostic ones (every label ``"object"``) give ``"<colour> object"`` per
    detection, from the median colour of the middle of its box, so that the tags still say what is in view."""
    labels = list(getattr(detections, "labels", []))
    if not labels:
        return set()
    if any(lbl != "object" for lbl in labels):
        return set(labels)
    H, W = frame.shape[:2]
    tags = set()
    for x1, y1, x2, y2 in np.asarray(detections.boxes, float):
        cx1, cx2 = int(x1 + 0.25 * (x2 - x1)), int(np.ceil(x2 - 0.25 * (x2 - x1)))
        cy1, cy2 = int(y1 + 0.25 * (y2 - y1)), int(np.ceil(y2 - 0.25 * (y2 - y1)))
        patch = frame[max(0, cy1):min(H, max(cy2, cy1 + 1)), max(0, cx1):min(W, max(cx2, cx1 + 1))]
        if patch.size:
            tags.add(f"{colour_name(np.median(patch.reshape(-1, 3), axis=0))} object")
    return tags


__all__ = ["VideoOrionSplitter", "UniformSplitter", "NoSplitter", "frame_tags", "colour_name"]
