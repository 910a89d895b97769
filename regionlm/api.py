"""The main job in Python: ``from regionlm import RegionLM; m = RegionLM.load(); m.ask(video, question, regions)``.

``RegionLM.load()`` without a path loads the embedded default model shipped in ``regionlm/assets/default_model``
(trained from scratch on RegionWorld by ``regionlm train --config configs/default.yaml``); ``RegionLM.load(DIR)``
loads any saved RegionLM folder (``save_pretrained`` output: config.json, model.safetensors, the processor files).

A video is a video file, a frame folder or a (T, H, W, 3) uint8 array. A region is a ``RegionPrompt`` or its spec
text: ``box:x1,y1,x2,y2@F``, ``mask:file.png@F``, ``rle:file.json@F`` or ``point:x,y@F`` (pixels, frame F).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

from .errors import RegionError, RegionLMError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default_model"


def default_model_dir() -> Path:
    """The shipped default model's folder; a one-line error if it is missing from this installation."""
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        raise RegionLMError(f"no default model at {DEFAULT_MODEL_DIR} (this installation lacks it); give --model DIR")
    return DEFAULT_MODEL_DIR


class RegionLM:
    """A loaded RegionLM with the user-facing verbs. Every verb checks its inputs and raises a one-line
    ``RegionLMError`` (``RegionError`` for regions) on bad input."""

    def __init__(self, system, path: Optional[str] = None):
        self.system = system  # regionlm.model.inference.RegionLMSystem
        self.path = path

    @classmethod
    def load(cls, path=None, device: Optional[str] = None, progress: bool = True, **options) -> "RegionLM":
        """Load the model at ``path`` (None: the shipped default) on ``device`` (None: CUDA when available).
        ``progress=False`` hides transformers' weight-loading bar (the CLI keeps stderr for errors).
        ``options``: RegionLMSystem's (e.g. ``rsot_mode="ground"``: ``track(video, expression=...)`` picks among
        the object pipeline's tracks; ``caption_beams=1``: greedy descriptions; ``region_propagation="off"``:
        descriptions see the region on its own frame only, not followed by the classical tracker;
        ``caption_loop_guard=False``: descriptions decoded without the guard against loops; ``sot_mode="generate"``:
        ``track`` from a region writes its boxes as text, Elysium style, instead of following the object with the
        model folder's pointer head; ``outline=False``: the pointer head's boxes keep the first box's size, not
        outlined by the classical segmenter)."""
        from transformers.utils import logging as hf_logging

        from .model.inference import RegionLMSystem, load_model

        folder = Path(path) if path is not None else default_model_dir()
        was_on = hf_logging.is_progress_bar_enabled()
        if not progress:
            hf_logging.disable_progress_bar()
        try:
            model, processor = load_model(folder)
        finally:
            if was_on and not progress:
                hf_logging.enable_progress_bar()
        if device is not None:
            model = model.to(device)
        return cls(RegionLMSystem(model, processor, path=str(folder), **options), path=str(folder))

    @property
    def config(self):
        return self.system.model.config

    @property
    def max_regions(self) -> int:
        return int(self.config.max_regions)

    def video_note(self, height: int, width: int) -> Optional[str]:
        """A one-line note when a video of this size is unlike everything the model was trained on (a model
        trained on RegionWorld alone, as the shipped one, asked about a real video: it answers, but the answer
        says little about the video), else None. The CLI prints it on stderr and in its ``--json`` output."""
        size = trained_world_size(self.path)
        if size is None or (int(height), int(width)) == (size, size):
            return None
        return (f"the model in {self.path} was trained on {size}x{size} RegionWorld videos only; this video is "
                f"{int(width)}x{int(height)} (WxH), so its answers say little about it (give --model a RegionLM "
                f"trained on real video)")

    def _check_regions(self, question: str, regions: Sequence) -> None:
        check_placeholders(question, len(regions))
        if len(regions) > self.max_regions:
            raise RegionError(f"{len(regions)} regions given; this model supports at most {self.max_regions}")

    def ask(self, video, question: str, regions: Sequence = (), options: Optional[Sequence[str]] = None) -> str:
        """Answer ``question`` about ``video``; each ``<region>`` in it is the matching entry of ``regions``.
        ``options`` ("(A) ...", "(B) ...", listed in the question too): the answer is the option the model finds
        most likely (its text, "(B) ...")."""
        regions = list(regions)
        self._check_regions(question, regions)
        check_regions_fit(video, regions)
        return self.system.ask(video, question, regions, options=options)

    def describe(self, video, region) -> str:
        """Describe one region (what it is, its colour, shape, size and motion)."""
        self._check_regions("<region>", [region])
        check_regions_fit(video, [region])
        return self.system.describe(video, region)

    def refer(self, video, region) -> str:
        """A referring expression that singles the region out (Video-REG)."""
        self._check_regions("<region>", [region])
        check_regions_fit(video, [region])
        return self.system.refer(video, region)

    def track(self, video, region=None, expression: Optional[str] = None) -> list:
        """One [x, y, w, h] pixel box (or None) per frame of ``video``, following ``region`` from its frame, or
        the object ``expression`` names from frame 0 (found by the model folder's refer head and followed by its
        pointer head when it has both, else Elysium-style boxes as text, clip by clip)."""
        if region is not None:
            check_regions_fit(video, [region])
        return self.system.track(video, region=region, expression=expression)

    def locate(self, image, expression: str) -> Optional[list]:
        """The [x, y, w, h] pixel box of the object ``expression`` names in an image or frame, or None."""
        return self.system.locate(image, expression)


def trained_world_size(folder) -> Optional[int]:
    """The frame side of the RegionWorld videos a model folder was trained on, from its train_config.json (what
    ``regionlm train`` writes beside the weights), or None when it was trained on other data or has no record."""
    import json

    path = Path(folder) / "train_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text()).get("data") or {}
    except (OSError, ValueError, AttributeError):
        return None  # a record we cannot read is no reason to stop a question
    if data.get("source") != "world":
        return None
    from .world.spec import WorldConfig

    size = (data.get("world") or {}).get("size", WorldConfig.size)
    return int(size) if isinstance(size, int) else None


def check_placeholders(question: str, num_regions: int) -> None:
    """One region per ``<region>`` of the question (checked before a model is loaded)."""
    n = question.count("<region>")
    if n != num_regions:
        raise RegionError(f"the question has {n} <region> placeholder(s) but {num_regions} region(s) were "
                          f"given (one --region per <region>)")


def check_regions_fit(video, regions: Sequence, name: str = "region") -> tuple[list, tuple[int, int, int]]:
    """Parse ``regions`` (specs or RegionPrompts) and check each against ``video`` (a path or a (T, H, W, 3)
    array) before any model runs: its frame exists, a box overlaps the frame, files read and fit the frame size.
    Returns (the RegionPrompts, (num_frames, height, width)); errors name each region as ``{name} SPEC``."""
    import numpy as np

    from .regions import RegionPrompt, parse_region, prompt_to_mask

    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[0] == 0:
            raise RegionLMError(f"frames must be a (T, H, W, 3) array, got shape {video.shape}")
        N, H, W = video.shape[:3]
    else:
        from .video import VideoReader

        with VideoReader(video) as reader:
            N, H, W = reader.num_frames, reader.height, reader.width
    prompts = []
    for r in regions:
        p = r if isinstance(r, RegionPrompt) else parse_region(r)
        if p.frame >= N:
            raise RegionError(f"{name} {p}: frame {p.frame} is past the end of the video ({N} frames, "
                              f"0..{N - 1})")
        if p.kind == "box":
            x1, y1, x2, y2 = p.box
            if x1 >= W or y1 >= H or x2 <= 0 or y2 <= 0:
                raise RegionError(f"{name} {p}: the box is outside the {W}x{H} (WxH) frame; give x1,y1,x2,y2 "
                                  f"in pixels that overlap it")
        prompt_to_mask(p, H, W)  # points inside, mask/RLE files readable and of the frame's size, not empty
        prompts.append(p)
    return prompts, (int(N), int(H), int(W))


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call, for the CLI's --json timing field."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - start, 4)
