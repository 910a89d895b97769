"""Inference with a RegionLM model: the eval System (``answer`` / ``track`` on benchmark Samples, see
regionlm/eval/benchmarks/base.py), ``load_eval_system`` for ``regionlm eval --model DIR``, and a thin user API
(``ask`` / ``describe`` / ``track`` with regions.RegionPrompt lists) that the demo and server build on.

A Sample becomes an Example (regionlm.model.example): frames sampled with regionlm.video.sample_indices, each
region's annotated frames mapped onto the sampled frames, the task's prompt (regionlm.model.prompts), then
``generate`` and decode. Boxes come back as Elysium text (``Frame k: [x1,y1,x2,y2]``, ints in [0, 100)) and are
read with regions.parse_frame_boxes; anything that does not parse is "no box" (None), never an error.

Long videos are tracked in overlapping clips of ``num_frames`` frames (Elysium's protocol, see :func:`clip_starts`
and :meth:`RegionLMSystem.track_frames`).
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import hashlib
import json
import os
import stat
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import RegionError, RegionLMError
from ..regions import (RegionPrompt, box_to_mask, box_to_text, box_xywh_to_xyxy, box_xyxy_to_xywh,
                       decode_segmentation, mask_to_box, parse_frame_boxes, parse_region, prompt_to_mask,
                       text_to_box, validate_frame)
from ..video import VideoReader, sample_indices
from .example import Example, Region
from .loop_guard import NoTripleRepeat, StopOnLoop, cut_loop
from .kv_cache import cache_kwargs, output_cache
from .processing import IGNORE
from .propagation import PROPAGATIONS, propagate_region
from .prompts import build_prompt, sot_answer

# The model task each benchmark asks (its Sample says the eval task: choice / caption / track).
BENCHMARK_TASKS = {"world-q": "region_qa", "videorefer-q": "region_qa", "world-vqa": "video_qa",
                   "world-d": "region_caption", "videorefer-d": "region_caption", "world-reg": "reg",
                   "elysium-reg": "reg", "world-sot": "sot", "lasot": "sot", "vot": "sot", "world-rsot": "rsot"}
REGION_MODES = ("single", "multi")
# How a multiple-choice Sample is answered: "rank" scores every option with the model (the log-likelihood of the
# option as the answer, the lm-eval-harness protocol) and answers the best one; "generate" decodes greedily and
# the benchmark's letter extraction reads what came out (the papers' protocol).
CHOICE_MODES = ("rank", "generate")
# How referring tracking (an expression, no box) is answered: "generate" has the model write a box per frame from
# the words (Elysium); "ground" has the object pipeline track every object and the model pick the one the words
# name (regionlm.model.grounding); "point" has the refer head find it on the first frame (the model picking among
# its peaks, regionlm.model.refer) and the pointer head follow it; "auto" points when the model folder has both
# heads, else generates.
RSOT_MODES = ("auto", "generate", "ground", "point")
# How an object given by a box is tracked: "generate" has the model write a box per frame (Elysium's protocol);
# "point" has the pointer head point at it on each frame's vision features (regionlm.model.pointer); "auto" points
# when the model folder has a pointer head, else generates.
SOT_MODES = ("auto", "generate", "point")
# Where the object list of a model that has one (object_tokens; mask_pool with object_list) comes from: the object
# pipeline's tracks (VideoOrion; what a user gets), a RegionWorld sample's true masks (the pipeline's upper bound)
# or the prompt's own regions.
OBJECT_SOURCES = ("pipeline", "truth", "regions")
# Descriptions and referring expressions are decoded with beam search (caption_beams): on a validation split
# (seed 2, 120 descriptions) 3 beams raised the 6,600-step model's CIDEr from 76.9 (greedy) to 97.2 (5 beams:
# 95.1); docs/RESULTS.md.
CAPTION_TASKS = ("region_caption", "reg")
# Free answers (questions generated, not ranked): decoding stops when one ends in a loop (answer_loop_stop).
ANSWER_TASKS = ("region_qa", "video_qa")
# The tasks whose regions region_propagation follows to the clip's other frames. Descriptions name the object's
# attributes right more often (test split: 51.0 -> 52.8% with the 8,000-step model, 52.0 -> 53.5% with the
# 12,000-step one, for CIDEr 92.1 -> 90.8 and 116.8 -> 113.6), while multiple choice did not move on the
# validation split (42.1 -> 41.6, region swap 39.0 -> 39.7), so questions keep their key frame and skip the
# tracking. docs/RESULTS.md.
PROPAGATED_TASKS = ("region_caption",)
GENERATE_KEYS = ("input_ids", "attention_mask", "pixel_values", "region_masks", "region_given", "region_valid",
                 "object_masks", "object_valid")
EMBED_KEYS = ("input_ids", "pixel_values", "region_masks", "region_given", "region_valid", "object_masks",
              "object_valid")  # RegionLMForConditionalGeneration.embed_inputs' arguments, in order


def summed_logprobs(logits: torch.Tensor, target: torch.Tensor) -> list[float]:
    """Per row, the summed log-probabilities of the ``target`` tokens (IGNORE: not scored) under the ``logits``
    that predict them (B, L, V) against (B, L)."""
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * (target != IGNORE)).sum(dim=1).cpu().tolist()


# ---------------------------------------------------------------------------------------------------- frames


class _FrameCache:
    """Decoded frames of video files, shared by every FrameSource of the process: an evaluation asks several
    questions about one video, and decoding its frames (and opening the file) again for each was a fifth of
    world-q's time. Least recently used first out, bounded by bytes; keyed by the file's real path, size and
    modification time, so a file that changes is read again."""

    def __init__(self, max_bytes: int = 256 << 20, max_videos: int = 4096):
        self.max_bytes, self.max_videos, self.nbytes = max_bytes, max_videos, 0
        self.frames: OrderedDict = OrderedDict()  # (file key, frame index) -> (H, W, 3) uint8
        self.info: OrderedDict = OrderedDict()  # file key -> (num_frames, height, width)

    @staticmethod
    def key(path) -> Optional[tuple]:
        """None for what is not a regular file (a frame folder is read as before, uncached)."""
        try:
            st = os.stat(path)
        except (OSError, TypeError, ValueError):
            return None
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None

    def get(self, key: tuple, index: int) -> Optional[np.ndarray]:
        frame = self.frames.get((key, index))
        if frame is not None:
            self.frames.move_to_end((key, index))
        return frame

    def put(self, key: tuple, index: int, frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes or (key, index) in self.frames:
            return
        self.frames[(key, index)] = frame
        self.nbytes += frame.nbytes
        while self.nbytes > self.max_bytes:
            self.nbytes -= self.frames.popitem(last=False)[1].nbytes

    def get_info(self, key: tuple) -> Optional[tuple]:
        info = self.info.get(key)
        if info is not None:
            self.info.move_to_end(key)
        return info

    def put_info(self, key: tuple, info: tuple) -> None:
        self.info[key] = info
        while len(self.info) > self.max_videos:
            self.info.popitem(last=False)


_FRAMES = _FrameCache()


class FrameSource:
    """The frames of a sequence: a video file or frame folder (optionally only ``indices`` of it, in order), a
    list of image paths, or an array (T, H, W, 3). ``get(positions)`` reads positions 0..num_frames-1. A video
    file's frames are decoded once per process while they stay in the shared cache (_FrameCache)."""

    def __init__(self, source, indices: Optional[Sequence[int]] = None):
        self._array, self._paths, self._key = None, None, None
        self._shared = {"reader": None, "source": source}  # the reader, opened when first needed; shared by tail()
        if isinstance(source, np.ndarray) or (isinstance(source, (list, tuple)) and source
                                               and isinstance(source[0], np.ndarray)):
            arr = np.asarray(source)
            if arr.ndim == 3:
                arr = arr[None]
            if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
                raise RegionLMError(f"frames must be an (T, H, W, 3) array, got shape {arr.shape}")
            self._array = arr.astype(np.uint8, copy=False)
            total, (self.height, self.width) = arr.shape[0], arr.shape[1:3]
        elif isinstance(source, (list, tuple)):
            if not source:
                raise RegionLMError("no frames given")
            self._paths = [str(p) for p in source]
            first = _read_image(self._paths[0])
            total, (self.height, self.width) = len(self._paths), first.shape[:2]
        else:
            self._key = _FRAMES.key(source)
            info = _FRAMES.get_info(self._key) if self._key else None
            if info is None:
                reader = self._reader()
                info = (reader.num_frames, reader.height, reader.width)
                if self._key:
                    _FRAMES.put_info(self._key, info)
            total, self.height, self.width = info
        self.indices = list(range(total)) if indices is None else [int(i) for i in indices]
        for i in self.indices:
            if not 0 <= i < total:
                raise RegionLMError(f"frame {i} of {source if not isinstance(source, np.ndarray) else 'the array'}"
                                    f" is past the end ({total} frames)")
        self.num_frames = len(self.indices)
        if self.num_frames == 0:
            raise RegionLMError("the sequence has no frames")

    def _reader(self) -> VideoReader:
        if self._shared["reader"] is None:
            self._shared["reader"] = VideoReader(self._shared["source"])
        return self._shared["reader"]

    def get(self, positions: Sequence[int]) -> np.ndarray:
        wanted = [self.indices[p] for p in positions]
        if self._array is not None:
            return self._array[wanted]
        if self._paths is not None:
            out = [_read_image(self._paths[i]) for i in wanted]
            for i, im in zip(wanted, out):
                if im.shape[:2] != (self.height, self.width):
                    raise RegionLMError(f"image {self._paths[i]} is {im.shape[1]}x{im.shape[0]}, the first frame "
                                        f"is {self.width}x{self.height}: frames must all have one size")
            return np.stack(out)
        if self._key is None:
            return self._reader().get_frames(wanted)
        got = {i: f for i in set(wanted) if (f := _FRAMES.get(self._key, i)) is not None}
        missing = sorted(set(wanted) - set(got))
        if missing:
            for i, frame in zip(missing, self._reader().get_frames(missing)):
                got[i] = frame.copy()  # its own memory: a view would keep the whole decoded batch alive
                _FRAMES.put(self._key, i, got[i])
        return np.stack([got[i] for i in wanted])  # a new array: the cached frames are never handed out

    def tail(self, start: int) -> "FrameSource":
        """The same frames from position ``start`` on (shares the reader; close the original)."""
        view = copy.copy(self)
        view.indices = self.indices[start:]
        view.num_frames = len(view.indices)
        return view

    def close(self):
        if self._shared["reader"] is not None:
            self._shared["reader"].close()
            self._shared["reader"] = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_image(path: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise RegionLMError(f"frame image {path} not found") from None
    except (OSError, ValueError) as e:
        raise RegionLMError(f"cannot read frame image {path}: {e}") from None


def nearest_positions(frames: Sequence[int], sampled: Sequence[int]) -> dict[int, int]:
    """Annotated video frame -> position of the nearest sampled frame (ties: the earlier one). Where two
    annotated frames land on one position only the nearer one keeps it."""
    out, best = {}, {}
    for f in sorted(set(int(v) for v in frames)):
        k = bisect.bisect_left(sampled, f)
        cands = [j for j in (k - 1, k) if 0 <= j < len(sampled)]
        j = min(cands, key=lambda j: (abs(sampled[j] - f), j))
        d = abs(sampled[j] - f)
        if j not in best or d < best[j][0]:
            best[j] = (d, f)
    for j, (_, f) in best.items():
        out[f] = j
    return out


def clip_starts(num_frames: int, length: int, overlap: int = 1) -> list[int]:
    """First frames of the clips that cover ``num_frames`` frames: clips of ``length`` frames, each starting
    ``length - overlap`` frames after the previous one; the last clip ends on the last frame (it then overlaps its
    predecessor by more). One clip when the sequence is not longer than ``length``."""
    if length < 1 or not 0 <= overlap < length:
        raise RegionLMError(f"clips need length >= 1 and 0 <= overlap < length, got length {length}, overlap "
                            f"{overlap}")
    starts = [0]
    while starts[-1] + length < num_frames:
        starts.append(min(starts[-1] + length - overlap, num_frames - length))
    return starts


def _valid_xyxy(box) -> Optional[list]:
    if box is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2, y2] if x2 > x1 and y2 > y1 else None


def _box_mask(xyxy, height: int, width: int) -> np.ndarray:
    """Filled box mask, at least one pixel (a region must not be empty)."""
    mask = box_to_mask(xyxy, height, width)
    if not mask.any():
        x = min(max(int(xyxy[0]), 0), width - 1)
        y = min(max(int(xyxy[1]), 0), height - 1)
        mask[y, x] = True
    return mask


# ---------------------------------------------------------------------------------------------------- system


class RegionLMSystem:
    """A RegionLM model + processor as an eval System and a user API.

    num_frames: frames per clip / per question (None: the model config's ``num_frames``); max_new_tokens: the
    text budget (tracking gets enough for a box on every frame of its clip); clip_overlap: frames shared by
    consecutive tracking clips; region_mode: ``single`` (a region is shown on its key frame: the Sample's
    ``frame_idx``, as VideoRefer-Bench-Q's single-frame mode) or ``multi`` (on every annotated frame);
    task: the model task to ask (None: from the sample; load_eval_system sets it from the benchmark);
    objects: where the object list of a model with one comes from (OBJECT_SOURCES; ``object_tokens``, or
    ``mask_pool`` with ``object_list``): ``pipeline`` (the
    classical detect-segment-track pipeline on the clip's frames, VideoOrion's split of labour; default), ``truth``
    (a RegionWorld benchmark sample's true masks, from its data folder's ground_truth.json: the pipeline's upper
    bound) or ``regions`` (the prompt's own regions); objects_fn: ``(frames (T, H, W, 3), regions) -> [(T, H, W)
    bool masks]``, any other source (overrides ``objects``);
    choice_mode: how multiple-choice Samples are answered (CHOICE_MODES); caption_beams: beams for descriptions
    and referring expressions (CAPTION_TASKS; 1 = greedy, as every other task); rsot_mode: how an object named by
    an expression is tracked (RSOT_MODES); tracks_fn: the candidates ``rsot_mode="ground"`` chooses from
    (grounding.ObjectsFn; None: the classical object pipeline); region_propagation: how a region given on one
    frame is followed to the clip's other frames for descriptions (PROPAGATED_TASKS; propagation.PROPAGATIONS;
    ``off``: shown on its given frame only); caption_loop_guard: descriptions and referring expressions never
    write a span three times in a row (loop_guard.NoTripleRepeat); answer_loop_stop: a generated answer to a
    question (ANSWER_TASKS) stops once it ends in a loop, cut back to the loop's first copy (loop_guard.StopOnLoop);
    sot_mode: how an object given by a box is tracked (SOT_MODES); pointer: the pointer head for
    ``sot_mode="point"`` (None: the one in the model folder ``path``); refer: the refer head for
    ``rsot_mode="point"`` (None: the folder's; the folder's pointer head follows what it finds); outline: the
    pointer head's boxes after the first are the segmenter's outline of the object around them (True, or an
    outline.OutlineConfig) or as pointed (False).
    """

    cacheable = True
    needs_video = True
    batch_size = 16  # samples per answer_many call in the eval runner

    def __init__(self, model, processor, num_frames: Optional[int] = None, max_new_tokens: int = 128,
                 clip_overlap: int = 1, region_mode: str = "single", task: Optional[str] = None,
                 objects: str = "pipeline", objects_fn: Optional[Callable] = None, path: Optional[str] = None,
                 name: str = "regionlm",
                 choice_mode: str = "rank", rsot_mode: str = "auto", tracks_fn: Optional[Callable] = None,
                 caption_beams: int = 3, region_propagation: str = "classical", caption_loop_guard: bool = True,
                 answer_loop_stop: bool = True, sot_mode: str = "auto", pointer=None, refer=None, outline=True):
        if region_mode not in REGION_MODES:
            raise RegionLMError(f"region_mode must be one of {REGION_MODES}, got {region_mode!r}")
        if choice_mode not in CHOICE_MODES:
            raise RegionLMError(f"choice_mode must be one of {CHOICE_MODES}, got {choice_mode!r}")
        if rsot_mode not in RSOT_MODES:
            raise RegionLMError(f"rsot_mode must be one of {RSOT_MODES}, got {rsot_mode!r}")
        if region_propagation not in PROPAGATIONS:
            raise RegionLMError(f"region_propagation must be one of {', '.join(PROPAGATIONS)}, got "
                                f"{region_propagation!r}")
        if objects not in OBJECT_SOURCES:
            raise RegionLMError(f"objects must be one of {', '.join(OBJECT_SOURCES)}, got {objects!r}")
        self.region_propagation, self.objects = region_propagation, objects
        self._truths: dict = {}  # data folder -> {video file name: WorldVideo} (objects="truth")
        self._pipeline = None  # objects="pipeline": grounding.TracksCache (the pipeline runs once per clip)
        self.sot_mode, self.pointer = self._pointer_mode(sot_mode, pointer, path)
        rsot_mode, self.refer_head, self.rsot_pointer = self._refer_mode(rsot_mode, refer, path)
        if isinstance(caption_beams, bool) or not isinstance(caption_beams, int) or caption_beams < 1:
            raise RegionLMError(f"caption_beams must be a positive integer, got {caption_beams!r}")
        self.caption_beams = caption_beams
        if not isinstance(caption_loop_guard, bool):
            raise RegionLMError(f"caption_loop_guard must be True or False, got {caption_loop_guard!r}")
        self.caption_loop_guard = caption_loop_guard
        if not isinstance(answer_loop_stop, bool):
            raise RegionLMError(f"answer_loop_stop must be True or False, got {answer_loop_stop!r}")
        self.answer_loop_stop = answer_loop_stop
        self.outline = _outline_config(outline)
        self.model, self.processor = model.eval(), processor
        cfg = model.config
        self.num_frames = int(num_frames or cfg.num_frames)
        if clip_overlap >= self.num_frames and self.num_frames > 1:
            raise RegionLMError(f"clip_overlap ({clip_overlap}) must be smaller than num_frames ({self.num_frames})")
        self.max_new_tokens, self.clip_overlap = int(max_new_tokens), int(clip_overlap)
        self.region_mode, self.task, self.objects_fn, self.name = region_mode, task, objects_fn, name
        self.choice_mode, self.rsot_mode = choice_mode, rsot_mode
        self.tracks_fn = None
        if rsot_mode == "ground":
            from .grounding import TracksCache

            self.tracks_fn = TracksCache(tracks_fn)
        self.config = {"system": "regionlm", "model": path or getattr(cfg, "name_or_path", "") or None,
                       "weights": None,  # set by load_eval_system: only an eval cache needs to know the weights
                       "region_encoder": cfg.region_encoder, "connector": cfg.connector,
                       "num_frames": self.num_frames, "max_new_tokens": self.max_new_tokens,
                       "clip_overlap": self.clip_overlap, "region_mode": region_mode, "choice_mode": choice_mode,
                       "rsot_mode": rsot_mode, "caption_beams": caption_beams}
        if task is None or task in PROPAGATED_TASKS:  # the other tasks' answers do not depend on it (their caches)
            self.config["region_propagation"] = region_propagation
        if task is None or task in CAPTION_TASKS:
            self.config["caption_loop_guard"] = caption_loop_guard
        if task is None or (task in ANSWER_TASKS and choice_mode == "generate"):  # ranked answers never generate
            self.config["answer_loop_stop"] = answer_loop_stop
        if cfg.uses_objects:  # the object list is part of every answer of such a model
            self.config["objects"] = "custom" if objects_fn is not None else objects
        if rsot_mode == "ground":  # the prior's terms: a cache of picks made with other terms is another run
            from .grounding import PRIOR_WEIGHT, SMALL_AREA, VIEW_MODE

            self.config["grounding_prior"] = {"weight": PRIOR_WEIGHT, "small_area": SMALL_AREA, "views": VIEW_MODE}
        if self.sot_mode == "point" and task in (None, "sot"):  # only then (the caches of the other runs stay valid)
            self.config["sot_mode"] = "point"
            self.config["pointer"] = pointer_fingerprint(self.pointer)
        if rsot_mode == "point" and task in (None, "rsot"):
            self.config["refer"] = pointer_fingerprint(self.refer_head)
            self.config["rsot_pointer"] = pointer_fingerprint(self.rsot_pointer)
            from .refer import FIRST_FRAME_SHARE

            self.config["refer_pick"] = {"first_frame_share": FIRST_FRAME_SHARE}
        if "pointer" in self.config or "refer" in self.config:
            self.config["outline"] = dataclasses.asdict(self.outline) if self.outline else None

    @staticmethod
    def _pointer_mode(sot_mode: str, pointer, path) -> tuple:
        """(the sot mode used, the pointer head or None) for the ``sot_mode`` asked."""
        from .pointer import POINTER_FILE, StalePointer, load_pointer

        if sot_mode not in SOT_MODES:
            raise RegionLMError(f"sot_mode must be one of {SOT_MODES}, got {sot_mode!r}")
        if sot_mode == "generate":
            return "generate", None
        if pointer is None and path is not None:
            try:
                pointer = load_pointer(path)
            except StalePointer as e:  # auto: every verb still works, tracking as text (said once, on stderr)
                if sot_mode == "point":
                    raise
                warnings.warn(f"{e}; tracking with boxes written as text", stacklevel=3)
        if pointer is None and sot_mode == "point":
            raise RegionLMError(f"sot_mode point: the model folder {path} has no {POINTER_FILE} (fit one: regionlm "
                                f"fit-pointer --data TRACKING_DATA --model {path})")
        return ("point", pointer) if pointer is not None else ("generate", None)

    def _refer_mode(self, rsot_mode: str, refer, path) -> tuple:
        """(the rsot mode used, the refer head, the pointer head that follows what it finds) for ``rsot_mode``."""
        from .pointer import POINTER_FILE, StalePointer, load_pointer
        from .refer import REFER_FILE, load_refer

        if rsot_mode in ("generate", "ground"):
            return rsot_mode, None, None
        pointer = self.pointer
        try:
            if refer is None and path is not None:
                refer = load_refer(path)
            if pointer is None and refer is not None and path is not None:
                pointer = load_pointer(path)  # sot_mode="generate" does not keep the folder's
        except StalePointer as e:
            if rsot_mode == "point":
                raise
            warnings.warn(f"{e}; referring tracking with boxes written as text", stacklevel=3)
            refer = None
        if rsot_mode == "point" and (refer is None or pointer is None):
            missing = REFER_FILE if refer is None else POINTER_FILE
            raise RegionLMError(f"rsot_mode point: the model folder {path} has no {missing} (fit both heads: "
                                f"regionlm fit-pointer --data REGIONWORLD_DIR --model {path})")
        return ("point", refer, pointer) if refer is not None and pointer is not None else ("generate", None, None)

    # ------------------------------------------------------------------ generation

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, examples: list, max_new_tokens: Optional[int] = None) -> list[str]:
        """Answers of a batch of Examples (all with the same number of frames): beam search with
        ``caption_beams`` (and the loop guard) when every example is a caption task, else greedy; decoding stops
        at the end-of-turn token (processor.generation_kwargs), and for answers to questions also at a loop
        (``answer_loop_stop``), which is then cut back to its first copy."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        batch = self.processor(examples, train=False)
        inputs = {k: v.to(self.device) for k, v in batch.items() if k in GENERATE_KEYS}
        captions = all(e.task in CAPTION_TASKS for e in examples)
        beams = self.caption_beams if captions else 1
        guard = LogitsProcessorList([NoTripleRepeat()] if captions and self.caption_loop_guard else [])
        stop_loops = self.answer_loop_stop and all(e.task in ANSWER_TASKS for e in examples)
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=max_new_tokens or self.max_new_tokens,
                                      do_sample=False, num_beams=beams, logits_processor=guard,
                                      stopping_criteria=StoppingCriteriaList([StopOnLoop()] if stop_loops else []),
                                      **self.processor.generation_kwargs())
        rows = ids.cpu().tolist()
        if stop_loops:
            ends = {self.processor.pad_token_id, *self.processor.end_ids}
            rows = [cut_loop(row, ignore=ends)[0] for row in rows]
        return [self.processor.decode(row) for row in rows]

    def answer_logprobs(self, examples: Sequence[Example]) -> list[float]:
        """log p(answer | prompt) of each Example's ``answer``: the summed log-probabilities of its tokens and the
        end of turn, as the model would write it (one forward pass; examples with the same number of frames)."""
        batch = self.processor(list(examples), train=True)
        labels = batch.pop("labels").to(self.device)
        inputs = {k: v.to(self.device) for k, v in batch.items() if k in GENERATE_KEYS}
        with torch.no_grad():
            logits = self.model(**inputs).logits[:, :-1]
        return summed_logprobs(logits, labels[:, 1:])

    def _tails_logprobs(self, head, tail_inputs: dict, labels: torch.Tensor, start: int) -> list[float]:
        """Answer log-likelihoods of rows that share their first ``start`` positions: ``head`` is the language
        model's output on those, once (its key/value cache and its last position's logits); each row's tail
        (``tail_inputs``, positions start..) runs from that cache. Call under no_grad."""
        n = len(labels)
        lm = self.model.language_model
        cache = output_cache(head)
        cache.batch_repeat_interleave(n)
        tail = lm(**tail_inputs, **cache_kwargs(lm, cache), use_cache=False)
        # the logits predicting tokens start.. : the head's last position, then the tail's
        logits = torch.cat([head.logits[:, -1:].expand(n, -1, -1), tail.logits[:, :-1]], dim=1)
        return summed_logprobs(logits, labels[:, start:].to(self.device))

    def region_view_logprobs(self, examples: Sequence[Example]) -> list[float]:
        """log p(answer | prompt) of Examples that differ only in their regions (one candidate region, or one
        frame of it, per row: grounding's views), as answer_logprobs gives them.

        The rows' token ids are equal, and so are their embeddings up to the first one the regions change (for
        most encoders the first `<region>` token; earlier for those that mark the video itself): that shared
        head goes through the language model once (its key/value cache) and only each row's tail is run. Rows
        whose tokens differ are scored whole."""
        batch = self.processor(list(examples), train=True)
        labels = batch.pop("labels")
        ids = batch["input_ids"]
        if len(examples) < 2 or not bool((ids == ids[:1]).all()):  # equal ids: equal lengths, no padding
            return self.answer_logprobs(examples)
        dev = self.device
        with torch.no_grad():
            embeds, _, _ = self.model.embed_inputs(*(batch[k].to(dev) if batch.get(k) is not None else None
                                                     for k in EMBED_KEYS))
            differs = (embeds != embeds[:1]).flatten(2).any(dim=2).any(dim=0)
            start = int((labels[0] != IGNORE).float().argmax())  # the first answer token at the latest
            if differs.any():
                start = min(start, int(differs.float().argmax()))
            if start < 1:
                return self.answer_logprobs(examples)
            head = self.model.language_model(inputs_embeds=embeds[:1, :start], use_cache=True, logits_to_keep=1)
            return self._tails_logprobs(head, {"inputs_embeds": embeds[:, start:]}, labels, start)

    def option_scores(self, example: Example, options: Sequence[str]) -> list[float]:
        """log p(option | prompt) for each option, as the answer to ``example``'s prompt (as answer_logprobs).

        The options share everything before the answer, so the video, the regions and the prompt go through the
        model once (its key/value cache), and only the options' own tokens are run per option: the vision tower
        and the long prompt are most of the cost, so ranking 4 options costs about what one answer does."""
        return self.options_scores_many([example], [options])[0]

    def options_scores_many(self, examples: Sequence[Example], options: Sequence[Sequence[str]]) -> list[list]:
        """option_scores of several questions (Examples with the same number of frames) in one batch: their
        prompts, left-padded, go through the model together once (on a GPU, one question at a time left it
        waiting on kernel launches), then every option of every question runs from its question's cache. The
        same scores as one by one, to float rounding (padding is masked and positions count from each
        prompt's first real token). A question whose options change its prompt's tokens is scored whole."""
        prompt = self.processor([dataclasses.replace(e, answer=None) for e in examples], train=False)
        lengths = prompt["attention_mask"].sum(1).tolist()
        width = prompt["input_ids"].shape[1]
        tails, whole = [], {}
        for q, (example, opts) in enumerate(zip(examples, options)):
            batch = self.processor([dataclasses.replace(example, answer=str(o)) for o in opts], train=True)
            start = lengths[q]
            if not bool((batch["input_ids"][:, :start] == prompt["input_ids"][q, width - start:]).all()):
                whole[q] = self.answer_logprobs([dataclasses.replace(example, answer=str(o)) for o in opts])
                continue
            tails += [(q, ids[start:][m[start:].bool()], lab[start:][m[start:].bool()])
                      for ids, lab, m in zip(batch["input_ids"], batch["labels"], batch["attention_mask"])]
        scores = [list(whole.get(q, ())) for q in range(len(examples))]
        if not tails:
            return scores
        dev = self.device
        mask = prompt["attention_mask"]
        with torch.no_grad():
            head = self.model(**{k: v.to(dev) for k, v in prompt.items() if k in GENERATE_KEYS},
                              position_ids=(mask.cumsum(1) - 1).clamp(min=0).to(dev), use_cache=True,
                              logits_to_keep=1)
            rows = torch.tensor([q for q, _, _ in tails])
            n = max(len(ids) for _, ids, _ in tails)
            tail_ids = torch.full((len(tails), n), self.processor.pad_token_id, dtype=torch.long)
            labels = torch.full((len(tails), n), IGNORE, dtype=torch.long)
            tail_mask = torch.zeros((len(tails), n), dtype=mask.dtype)
            for r, (_, ids, lab) in enumerate(tails):
                tail_ids[r, :len(ids)], labels[r, :len(ids)], tail_mask[r, :len(ids)] = ids, lab, 1
            cache, lm = output_cache(head), self.model.language_model
            cache.batch_select_indices(rows.to(dev))
            positions = torch.tensor(lengths)[rows][:, None] + torch.arange(n)
            tail = lm(input_ids=tail_ids.to(dev), **cache_kwargs(lm, cache), use_cache=False,
                      attention_mask=torch.cat([mask[rows], tail_mask], 1).to(dev), position_ids=positions.to(dev))
            # the logits predicting each tail's tokens: its question's last prompt position, then the tail's
            logits = torch.cat([head.logits[rows.to(dev), -1:], tail.logits[:, :-1]], dim=1)
            for (q, _, _), score in zip(tails, summed_logprobs(logits, labels.to(dev))):
                scores[q].append(score)
        return scores

    def rank_options(self, example: Example, options: Sequence[str]) -> str:
        """The option the model finds most likely (the first of equals)."""
        scores = self.option_scores(example, options)
        return str(options[int(np.argmax(scores))])

    def _track_budget(self, num_frames: int) -> int:
        """New tokens for ``Frame k: [..]`` on every frame of a clip (+ a margin for the end token)."""
        tok = self.processor.tokenizer
        per_frame = len(tok(sot_answer({num_frames - 1: [99, 99, 99, 99]}) + "\n", add_special_tokens=False)
                        ["input_ids"])
        return max(self.max_new_tokens, per_frame * num_frames + 8)

    # ------------------------------------------------------------------ regions

    def _objects(self, frames: np.ndarray, regions: list, video=None, frame_indices=None) -> list:
        """The object list of an example of a model with one: (T, H, W) bool masks on ``frames``, at most
        ``max_objects`` (the pipeline's likeliest objects first). ``video`` / ``frame_indices``: the benchmark
        sample's video file and the video frames taken from it (objects="truth" only)."""
        cfg = self.model.config
        if not cfg.uses_objects:
            return []
        if self.objects_fn is not None:
            return [np.asarray(m, bool) for m in self.objects_fn(frames, regions)]
        if self.objects == "regions":
            return [r.masks for r in regions]
        if self.objects == "truth":
            from .world_examples import ExampleOptions, object_tracks

            return object_tracks(self._world_video(video, frame_indices), list(frame_indices),
                                 ExampleOptions(max_objects=cfg.max_objects))[0]
        if self._pipeline is None:
            from .grounding import TracksCache

            self._pipeline = TracksCache()
        found = sorted(self._pipeline(np.asarray(frames)), key=lambda c: -c.prior)
        return [c.masks for c in found if c.masks.any()][: cfg.max_objects]

    def _world_video(self, video, frame_indices):
        """The WorldVideo (its ground truth) of a RegionWorld ``video`` file in DATA/videos/, from
        DATA/ground_truth.json: the object list training gives (world_examples.object_tracks)."""
        from .world_examples import WorldVideo

        if video is None or frame_indices is None:
            raise RegionLMError("objects='truth' needs a RegionWorld benchmark sample (its video and frames)")
        path = Path(str(video))
        folder = path.parent.parent
        if folder not in self._truths:
            gt = folder / "ground_truth.json"
            if not gt.is_file():
                raise RegionLMError(f"{gt}: no such file (objects='truth' reads a RegionWorld data folder's "
                                    "ground truth)")
            self._truths[folder] = {Path(v["video"]).name: WorldVideo.of_truth(v)
                                    for v in json.loads(gt.read_text())["videos"]}
        found = self._truths[folder].get(path.name)
        if found is None:
            raise RegionLMError(f"{folder / 'ground_truth.json'}: no record for video {path.name}")
        return found

    def _regions(self, task: str, src: "FrameSource", masks: list[dict], keys: list[int],
                 sampled: list[int]) -> list[Region]:
        """The Regions of an Example from each region's ``{video frame: mask}`` and key frame. With
        region_propagation (descriptions: PROPAGATED_TASKS) each region is followed from its key frame to the
        other sampled frames and given on all of them; in single mode it starts from the key frame's mask alone,
        as it was given."""
        if self.region_propagation == "off" or task not in PROPAGATED_TASKS:
            return [self._region(r, sampled, k, src.height, src.width) for r, k in zip(masks, keys)]
        out = []
        for r, k in zip(masks, keys):
            start = r if self.region_mode == "multi" else {k: r[k]}
            followed = propagate_region(src.get, start, k, sampled, self.region_propagation)
            out.append(self._region(followed, sampled, k, src.height, src.width, every=True))
        return out

    def _region(self, masks_by_frame: dict, sampled: list[int], key: Optional[int], height: int,
                width: int, every: bool = False) -> Region:
        """A Region on the sampled frames from ``{video frame: (H, W) mask}``. Frames that were not sampled
        move to the nearest sampled frame (the key frame is always sampled: it is passed as ``keep``).
        Given on the key frame only in single mode, on every annotated frame in multi mode or with ``every``."""
        where = nearest_positions(list(masks_by_frame), sampled)
        masks = np.zeros((len(sampled), height, width), bool)
        for f, j in where.items():
            masks[j] = masks_by_frame[f]
        given = np.zeros(len(sampled), bool)
        if self.region_mode == "multi" or every:
            given[list(where.values())] = True
        else:
            k = key if key in masks_by_frame else min(masks_by_frame)
            given[where[k] if k in where else nearest_positions([k], sampled)[k]] = True
        for j in np.flatnonzero(given):  # an empty given frame (a box outside the picture) shows nothing
            if not masks[j].any():
                masks[j] = masks_by_frame[min(masks_by_frame, key=lambda f: abs(f - sampled[j]))]
        return Region(masks, given, box_frame=int(np.flatnonzero(given)[0]))

    def _sample_regions(self, sample, height: int, width: int) -> list[dict]:
        """Each ``<region>`` of a Sample as {video frame: (H, W) mask}."""
        out = []
        for i, region in enumerate(sample.regions):
            masks = {}
            for key, value in dict(region).items():
                if value is None:  # a frame listed without a region
                    continue
                try:
                    f = int(key)
                except (TypeError, ValueError):
                    raise RegionError(f"sample {sample.id}: region {i} has frame key {key!r}, not an integer") from None
                if sample.region_kind == "box" or (isinstance(value, (list, tuple)) and len(value) == 4
                                                   and all(isinstance(v, (int, float)) for v in value)):
                    masks[f] = _box_mask(value, height, width)
                else:
                    seg = value.get("segmentation", value) if isinstance(value, dict) else value
                    masks[f] = decode_segmentation(seg, height, width)
            if not masks:
                raise RegionError(f"sample {sample.id}: region {i} has no annotated frame")
            out.append(masks)
        return out

    # ------------------------------------------------------------------ text tasks

    def task_of(self, sample) -> str:
        if self.task is not None:
            return self.task
        if sample.task == "choice":
            return "region_qa" if sample.regions else "video_qa"
        if sample.task == "caption":
            return "reg" if "referring expression" in sample.prompt.lower() else "region_caption"
        if sample.task == "track":
            return "sot" if sample.init_box is not None else "rsot"
        raise RegionLMError(f"{self.name} cannot answer {sample.task} samples")

    def _prompt(self, task: str, sample, n_regions: int) -> str:
        if task in ("region_qa", "video_qa"):
            return sample.prompt  # built with build_mc_prompt, exactly the training prompt
        prompt = build_prompt(task)
        # A caption benchmark whose prompt names several regions keeps its own wording.
        return prompt if prompt.count("<region>") == n_regions else sample.prompt

    def _ranks(self, sample) -> bool:
        return self.choice_mode == "rank" and sample.task == "choice" and bool(sample.options)

    def answer(self, sample) -> str:
        """Text answer of a choice / caption Sample (System protocol)."""
        if self._ranks(sample):
            return self.rank_options(self._sample_example(sample), sample.options)
        return self.generate([self._sample_example(sample)])[0]

    def answer_many(self, samples: Sequence) -> list[str]:
        """Text answers of several Samples in one batch (left-padded; the same greedy answers as one by one,
        faster on every device). The eval runner uses it in chunks of ``batch_size``."""
        if not samples:
            return []
        ranked = [self._ranks(s) for s in samples]
        if all(ranked):  # the questions' prompts in one batch, then every option from its question's cache
            return self._rank_many(samples)
        if any(ranked):
            return [self.answer(s) for s in samples]
        examples = [self._sample_example(s) for s in samples]
        # a batch needs one clip length and one decoding: different ones (a sequence shorter than num_frames, a
        # caption beside a question) go one by one
        if len({len(e.frames) for e in examples}) > 1 or len({e.task in CAPTION_TASKS for e in examples}) > 1:
            return [self.generate([e])[0] for e in examples]
        return self.generate(examples)

    def _rank_many(self, samples: Sequence) -> list[str]:
        examples = [self._sample_example(s) for s in samples]
        answers: list = [None] * len(samples)
        by_length: dict = {}  # a batch needs one clip length
        for i, e in enumerate(examples):
            by_length.setdefault(len(e.frames), []).append(i)
        for group in by_length.values():
            scores = self.options_scores_many([examples[i] for i in group], [samples[i].options for i in group])
            for i, sc in zip(group, scores):
                answers[i] = str(samples[i].options[int(np.argmax(sc))])
        return answers

    def _sample_example(self, sample) -> Example:
        task = self.task_of(sample)
        source = sample.frames if sample.frames else sample.video
        if source is None:
            raise RegionLMError(f"sample {sample.id}: no video or frames")
        with FrameSource(source, sample.frame_indices or None) as src:
            regions = self._sample_regions(sample, src.height, src.width)
            keys = [sample.frame_idx if sample.frame_idx in r else min(r) for r in regions]
            keep = keys if self.region_mode == "single" and len(set(keys)) <= self.num_frames else []
            sampled = sample_indices(src.num_frames, num=self.num_frames, keep=keep)
            frames = src.get(sampled)
            regs = self._regions(task, src, regions, keys, sampled)
        return Example(task=task, frames=frames, prompt=self._prompt(task, sample, len(regs)), regions=regs,
                       objects=self._objects(frames, regs, sample.video, [sample.frame_indices[i] for i in sampled]
                                             if sample.frame_indices else sampled),
                       meta={"id": sample.id, "frame_indices": sampled})

    # ------------------------------------------------------------------ tracking

    def track_frames(self, src: FrameSource, init_xyxy=None, expression: Optional[str] = None) -> list:
        """Pixel xyxy box (or None) per frame of ``src``, from a box on its first frame or an expression.

        Elysium's protocol: clips of ``num_frames`` frames overlapping by ``clip_overlap``; each clip after the
        first is seeded (a box region on its first frame, the sot task) with the box already decided for that
        frame, or the latest box before it when there is none (the object was lost: its last place is the best
        guess); while no box is known, rsot clips ask with the expression again. Merging, once per frame: a
        later clip's box replaces an earlier one (its seed is nearer in time), except on its seed frame, which
        keeps the box it was seeded with; a clip that gives no box for a frame leaves the earlier box.
        """
        return self.track_frames_many([(src, init_xyxy, expression)])[0]

    def track_frames_many(self, jobs: Sequence) -> list:
        """``track_frames`` for several ``(src, init_xyxy, expression)`` at once: the k-th clips of all jobs are
        generated in one batch (clips of the same length; the same boxes as one by one). With ``sot_mode="point"``
        a job with a first box is followed by the pointer head instead."""
        decided = {}
        if self.sot_mode == "point":  # a box on the first frame: the pointer head follows it
            from .pointer import point_track

            for i, (src, init, _) in enumerate(jobs):
                if init is not None:
                    first = box_xyxy_to_xywh(_first_box(init))
                    decided[i] = [box_xywh_to_xyxy(b) for b in point_track(self.model, self.pointer, src, first,
                                                                              outline=self.outline)]
        if self.rsot_mode == "point":  # an expression without a box: found on the first frame, then followed
            for i, (src, init, expression) in enumerate(jobs):
                if init is None and expression and i not in decided:
                    decided[i] = self._point_expression(src, expression)
        if self.rsot_mode == "ground":  # an expression without a box: the model picks among the pipeline's tracks
            from .grounding import track_by_grounding

            for i, (src, init, expression) in enumerate(jobs):
                if init is None and expression and i not in decided:
                    frames = src.get(list(range(src.num_frames)))
                    decided[i] = track_by_grounding(self, frames, expression, self.tracks_fn)
        states = [_TrackState(self, *job) for i, job in enumerate(jobs) if i not in decided]
        while True:
            pending = [(st, st.next_example()) for st in states]
            pending = [(st, ex) for st, ex in pending if ex is not None]
            if not pending:
                generated = iter(st.boxes for st in states)
                return [decided[i] if i in decided else next(generated) for i in range(len(jobs))]
            by_length: dict = {}
            for st, ex in pending:
                by_length.setdefault(len(ex.frames), []).append((st, ex))
            for length, group in by_length.items():
                texts = self.generate([ex for _, ex in group], self._track_budget(length))
                for (st, _), text in zip(group, texts):
                    st.consume(text)

    def _point_expression(self, src: FrameSource, expression: str) -> list:
        """rsot_mode "point": the refer head's candidates on the first frame of ``src``, each followed by the
        pointer head, the model's pick among them (regionlm.model.refer.refer_track) -> a pixel xyxy box (or None)
        per frame."""
        from .refer import refer_track

        boxes = refer_track(self, self.refer_head, self.rsot_pointer, src, expression, self.outline)
        if boxes is None:
            return [None] * src.num_frames
        return [box_xywh_to_xyxy(b) for b in boxes]

    def track(self, sample_or_video, region=None, expression: Optional[str] = None) -> list:
        """System protocol: ``track(sample)`` -> one [x, y, w, h] pixel box (or None) per frame of the sequence.
        User API: ``track(video, region=RegionPrompt | "box:x1,y1,x2,y2@F", expression=...)`` -> one box (or
        None) per frame of the video; the track starts at the region's frame (frame 0 for an expression) and
        frames before it are None."""
        from ..eval.benchmarks.base import Sample

        if isinstance(sample_or_video, Sample):
            return self._track_sample(sample_or_video)
        return self._track_user(sample_or_video, region, expression)

    def _track_sample(self, sample) -> list:
        return self.track_many([sample])[0]

    def track_many(self, samples: Sequence) -> list:
        """System protocol, batched: ``track(sample)`` of each Sample, their clips generated together (the eval
        runner uses it in chunks of ``batch_size``)."""
        from contextlib import ExitStack

        with ExitStack() as stack:
            jobs = []
            for sample in samples:
                source = sample.frames if sample.frames else sample.video
                if source is None:
                    raise RegionLMError(f"sample {sample.id}: no video or frames")
                src = stack.enter_context(FrameSource(source, sample.frame_indices or None))
                init = box_xywh_to_xyxy(list(sample.init_box)) if sample.init_box is not None else None
                jobs.append((src, init, sample.expression))
            tracks = self.track_frames_many(jobs)
        return [[None if b is None else box_xyxy_to_xywh(b) for b in boxes] for boxes in tracks]

    def _track_user(self, video, region, expression) -> list:
        if region is None and not expression:
            raise RegionLMError("track: give a region (box:x1,y1,x2,y2@F, mask:..., point:...) or an expression")
        with FrameSource(video) as src:
            start, init = 0, None
            if region is not None:
                prompt = _as_prompt(region)
                validate_frame(prompt, src.num_frames)
                box = mask_to_box(prompt_to_mask(prompt, src.height, src.width))
                start, init = prompt.frame, list(box)
            boxes = self.track_frames(src.tail(start), init, expression)
        return [None] * start + [None if b is None else box_xyxy_to_xywh(b) for b in boxes]

    # ------------------------------------------------------------------ user API

    def _user_example(self, task: str, video, prompt: str, regions: Sequence) -> Example:
        prompts = [_as_prompt(r) for r in regions]
        if prompt.count("<region>") != len(prompts):
            raise RegionError(f"the question has {prompt.count('<region>')} <region> placeholders but "
                              f"{len(prompts)} regions were given")
        with FrameSource(video) as src:
            for p in prompts:
                validate_frame(p, src.num_frames)
            keys = [p.frame for p in prompts]
            sampled = sample_indices(src.num_frames, num=self.num_frames,
                                     keep=keys if len(set(keys)) <= self.num_frames else [])
            frames = src.get(sampled)
            regs = self._regions(task, src, [{p.frame: prompt_to_mask(p, src.height, src.width)} for p in prompts],
                                 keys, sampled)
        return Example(task=task, frames=frames, prompt=prompt, regions=regs, objects=self._objects(frames, regs),
                       meta={"frame_indices": sampled})

    def ask(self, video, question: str, regions: Sequence = (), options: Optional[Sequence[str]] = None) -> str:
        """Answer a free question about a video (a path, a frame folder or a (T, H, W, 3) array); each
        ``<region>`` of ``question`` is the matching entry of ``regions`` (RegionPrompt or its spec text).
        ``options`` ("(A) ...", ...; the question then in the multiple-choice form): with choice_mode "rank" the
        answer is the option the model finds most likely."""
        task = "region_qa" if regions else "video_qa"
        example = self._user_example(task, video, question, regions)
        if options and self.choice_mode == "rank":
            return self.rank_options(example, list(options))
        return self.generate([example])[0]

    def describe(self, video, region) -> str:
        """A description of one region (RegionPrompt or spec text such as ``box:10,10,40,40@0``)."""
        return self.generate([self._user_example("region_caption", video, build_prompt("region_caption"),
                                                 [region])])[0]

    def refer(self, video, region) -> str:
        """A referring expression for one region (Video-REG)."""
        return self.generate([self._user_example("reg", video, build_prompt("reg"), [region])])[0]

    def locate(self, image, expression: str) -> Optional[list]:
        """REC: the [x, y, w, h] pixel box of ``expression`` in an image (H, W, 3) or one video frame, or None.
        Found by the refer head and the model's pick when ``rsot_mode`` is "point", else written by the model."""
        with FrameSource(image) as src:
            frame = src.get([0])
        n = self.num_frames  # the image repeated, as it was in training (world_examples: rec_as_video)
        if self.rsot_mode == "point":
            from .refer import locate

            box = locate(self, self.refer_head, np.repeat(frame, n, 0), expression)
            return None if box is None else box_xyxy_to_xywh(box)
        text = self.generate([Example("rec", np.repeat(frame, n, 0), build_prompt("rec", expression=expression))])[0]
        box = _valid_xyxy(text_to_box(text, src.width, src.height))
        return None if box is None else box_xyxy_to_xywh(box)


class _TrackState:
    """One sequence under the clip protocol of ``RegionLMSystem.track_frames``: ``next_example()`` gives the next
    clip's Example (None when done), ``consume(text)`` merges the model's answer for it into ``boxes``."""

    def __init__(self, system: "RegionLMSystem", src: FrameSource, init_xyxy=None, expression=None):
        if init_xyxy is None and not expression:
            raise RegionLMError("tracking needs a box on the first frame or a referring expression")
        self.system, self.src, self.expression = system, src, expression
        self.boxes: list = [None] * src.num_frames
        if init_xyxy is not None:
            self.boxes[0] = _first_box(init_xyxy)
        length = system.num_frames
        self.starts = clip_starts(src.num_frames, length, min(system.clip_overlap, max(length - 1, 0)))
        self.k, self.pos, self.seed = 0, [], None

    def next_example(self) -> Optional[Example]:
        if self.k >= len(self.starts):
            return None
        s, n, h, w = self.starts[self.k], self.src.num_frames, self.src.height, self.src.width
        self.pos = list(range(s, min(s + self.system.num_frames, n)))
        frames = self.src.get(self.pos)
        self.seed = next((self.boxes[t] for t in range(s, -1, -1) if self.boxes[t] is not None), None)
        if self.seed is None:
            return Example("rsot", frames, build_prompt("rsot", expression=self.expression),
                           objects=self.system._objects(frames, []), meta={"positions": self.pos})
        masks = np.zeros((len(self.pos), h, w), bool)
        masks[0] = _box_mask(self.seed, h, w)
        given = np.zeros(len(self.pos), bool)
        given[0] = True
        regs = [Region(masks, given, box_frame=0)]
        return Example("sot", frames, build_prompt("sot", box=box_to_text(self.seed, w, h)), regions=regs,
                       objects=self.system._objects(frames, regs), meta={"positions": self.pos})

    def consume(self, text: str) -> None:
        h, w = self.src.height, self.src.width
        parsed, _ = parse_frame_boxes(text)
        for j, t in enumerate(self.pos):
            if self.seed is not None and j == 0 and self.boxes[t] is not None:
                continue
            box = _valid_xyxy(text_to_box(parsed[j], w, h)) if j in parsed else None
            if box is not None:
                self.boxes[t] = [round(min(max(v, 0.0), float(lim)), 3) for v, lim in zip(box, (w, h, w, h))]
        self.k += 1


def _outline_config(outline):
    """RegionLMSystem's ``outline`` -> an OutlineConfig (validated) or None."""
    from .outline import OutlineConfig

    if outline is True:
        return OutlineConfig()
    if outline is False or outline is None:
        return None
    if not isinstance(outline, OutlineConfig):
        raise RegionLMError(f"outline must be True, False or an OutlineConfig, got {outline!r}")
    outline.validate()
    return outline


def _first_box(init_xyxy) -> list:
    """The box a track starts from, checked (a one-line error when it is empty)."""
    box = _valid_xyxy(init_xyxy)
    if box is None:
        raise RegionError(f"the first box {list(init_xyxy)} is empty (xyxy needs x2 > x1 and y2 > y1)")
    return box


def _as_prompt(region) -> RegionPrompt:
    if isinstance(region, RegionPrompt):
        return region
    if isinstance(region, str):
        return parse_region(region)
    raise RegionError(f"a region must be a RegionPrompt or text like 'box:x1,y1,x2,y2@F', got {region!r:.60}")


# ---------------------------------------------------------------------------------------------------- loading


def weights_fingerprint(folder, whole_up_to: int = 256 << 20, samples: int = 16, chunk: int = 1 << 20) -> str:
    """A short hash of the ``*.safetensors`` files in ``folder`` (every byte up to ``whole_up_to`` in all, else
    sizes, headers and ``samples`` evenly spaced chunks), so that an eval cache written for one training run of a
    folder is not reused after the folder is retrained ("" when there are no weight files)."""
    from .pointer import POINTER_FILE  # heads fitted after the weights: their own fingerprints (pointer_fingerprint)
    from .refer import REFER_FILE

    files = sorted(f for f in Path(folder).glob("*.safetensors") if f.name not in (POINTER_FILE, REFER_FILE)) \
        if Path(folder).is_dir() else []
    if not files:
        return ""
    digest, whole = hashlib.sha256(), sum(f.stat().st_size for f in files) <= whole_up_to
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.name}:{size};".encode())
        with open(f, "rb") as fh:
            if whole:
                for block in iter(lambda: fh.read(chunk), b""):
                    digest.update(block)
                continue
            header = int.from_bytes(fh.read(8), "little")  # safetensors: u64 header length, then the header
            digest.update(fh.read(min(header, whole_up_to)))
            for k in range(samples):
                fh.seek(k * max(size - chunk, 0) // max(samples - 1, 1))
                digest.update(fh.read(chunk))
    return digest.hexdigest()[:16]


def pointer_fingerprint(head) -> str:
    """A short hash of a head's (pointer, refer) config and weights (an eval cache of its boxes is for it alone)."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(head.config), sort_keys=True).encode())
    for name, value in sorted(head.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_model(path):
    """(model, processor) saved by ``save_pretrained`` in the folder ``path``; one-line errors otherwise."""
    folder = Path(path)
    if not folder.exists():
        raise RegionLMError(f"--model {folder}: no such folder")
    if not folder.is_dir():
        raise RegionLMError(f"--model {folder}: not a folder (give the folder that save_pretrained wrote)")
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise RegionLMError(f"--model {folder}: no config.json, not a saved RegionLM model")
    try:
        model_type = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise RegionLMError(f"--model {folder}: config.json is not a JSON object ({e})") from None
    if model_type != "regionlm":
        raise RegionLMError(f"--model {folder}: config.json is a {model_type!r} model, not a RegionLM one")
    from .modeling import RegionLMForConditionalGeneration
    from .processing import RegionLMProcessor

    try:
        model = RegionLMForConditionalGeneration.from_pretrained(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise RegionLMError(f"--model {folder}: cannot load the model: {str(e).splitlines()[0]}") from None
    try:
        processor = RegionLMProcessor.from_pretrained(folder, config=model.config)
    except (OSError, ValueError, KeyError) as e:
        raise RegionLMError(f"--model {folder}: cannot load the processor: {str(e).splitlines()[0]}") from None
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval(), processor


def load_eval_system(path, benchmark=None, **options) -> RegionLMSystem:
    """The System ``regionlm eval --model DIR`` asks. ``benchmark``: a Benchmark (or its name) whose model task
    is then used for every sample; ``options``: RegionLMSystem's keyword arguments."""
    model, processor = load_model(path)
    name = getattr(benchmark, "name", benchmark)
    system = RegionLMSystem(model, processor, task=BENCHMARK_TASKS.get(name) if name else None, path=str(path),
                            **options)
    system.config["weights"] = weights_fingerprint(path)
    return system


__all__ = ["BENCHMARK_TASKS", "CAPTION_TASKS", "CHOICE_MODES", "OBJECT_SOURCES", "RSOT_MODES", "SOT_MODES",
           "FrameSource", "RegionLMSystem", "clip_starts", "load_eval_system", "load_model", "nearest_positions",
           "pointer_fingerprint", "weights_fingerprint"]
