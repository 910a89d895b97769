"""Example: one task instance as the processor sees it, from training data (RegionWorld) or from a user / benchmark
sample at inference. Builders make Examples; the processor turns a list of Examples into a model batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

TASKS = ("region_qa", "region_caption", "video_qa", "sot", "rsot", "reg", "rec")


@dataclass
class Region:
    """One `<region>` of the prompt. ``masks``: (T, H, W) bool on the example's frames, the region wherever it is
    known (in training: every frame, for the guide head); ``given``: (T,) bool, the frames where the model is shown
    it (a user's box on frame F: only F). ``box_frame``: the frame whose box text_coords writes (default: the
    first given frame)."""

    masks: np.ndarray
    given: np.ndarray
    box_frame: Optional[int] = None

    def __post_init__(self):
        self.masks = np.asarray(self.masks, dtype=bool)
        self.given = np.asarray(self.given, dtype=bool)
        if self.masks.ndim != 3 or self.given.shape != (self.masks.shape[0],):
            raise ValueError(f"Region: masks must be (T, H, W) and given (T,), got {self.masks.shape} and "
                             f"{self.given.shape}")
        if not self.given.any():
            raise ValueError("Region: no frame is given")


@dataclass
class Example:
    """``prompt``: the user's text with one `<region>` per entry of ``regions`` (the processor adds `<video>`,
    the object list and the chat template). ``answer``: the target text (training) or None (inference).
    ``frames``: (T, H, W, 3) uint8, already sampled. ``objects``: the video's object tracks, (T, H, W) bool each
    (for object_tokens). ``meta``: anything the builder wants to keep (ids, ground truth for scoring)."""

    task: str
    frames: np.ndarray
    prompt: str
    answer: Optional[str] = None
    regions: list = field(default_factory=list)
    objects: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
