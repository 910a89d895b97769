"""The object pipeline's contract: what detectors, segmenters, trackers and key-frame splitters take and return,
the registry they are found in by name, and the ``objects.json`` / ``tracks.json`` result.

Conventions (the same as :mod:`regionlm.regions`): frames are ``np.ndarray`` uint8 (H, W, 3) RGB; masks are bool
(H, W); boxes are xyxy pixels with x2/y2 exclusive. Frame indices are indices of the input video.

Trackers are streaming (SAM 2's video predictor is the model): ``start`` on a frame with masks, then ``step``
frame by frame, ``add`` objects found on later key frames. Nothing holds every frame, so a 2,000-frame video runs
in bounded memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from regionlm.errors import RegionLMError

KINDS = ("detector", "segmenter", "tracker", "splitter")


@dataclass
class Detections:
    """Detections on one frame: ``boxes`` (N, 4) float xyxy pixels, ``scores`` (N,), one label per box
    (``"object"`` from class-agnostic detectors)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.labels)):
            raise ValueError(f"Detections: {len(self.boxes)} boxes, {len(self.scores)} scores, "
                             f"{len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.boxes)


class Detector(ABC):
    @abstractmethod
    def detect(self, frame: np.ndarray, prompts: Optional[Sequence[str]] = None) -> Detections:
        """Objects on one frame; ``prompts`` are text labels for open-vocabulary detectors (ignored otherwise)."""


class Segmenter(ABC):
    @abstractmethod
    def segment(self, frame: np.ndarray, boxes: Optional[np.ndarray] = None,
                points: Optional[np.ndarray] = None) -> np.ndarray:
        """One mask per box (N, 4) or per point (N, 2) as (N, H, W) bool."""


class Tracker(ABC):
    """Streaming mask tracker. Object ids are the caller's; a tracker never invents ids."""

    @abstractmethod
    def start(self, frame: np.ndarray, masks: dict[int, np.ndarray]) -> None:
        """Begin on ``frame`` with these objects (id -> mask). Forgets anything tracked before."""

    @abstractmethod
    def step(self, frame: np.ndarray) -> dict[int, np.ndarray]:
        """Propagate to the next frame: id -> mask for each object tracked (an empty mask when it is lost)."""

    @abstractmethod
    def add(self, frame: np.ndarray, masks: dict[int, np.ndarray]) -> None:
        """On the frame last given to ``start``/``step``: add objects, or re-seed existing ids with new masks."""

    def remove(self, ids: Sequence[int]) -> None:
        """Stop tracking these ids (default: nothing to free)."""


class KeyframeSplitter(ABC):
    @abstractmethod
    def is_keyframe(self, index: int, tags: Optional[set] = None) -> bool:
        """Called once per frame, in order, with the frame's detected tags (object labels) when the splitter
        needs them (``needs_tags``). Returns whether this frame is a new key frame."""

    needs_tags: bool = False


# ------------------------------------------------------------------ registry

_REGISTRY: dict[str, dict[str, Callable]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str):
    """Class or factory decorator: ``@register("detector", "classical")``."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown part kind {kind!r}; one of {', '.join(KINDS)}")

    def wrap(factory):
        _REGISTRY[kind][name] = factory
        return factory

    return wrap


def create(kind: str, name: str, **kwargs):
    """Build a registered part by name; a one-line error lists the names that exist."""
    _load_backends()
    parts = _REGISTRY.get(kind)
    if parts is None:
        raise RegionLMError(f"unknown part kind {kind!r}; one of {', '.join(KINDS)}")
    if name not in parts:
        raise RegionLMError(f"no {kind} named {name!r}; available: {', '.join(sorted(parts)) or 'none'}")
    return parts[name](**kwargs)


def available(kind: str) -> list[str]:
    _load_backends()
    return sorted(_REGISTRY[kind])


def _load_backends() -> None:
    # Importing a backend module registers its parts; the hf backend imports transformers lazily inside.
    import importlib

    for module in ("regionlm.objects.classical", "regionlm.objects.hf", "regionlm.objects.keyframes"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


# ------------------------------------------------------------------ result


@dataclass
class ObjectTrack:
    """One object through the video: ``masks`` frame index -> bool mask for every frame where it is visible."""

    id: int
    label: str = "object"
    score: float = 1.0
    masks: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class ObjectsResult:
    video: str
    height: int
    width: int
    num_frames: int
    objects: list[ObjectTrack]
    timing: dict = field(default_factory=dict)  # seconds per stage, frames/s
