"""What every benchmark and every system share: the Sample a system is asked, the System protocol, the Benchmark
base class and the Scores it returns.

A benchmark turns its data into Samples (what a system may see, never the answer), asks a system through one of
three methods, and scores the predictions:

* ``answer(sample) -> str`` for text tasks (``choice``: multiple choice, ``caption``: descriptions, expressions);
* ``track(sample) -> [[x, y, w, h] | None, ...]`` for tracking, one pixel box per frame of the sequence;
* ``segment(sample) -> {object id: [mask (H, W) or COCO RLE or None, ...]}`` for video object segmentation.

A model only implements the methods of the tasks it can do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Protocol, runtime_checkable

TASKS = ("choice", "caption", "track", "segment")
METHOD_OF_TASK = {"choice": "answer", "caption": "answer", "track": "track", "segment": "segment"}


@dataclass(frozen=True)
class Sample:
    """One question to a system: everything it may use, nothing of the answer.

    ``regions[i]`` is the i-th ``<region>`` of the prompt: ``{frame index: {"segmentation": RLE}}`` (masks) or
    ``{frame index: [x1, y1, x2, y2]}`` (pixel boxes, ``region_kind == "box"``). Tracking samples give the
    sequence's frames (``frames``: image paths, or ``frame_indices`` into ``video``) and, for SOT, the box on the
    first of them (``init_box``, xywh pixels).
    """

    id: str
    task: str
    video: Optional[str] = None  # video file or frame folder, resolved against the data file / --video-root
    prompt: str = ""  # the text to ask, `<region>` placeholders in order
    options: tuple = ()  # multiple choice: "(A) ...", "(B) ...", ...
    regions: tuple = ()  # one mapping per <region>, see above
    region_kind: str = "mask"  # "mask" | "box"
    frame_idx: Optional[int] = None  # the key frame (single-frame mode: the one region mask to use)
    frames: tuple = ()  # tracking / VOS: the sequence's frame image paths, when the data has them
    frame_indices: tuple = ()  # tracking in a video file: the video frames of the sequence, in order
    num_frames: Optional[int] = None  # tracking / VOS: frames in the sequence (one box or mask each)
    init_box: Optional[tuple] = None  # SOT: (x, y, w, h) on the first frame of the sequence
    expression: Optional[str] = None  # referring tracking: the object to follow
    object_ids: tuple = ()  # VOS: the object id of each region (keys of the predicted masks)
    height: Optional[int] = None
    width: Optional[int] = None


@runtime_checkable
class System(Protocol):
    """Anything that can answer. ``name`` and ``config`` (JSON-able) identify it in results and in the cache;
    ``cacheable`` says whether its predictions are worth caching (False for a predictions file)."""

    name: str
    config: dict
    cacheable: bool


@dataclass
class Scores:
    """What a benchmark returns: metrics (the papers' names and scales), one dict per scored sample, optional
    curves for plots, details (counts, tokenizer) and notes for the report."""

    metrics: dict
    per_sample: list
    curves: Optional[dict] = None
    details: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@dataclass
class BenchmarkOptions:
    """Everything a benchmark may need besides its name; every default in one place."""

    data: Optional[Path] = None  # the user's copy of the dataset (file or folder)
    video_root: Optional[Path] = None  # where relative video / frame paths are resolved instead of next to data
    use_java: Optional[bool] = None  # caption metrics: None = Java PTB tokenizer when Java runs
    judge: Any = None  # a metrics.judge.Judge for description benchmarks without their own (videorefer-d)
    judge_cache: Optional[Path] = None  # where judge replies are kept between runs (slow or paid judges)


class Benchmark(ABC):
    """Base class. Subclasses set the class attributes and implement ``load``, ``samples`` and ``score``."""

    name: ClassVar[str] = ""
    task: ClassVar[str] = ""  # one of TASKS
    summary: ClassVar[str] = ""  # one line for `regionlm eval --list`
    data_help: ClassVar[str] = ""  # what --data points to
    headline: ClassVar[tuple] = ()  # the metric keys of the printed table, in order

    def __init__(self, options: BenchmarkOptions):
        self.options = options

    @property
    def data(self) -> Path:
        from ...errors import RegionLMError

        if self.options.data is None:
            raise RegionLMError(f"--data is required for {self.name}: give {self.data_help}")
        return Path(self.options.data)

    @abstractmethod
    def load(self) -> list:
        """The benchmark's items (questions, sequences, ...), in a fixed order."""

    @abstractmethod
    def samples(self, items: list) -> list:
        """The Samples to ask for these items (world-q asks two per look-alike question)."""

    @abstractmethod
    def score(self, items: list, predictions: dict) -> Scores:
        """Metrics from ``predictions``: sample id -> the system's (normalised) output."""

    def random_answer(self, sample: Sample, rng) -> str:
        """The random baseline's answer; multiple choice picks an option, other text tasks override this."""
        from ...errors import RegionLMError

        if self.task == "choice" and sample.options:
            return sample.options[int(rng.integers(len(sample.options)))]
        raise RegionLMError(f"the random baseline does not apply to {self.name}; use --predictions FILE.jsonl")


def resolve_path(relative: str, base_dir: Path, video_root: Optional[Path]) -> str:
    """A video or frame path of the data: absolute as is, else under --video-root, else next to the data."""
    p = Path(relative)
    if p.is_absolute():
        return str(p)
    return str((Path(video_root) if video_root is not None else base_dir) / p)
