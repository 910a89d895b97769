"""Training examples from RegionWorld: every task of the model (regionlm.model.example.TASKS), built from one
video's frames and annotations (regionlm/world/annotate.py), and two datasets of them.

* :class:`WorldTaskStream`: an endless (or bounded) torch IterableDataset that renders videos on the fly with
  ``make_video`` (exact frames, no mp4 round trip) and yields Examples drawn by task weights. The stream is a pure
  function of (seed, rank, world size, start): rank r takes videos r, r + W, r + 2W, ... (DDP shards never share
  a video), DataLoader workers split a rank's videos round robin, and each video's examples come from a generator
  seeded by (seed, video index), so a resumed run (``start=n``) sees exactly the examples it had not seen.
* :class:`WorldTaskDataset`: one Example per annotation record of a folder written by ``regionlm world
  generate`` (a fixed held-out set), reading its mp4s; item i is seeded by (seed, i).

Regions (what the processor turns into `<region>` tokens): ``masks`` = the object's visible mask on every example
frame where it is seen (the guide head is supervised on all of them); ``given`` = the frames the model is shown:
single-frame mode (the record's key frame, as VideoRefer-Bench-Q's ``frame_idx``), multi-frame mode (every frame
where it is seen) or, with probability ``first_frame_only`` (Omni-RGPT's trick), only its first visible frame.
Objects: every object's visible masks (ground truth), for ``object_tokens``.

Boxes in answers are Elysium's text (``regions.box_to_text``, ints in [0, 100); tracks as prompts.sot_answer,
one ``Frame k: [..]`` line per frame, ``k`` 1-based over the example's frames). A tracked object's box is its
amodal box clipped to the frame (the annotation's ``boxes``); frames the annotation marks ``absent`` (out of the
picture or fully hidden) are left out of the answer, so the model learns to say nothing for them and inference
reads a missing frame as "no box".
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from torch.utils.data import Dataset, IterableDataset

from ..errors import RegionLMError
from ..regions import box_to_ints, box_to_mask, box_to_text, mask_to_box, rle_to_mask
from ..world.facts import CLEAR_VIEW, WELL_VISIBLE
from .example import TASKS, Example, Region
from .prompts import build_prompt, sot_answer

# ---------------------------------------------------------------------------------------------------- options


@dataclass
class ExampleOptions:
    """How examples are drawn from a video. Probabilities are per example (per region where said)."""

    num_frames: Optional[int] = None  # frames per example; None: every frame of the video
    multi_frame_prob: float = 0.5  # a region is given on every frame where it is seen (else: its key frame only)
    first_frame_only: float = 0.0  # Omni-RGPT: a region given on its first visible frame only (overrides the above)
    box_prompt_prob: float = 0.2  # per region: the given frames carry the filled box instead of the mask (a user
    #   box prompt); sot regions are always boxes (SOT starts from a box)
    lookalike_prob: float = 0.5  # region_qa: ask about the look-alike object instead (its own answer), when stored
    lookalike_pairs: bool = False  # region_qa: a question with a look-alike gives both examples, one after the
    #   other (so mostly in one batch): the same question about the object and about its look-alike
    window: str = "random"  # sot / rsot clip start: "random" well-visible frame, or "init" (the record's
    #   init_frame, the benchmark protocol, when the clip fits)
    rec_as_video: bool = True  # rec: the image repeated num_frames times (VideoLLaMA2 feeds images so), so rec
    #   examples batch with video examples; False: a one-frame example
    with_objects: bool = True  # attach every object's masks (object_tokens needs them)
    max_objects: int = 64

    def validate(self) -> None:
        for name in ("multi_frame_prob", "first_frame_only", "box_prompt_prob", "lookalike_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise RegionLMError(f"example option {name} must be in [0, 1], got {v}")
        if self.num_frames is not None and self.num_frames < 1:
            raise RegionLMError(f"example option num_frames must be at least 1, got {self.num_frames}")
        if self.window not in ("random", "init"):
            raise RegionLMError(f"example option window must be 'random' or 'init', got {self.window!r}")


def eval_options(num_frames: Optional[int] = None) -> ExampleOptions:
    """Deterministic choices for held-out sets: key-frame regions as annotated, the benchmark's clip start."""
    return ExampleOptions(num_frames=num_frames, multi_frame_prob=0.0, first_frame_only=0.0, box_prompt_prob=0.0,
                          lookalike_prob=0.0, window="init")


# ---------------------------------------------------------------------------------------------------- one video


@dataclass
class WorldVideo:
    """One RegionWorld video as the builders need it: frames (T, H, W, 3) uint8, its ground_truth record and its
    annotation records per task file stem (``region_qa``, ``sot``, ...)."""

    frames: np.ndarray
    truth: dict
    records: dict
    _visible: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of_truth(cls, truth: dict) -> "WorldVideo":
        """A video known by its ground_truth record alone (its pixels are zeros, and take no memory): for its
        objects' masks."""
        shape = (truth["num_frames"], truth["height"], truth["width"], 3)
        return cls(np.broadcast_to(np.zeros(1, np.uint8), shape), truth, {})

    @classmethod
    def from_notes(cls, frames: np.ndarray, notes) -> "WorldVideo":
        """From ``make_video``'s rendering frames and VideoAnnotations."""
        recs = {k: list(getattr(notes, k)) for k in ("region_qa", "region_caption", "sot", "rsot", "reg",
                                                      "video_qa")}
        return cls(np.asarray(frames), notes.ground_truth, recs)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def objects(self) -> list[dict]:
        return list(self.truth.get("objects", ()))

    def visible(self, obj_id: int) -> np.ndarray:
        """(T, H, W) bool visible masks of one object (decoded once)."""
        if obj_id not in self._visible:
            obj = next((o for o in self.objects() if o["id"] == obj_id), None)
            if obj is None:
                raise RegionLMError(f"video {self.truth.get('video')}: no object {obj_id} in its ground truth")
            h, w = self.size
            out = np.zeros((self.num_frames, h, w), bool)
            for t, fr in enumerate(obj["frames"][: self.num_frames]):
                if fr.get("segmentation") is not None:
                    out[t] = rle_to_mask(fr["segmentation"])
            self._visible[obj_id] = out
        return self._visible[obj_id]

    def box(self, obj_id: int, t: int):
        obj = next(o for o in self.objects() if o["id"] == obj_id)
        return obj["frames"][t]["box"]


# ---------------------------------------------------------------------------------------------------- pieces


def sample_frames(num_video_frames: int, num: Optional[int], keep=()) -> list[int]:
    """Video frames of an example: uniform over the video (regionlm.video.sample_indices), the key frames kept."""
    from ..video import sample_indices

    if num is None or num >= num_video_frames:
        return list(range(num_video_frames))
    return sample_indices(num_video_frames, num=num, keep=sorted(set(keep)))


def annotation_masks(ann: dict, idx: list[int], size: tuple[int, int]) -> np.ndarray:
    """An annotation ``{frame: {"segmentation": RLE}}`` on the example frames ``idx``: (T, H, W) bool."""
    pos = {v: j for j, v in enumerate(idx)}
    out = np.zeros((len(idx), *size), bool)
    for key, value in ann.items():
        j = pos.get(int(key))
        if j is not None and value is not None:
            seg = value["segmentation"] if isinstance(value, dict) and "segmentation" in value else value
            out[j] = rle_to_mask(seg)
    return out


def choose_given(masks: np.ndarray, key_pos: Optional[int], opts: ExampleOptions, rng) -> np.ndarray:
    """The given flags of one region (see the module docstring); ``key_pos``: the key frame on the example's
    frames (None: the first frame where the region is seen)."""
    seen = np.flatnonzero(masks.any(axis=(1, 2)))
    if seen.size == 0:
        raise RegionLMError("a region is not seen on any frame of the example")
    given = np.zeros(masks.shape[0], bool)
    if rng.random() < opts.first_frame_only:
        given[seen[0]] = True
    elif rng.random() < opts.multi_frame_prob:
        given[seen] = True
    else:
        given[key_pos if key_pos is not None and masks[key_pos].any() else seen[0]] = True
    return given


def as_box_prompt(masks: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The masks with every given frame replaced by its filled box (what a user's box prompt becomes)."""
    out = masks.copy()
    h, w = masks.shape[1:]
    for t in np.flatnonzero(given):
        box = mask_to_box(masks[t])
        if box is not None:
            out[t] = box_to_mask(box, h, w)
    return out


def make_region(masks: np.ndarray, key_pos: Optional[int], opts: ExampleOptions, rng) -> Region:
    given = choose_given(masks, key_pos, opts, rng)
    if rng.random() < opts.box_prompt_prob:
        masks = as_box_prompt(masks, given)
    return Region(masks=masks, given=given, box_frame=int(np.flatnonzero(given)[0]))


def object_tracks(video: WorldVideo, idx: list[int], opts: ExampleOptions) -> tuple[list, list]:
    """Every object seen on the example frames: ((T, H, W) masks, ids), at most ``max_objects``, by id."""
    if not opts.with_objects:
        return [], []
    masks, ids = [], []
    for obj in video.objects():
        m = video.visible(obj["id"])[idx]
        if m.any():
            masks.append(m)
            ids.append(obj["id"])
    return masks[: opts.max_objects], ids[: opts.max_objects]


def _example(task: str, video: WorldVideo, idx: list[int], prompt: str, answer: str, regions: list, opts,
             meta: dict, frames: Optional[np.ndarray] = None) -> Example:
    objects, object_ids = object_tracks(video, idx, opts)
    meta = {"video": video.truth.get("video"), "frame_indices": list(idx), "object_ids": object_ids, **meta}
    return Example(task=task, frames=video.frames[idx] if frames is None else frames, prompt=prompt,
                   answer=answer, regions=regions, objects=objects, meta=meta)


def _seen(visibility: float, in_frame: float | None) -> float:
    """The share of the whole object seen (records written before ``in_frame`` existed: the unhidden share)."""
    return visibility * (1.0 if in_frame is None else in_frame)


def _well_visible_starts(record: dict, length: int, num_video_frames: int) -> list[int]:
    """Clip starts where the object is well visible (half of it seen, as the annotation's init_frame) and the
    clip fits."""
    vis = record.get("visibility") or [0.0 if a else 1.0 for a in record["absent"]]
    in_frame = record.get("in_frame") or [None] * len(vis)
    return [t for t in range(num_video_frames - length + 1)
            if _seen(vis[t], in_frame[t]) >= WELL_VISIBLE and not record["absent"][t]]


def track_answer(record: dict, idx: list[int], width: int, height: int) -> tuple[str, dict]:
    """``Frame k: [..]`` over the example frames, absent frames left out; also the ints per example frame."""
    ints = {j: (None if record["absent"][t] or record["boxes"][t] is None
                else box_to_ints(record["boxes"][t], width, height)) for j, t in enumerate(idx)}
    return sot_answer(ints), ints


# ---------------------------------------------------------------------------------------------------- builders
# A builder turns one annotation record of a video into an Example (None when the record cannot make one, e.g. a
# track whose object is never well visible at a clip start). ``records`` lists a video's candidate records.


@dataclass(frozen=True)
class TaskSpec:
    name: str
    records: Callable[[WorldVideo], list]
    build: Callable[..., Optional[Example]]


TASK_SPECS: dict[str, TaskSpec] = {}


def task_builder(name: str, source: str):
    """Register the builder of task ``name``, which reads the video's ``source`` records."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {TASKS}")

    def wrap(fn):
        TASK_SPECS[name] = TaskSpec(name, lambda v: list(v.records.get(source, ())), fn)
        return fn

    return wrap


@task_builder("region_qa", "region_qa")
def build_region_qa(video: WorldVideo, rec: dict, opts: ExampleOptions, rng,
                    swap: Optional[bool] = None) -> Optional[Example]:
    """``swap``: ask about the look-alike (True) or the object (False); None: the look-alike with
    ``opts.lookalike_prob`` when the record has one."""
    ann, frame, answer, swapped = rec["annotation"], int(rec["frame_idx"]), rec["Answer"], False
    look = rec.get("lookalike")
    if look and (rng.random() < opts.lookalike_prob if swap is None else swap):
        # The same question about the look-alike, whose answer differs: the answer must come from the region.
        ann, frame, answer, swapped = look["annotation"], int(look["frame_idx"]), look["Answer"], True
    idx = sample_frames(video.num_frames, opts.num_frames, keep=[frame])
    key = idx.index(frame)
    regions = [make_region(annotation_masks(a, idx, video.size), key, opts, rng) for a in ann]
    prompt = build_prompt("region_qa", question=rec["Question"], options=rec["options"])
    ids = ([look["object_id"]] + list(rec["object_ids"][1:])) if swapped else list(rec["object_ids"])
    return _example("region_qa", video, idx, prompt, answer, regions, opts,
                    {"id": rec["id"] + ("@lookalike" if swapped else ""), "type": rec.get("type"),
                     "options": list(rec["options"]), "region_object_ids": ids})


@task_builder("region_caption", "region_caption")
def build_region_caption(video: WorldVideo, rec: dict, opts: ExampleOptions, rng) -> Optional[Example]:
    frame = int(rec["frame_idx"])
    idx = sample_frames(video.num_frames, opts.num_frames, keep=[frame])
    regions = [make_region(annotation_masks(a, idx, video.size), idx.index(frame), opts, rng)
               for a in rec["annotation"]]
    return _example("region_caption", video, idx, build_prompt("region_caption"), rec["caption"], regions, opts,
                    {"id": rec["id"], "region_object_ids": list(rec["object_ids"])})


@task_builder("video_qa", "video_qa")
def build_video_qa(video: WorldVideo, rec: dict, opts: ExampleOptions, rng) -> Optional[Example]:
    idx = sample_frames(video.num_frames, opts.num_frames)
    prompt = build_prompt("video_qa", question=rec["Question"], options=rec["options"])
    return _example("video_qa", video, idx, prompt, rec["Answer"], [], opts,
                    {"id": rec["id"], "type": rec.get("type"), "options": list(rec["options"])})


def _clip(video: WorldVideo, rec: dict, opts: ExampleOptions, rng) -> Optional[list[int]]:
    length = video.num_frames if opts.num_frames is None else min(opts.num_frames, video.num_frames)
    starts = _well_visible_starts(rec, length, video.num_frames)
    if not starts:
        return None
    if opts.window == "init":  # the benchmark's start, else the nearest start where the clip still fits
        init = int(rec.get("init_frame", starts[0]))
        start = min(starts, key=lambda s: (abs(s - init), s))
    else:
        start = starts[int(rng.integers(len(starts)))]
    return list(range(start, start + length))


@task_builder("sot", "sot")
def build_sot(video: WorldVideo, rec: dict, opts: ExampleOptions, rng) -> Optional[Example]:
    idx = _clip(video, rec, opts, rng)
    if idx is None:
        return None
    h, w = video.size
    masks = video.visible(rec["object_id"])[idx].copy()
    masks[0] = box_to_mask(rec["boxes"][idx[0]], h, w)  # SOT starts from a box on the clip's first frame
    given = np.zeros(len(idx), bool)
    given[0] = True
    answer, ints = track_answer(rec, idx, w, h)
    prompt = build_prompt("sot", box=box_to_text(rec["boxes"][idx[0]], w, h))
    return _example("sot", video, idx, prompt, answer, [Region(masks, given, box_frame=0)], opts,
                    {"id": rec["id"], "region_object_ids": [rec["object_id"]], "box_ints": ints,
                     "init_box": list(rec["boxes"][idx[0]])})


@task_builder("rsot", "rsot")
def build_rsot(video: WorldVideo, rec: dict, opts: ExampleOptions, rng) -> Optional[Example]:
    idx = _clip(video, rec, opts, rng)
    if idx is None:
        return None
    h, w = video.size
    answer, ints = track_answer(rec, idx, w, h)
    return _example("rsot", video, idx, build_prompt("rsot", expression=rec["expression"]), answer, [], opts,
                    {"id": rec["id"], "expression": rec["expression"], "target_object_id": rec["object_id"],
                     "box_ints": ints})


@task_builder("reg", "reg")
def build_reg(video: WorldVideo, rec: dict, opts: ExampleOptions, rng) -> Optional[Example]:
    frame = int(rec["frame"])
    idx = sample_frames(video.num_frames, opts.num_frames, keep=[frame])
    key = idx.index(frame)
    # The region is shown on the record's frame only (Video-REG: a box on one frame); the guide head still sees
    # the object's masks on every frame.
    masks = video.visible(rec["object_id"])[idx].copy()
    masks[key] = annotation_masks(rec["annotation"][0], [frame], video.size)[0]
    given = np.zeros(len(idx), bool)
    given[key] = True
    if rng.random() < opts.box_prompt_prob:
        masks = as_box_prompt(masks, given)
    return _example("reg", video, idx, build_prompt("reg"), rec["expression"], [Region(masks, given, box_frame=key)],
                    opts, {"id": rec["id"], "region_object_ids": [rec["object_id"]], "frame": frame,
                           "box": list(rec["box"])})


@task_builder("rec", "reg")
def build_rec(video: WorldVideo, rec: dict, opts: ExampleOptions, rng) -> Optional[Example]:
    """REC on one frame: the object's expression -> its box (ints [0, 100)). The frame: a random one where the
    object is well visible (>= 0.6, as the reg records choose theirs)."""
    obj = next(o for o in video.objects() if o["id"] == rec["object_id"])
    good = [t for t, fr in enumerate(obj["frames"][: video.num_frames])
            if fr["box"] is not None and _seen(fr["visibility"], fr.get("in_frame")) >= CLEAR_VIEW
            and fr.get("segmentation") is not None]
    frame = good[int(rng.integers(len(good)))] if good and opts.window == "random" else int(rec["frame"])
    h, w = video.size
    box = video.box(rec["object_id"], frame)
    n = 1 if not opts.rec_as_video else (opts.num_frames or video.num_frames)
    idx = [frame] * n
    answer = box_to_text(box, w, h)
    return _example("rec", video, idx, build_prompt("rec", expression=rec["expression"]), answer, [], opts,
                    {"id": rec["id"] + "@rec", "expression": rec["expression"], "frame": frame, "box": list(box),
                     "target_object_id": rec["object_id"]})


def build_example(task: str, video: WorldVideo, record: dict, opts: ExampleOptions, rng) -> Optional[Example]:
    try:
        spec = TASK_SPECS[task]
    except KeyError:
        raise RegionLMError(f"unknown task {task!r}; tasks: {', '.join(TASK_SPECS)}") from None
    return spec.build(video, record, opts, rng)


# ---------------------------------------------------------------------------------------------------- weights

DEFAULT_TASK_WEIGHTS = {"region_qa": 3.0, "region_caption": 1.0, "video_qa": 1.0, "sot": 2.0, "rsot": 1.0,
                        "reg": 1.0, "rec": 1.0}


def check_task_weights(task_weights: Optional[dict]) -> dict:
    """Task -> weight (>= 0, at least one > 0); one-line error naming a bad task or weight."""
    weights = dict(DEFAULT_TASK_WEIGHTS if task_weights is None else task_weights)
    for task, w in weights.items():
        if task not in TASK_SPECS:
            raise RegionLMError(f"task_weights: unknown task {task!r}; tasks: {', '.join(TASK_SPECS)}")
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not np.isfinite(w) or w < 0:
            raise RegionLMError(f"task_weights: the weight of {task} must be a number >= 0, got {w!r}")
    if not any(w > 0 for w in weights.values()):
        raise RegionLMError("task_weights: every weight is 0; give at least one task a positive weight")
    return {t: float(w) for t, w in weights.items() if w > 0}


def draw_examples(video: WorldVideo, n: int, weights: dict, opts: ExampleOptions, rng) -> list[Example]:
    """``n`` examples of one video: a task by weight among those the video has records for, then a record; a
    record that cannot make an example is dropped and the draw repeated."""
    pools = {t: TASK_SPECS[t].records(video) for t in weights}
    out = []
    while len(out) < n:
        tasks = [t for t in weights if pools[t]]
        if not tasks:
            break
        p = np.array([weights[t] for t in tasks])
        task = tasks[int(rng.choice(len(tasks), p=p / p.sum()))]
        k = int(rng.integers(len(pools[task])))
        record = pools[task][k]
        if task == "region_qa" and opts.lookalike_pairs and record.get("lookalike") and n - len(out) >= 2:
            out += [ex for ex in (build_region_qa(video, record, opts, rng, swap=swap) for swap in (False, True))
                    if ex is not None]
            continue
        ex = build_example(task, video, record, opts, rng)
        if ex is None:
            pools[task] = pools[task][:k] + pools[task][k + 1:]
            continue
        out.append(ex)
    return out


# ---------------------------------------------------------------------------------------------------- datasets


def _dist_rank_world(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() if rank is None else int(rank), (dist.get_world_size() if world_size is None
                                                                 else int(world_size))
    return 0 if rank is None else int(rank), 1 if world_size is None else int(world_size)


class WorldTaskStream(IterableDataset):
    """Examples from RegionWorld videos rendered on the fly (see the module docstring).

    cfg: a WorldConfig (None: the default); split: train/val/test/holdout; seed: the world seed (videos are
    ``make_video(seed, split, index, cfg)``) and the example seed; task_weights: task -> weight (None: the
    defaults); num_frames: frames per example (None: all; at most cfg.frames so every example has the same T);
    examples_per_video: examples drawn from each rendered video; start: examples of this rank's stream to skip
    (resume); num_examples: stop after this many of this rank's stream (None: endless); rank / world_size: the
    DDP shard (None: from torch.distributed when initialised, else 0 / 1); options: ExampleOptions (its
    num_frames is replaced by ``num_frames`` when that is given).

    Resuming: ``start=n`` skips the first n examples of the rank's stream (``meta["stream_position"]``); with
    DataLoader workers (worker w renders the rank's videos j with j % workers == w) the remaining examples are
    the same, in the order the DataLoader interleaves its workers.
    """

    split_by_workers = True  # False: a DataLoader worker that shards by itself (the trainer's) takes it whole

    def __init__(self, cfg=None, split: str = "train", seed: int = 0, task_weights: Optional[dict] = None,
                 num_frames: Optional[int] = None, examples_per_video: int = 4, start: int = 0,
                 num_examples: Optional[int] = None, rank: Optional[int] = None, world_size: Optional[int] = None,
                 options: Optional[ExampleOptions] = None):
        from ..world import SPLITS, WorldConfig

        self.cfg = cfg or WorldConfig()
        self.cfg.validate()
        if split not in SPLITS:
            raise RegionLMError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if examples_per_video < 1 or start < 0 or (num_examples is not None and num_examples < 0):
            raise RegionLMError("examples_per_video must be >= 1, start and num_examples >= 0")
        self.split, self.seed = split, int(seed)
        self.weights = check_task_weights(task_weights)
        opts = options or ExampleOptions()
        self.options = replace(opts, num_frames=opts.num_frames if num_frames is None else num_frames)
        self.options.validate()
        n = self.options.num_frames
        if n is not None and n > self.cfg.frames:
            raise RegionLMError(f"num_frames must be in 1..{self.cfg.frames} (the world's frames), got {n}")
        self.examples_per_video, self.start, self.num_examples = int(examples_per_video), int(start), num_examples
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise RegionLMError(f"rank {self.rank} is not in 0..{self.world_size - 1}")

    def video_index(self, j: int) -> int:
        """The split's video index of this rank's j-th video."""
        return j * self.world_size + self.rank

    def video_examples(self, j: int) -> list[Example]:
        """The examples of this rank's j-th video (always the same for the same seed)."""
        from ..world import make_video

        index = self.video_index(j)
        _, rendering, notes = make_video(self.seed, self.split, index, self.cfg)
        video = WorldVideo.from_notes(rendering.frames, notes)
        rng = np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), index])
        out = draw_examples(video, self.examples_per_video, self.weights, self.options, rng)
        for ex in out:
            ex.meta.update(split=self.split, world_seed=self.seed, video_index=index)
        return out

    def __iter__(self):
        from torch.utils.data import get_worker_info

        info = get_worker_info() if self.split_by_workers else None
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epv = self.examples_per_video
        j = self.start // epv
        j += (worker - j) % workers  # this worker's first video at or after the start
        empty = 0
        while True:
            examples = self.video_examples(j)
            empty = 0 if examples else empty + 1
            if empty == 50:
                raise RegionLMError(f"50 videos in a row gave no example for the tasks {sorted(self.weights)} with "
                                    f"num_frames={self.options.num_frames}: check task_weights")
            for slot, ex in enumerate(examples):
                n = j * epv + slot  # position in this rank's stream
                if n < self.start:
                    continue
                if self.num_examples is not None and n >= self.num_examples:
                    return
                ex.meta["stream_position"] = n
                yield ex
            if self.num_examples is not None and (j + 1) * epv >= self.num_examples:
                return
            j += workers


class WorldTaskDataset(Dataset):
    """One Example per record of a generated RegionWorld folder (``regionlm world generate OUT --split ...``).

    Items: for each task (in ``tasks`` order, default all) every record of its file (rec reads reg.jsonl).
    Options default to :func:`eval_options` (deterministic); item i's random choices are seeded by (seed, i).
    Tracks that cannot make a clip of ``num_frames`` (never well visible at a start where it fits) are left out.
    """

    cache_videos = 32  # decoded videos kept (a 16-frame 64x64 video is 200 kB)

    def __init__(self, folder, tasks=None, num_frames: Optional[int] = None, options: Optional[ExampleOptions] = None,
                 seed: int = 0, video_root=None):
        from ..eval.benchmarks.world import read_ground_truth, read_world_records

        self.folder = Path(folder)
        self.video_root = Path(video_root) if video_root is not None else None
        tasks = list(TASK_SPECS) if tasks is None else list(tasks)
        for t in tasks:
            if t not in TASK_SPECS:
                raise RegionLMError(f"tasks: unknown task {t!r}; tasks: {', '.join(TASK_SPECS)}")
        opts = options or eval_options()
        self.options = replace(opts, num_frames=opts.num_frames if num_frames is None else num_frames)
        self.options.validate()
        self.seed = int(seed)
        self.truth = read_ground_truth(self.folder)
        files = {"region_qa": "region_qa.json", "region_caption": "region_caption.json", "video_qa": "video_qa.json",
                 "sot": "sot.jsonl", "rsot": "rsot.jsonl", "reg": "reg.jsonl"}
        self._by_video: dict[str, dict] = {}
        for stem, name in files.items():
            for rec in read_world_records(self.folder, name):
                if rec.get("video") not in self.truth:
                    raise RegionLMError(f"{self.folder / name}: record {rec.get('id')} names video "
                                        f"{rec.get('video')!r}, which ground_truth.json does not list")
                self._by_video.setdefault(rec["video"], {}).setdefault(stem, []).append(rec)
        sources = {"rec": "reg"}
        self.items = [(t, rec) for t in tasks for v in self.truth for rec in
                      self._by_video.get(v, {}).get(sources.get(t, t), ())
                      if t not in ("sot", "rsot") or self._clip_fits(rec)]
        self._cache: dict[str, WorldVideo] = {}

    def __len__(self) -> int:
        return len(self.items)

    def _clip_fits(self, rec: dict) -> bool:
        n = int(rec["num_frames"])
        length = n if self.options.num_frames is None else min(n, self.options.num_frames)
        return bool(_well_visible_starts(rec, length, n))

    def video(self, name: str) -> WorldVideo:
        from ..eval.benchmarks.base import resolve_path
        from ..video import read_video

        if name not in self._cache:
            frames, _, _ = read_video(resolve_path(name, self.folder, self.video_root))
            if len(self._cache) >= self.cache_videos:  # items run task by task: keep recent videos decoded
                self._cache.pop(next(iter(self._cache)))
            self._cache[name] = WorldVideo(frames, self.truth[name], self._by_video.get(name, {}))
        return self._cache[name]

    def __getitem__(self, i: int) -> Example:
        task, rec = self.items[i]
        video = self.video(rec["video"])
        ex = build_example(task, video, rec, self.options, np.random.default_rng([self.seed, i]))
        if ex is None:  # cannot happen for the records kept at construction
            raise RegionLMError(f"{self.folder}: record {rec.get('id')} cannot make a {task} example")
        return ex


__all__ = ["DEFAULT_TASK_WEIGHTS", "ExampleOptions", "TASK_SPECS", "WorldTaskDataset", "WorldTaskStream",
           "WorldVideo", "build_example", "draw_examples", "eval_options", "sample_frames", "track_answer"]
