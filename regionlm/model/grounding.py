"""Referring tracking by grounding: the object pipeline tracks every object, the model picks the one an
expression names, and that object's track is the answer.

The model writes no box here. Each candidate object is shown to it as a `<region>` of the referring-expression
task (``reg``: "Give a referring expression for <region>"), and the candidate is scored by how likely the model
finds the user's expression as that region's answer (comprehension by generation, as Mao et al. 2016 pick the
region whose generated expression best explains the words). The region is shown on one sampled frame at a time
(``views="each"``: as a user's box on one frame is shown, and as most training regions were) and the likelihood
is the mean over those views; shown on every frame at once (``"joint"``) the model picked worse (docs/RESULTS.md).
Added to it: the log of the pipeline's confidence that the track is an object at all (its score: mean detection
score x the fraction of frames it is seen), PRIOR_WEIGHT times, less a penalty for tracks under SMALL_AREA of the
frame: a prior that keeps background blobs and fragments from winning. VideoOrion's split of labour: a
detect-segment-track pipeline gives the objects, the language model reasons over them.

``RegionLMSystem(rsot_mode="ground")`` answers world-rsot and ``track(video, expression=...)`` this way;
``"generate"`` keeps Elysium's protocol (the model writes a box per frame from the words) and ``"point"`` (the
default ``"auto"`` when the model folder has the heads) finds the object on the first frame without the pipeline
(regionlm.model.refer).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..regions import mask_to_box
from ..video import sample_indices
from .example import Example, Region
from .prompts import build_prompt

MIN_PRIOR = 1e-3  # a track the pipeline gives score 0 is unlikely, not impossible
# The prior's terms and how a candidate is shown, chosen on a validation split (RegionWorld test split, seed 2, 100
# videos, 398 expressions; the benchmark split is seed 1) by `python benchmarks/grounding_prior.py` for the shipped
# model. Weighting the pipeline's score 6 times and penalising tracks that cover under 1% of the frame (fragments:
# their few pixels fit many expressions) raised world-rsot's AUC there from 54.1 (the likelihood alone) to 64.4
# with candidates shown on every frame at once; showing them one frame at a time ("each") then gave 73.2 (70.5
# without the prior, which now matters little: 72.2-73.5 for weights 1-6; the oracle pick 78.6). docs/RESULTS.md
# has the table.
PRIOR_WEIGHT = 6.0
SMALL_AREA = 0.01  # mean share of the frame a track covers where it is seen; below it the prior drops in proportion
VIEW_MODES = ("each", "joint")
VIEW_MODE = "each"
SCORE_BATCH = 32  # views per forward pass (a candidate has up to num_frames of them)


@dataclass
class Candidate:
    """One object track: ``masks`` (N, H, W) bool on every frame (empty where not visible) and ``prior``, how sure
    the object pipeline is that it is an object (0..1)."""

    masks: np.ndarray
    prior: float = 1.0


# (frames (N, H, W, 3) uint8) -> the candidate objects (Candidate, or a bare (N, H, W) mask array: prior 1)
ObjectsFn = Callable[[np.ndarray], list]


def pipeline_objects(frames: np.ndarray) -> list:
    """Every object's masks on every frame and its score, from the classical detect-segment-track pipeline (no
    weights)."""
    from ..objects.pipeline import ObjectPipeline, PipelineConfig

    n, h, w = frames.shape[:3]
    result = ObjectPipeline(PipelineConfig()).run_frames(enumerate(frames), n, h, w)
    return candidates_of(result.objects, range(n), h, w)


def candidates_of(objects: list, frames: Sequence[int], height: int, width: int) -> list:
    """Object-pipeline tracks (ObjectTrack) as Candidates on the given video frames, their score as the prior."""
    out = []
    for obj in objects:
        seen = set(obj.masks)
        masks = np.zeros((len(frames), height, width), bool)
        for j, t in enumerate(frames):
            if t in seen:
                masks[j] = obj.masks[t]
        out.append(Candidate(masks, float(obj.score)))
    return out


def as_candidate(item) -> Candidate:
    return item if isinstance(item, Candidate) else Candidate(np.asarray(item, bool))


@dataclass
class Grounding:
    """The picked object (index into ``tracks``, None when there is no object) and every candidate's score
    (log-likelihood of the expression + log prior; -inf for a track that is never visible); ``likelihoods``: the
    model's log-likelihood alone (-inf likewise), for tuning the prior (benchmarks/grounding_prior.py)."""

    index: Optional[int]
    scores: list
    tracks: list
    likelihoods: list = dataclasses.field(default_factory=list)

    def boxes(self) -> list:
        """Pixel xyxy box (or None where the picked object is not visible) per frame."""
        if self.index is None:
            n = len(self.tracks[0]) if self.tracks else 0
            return [None] * n
        return [list(map(float, mask_to_box(m))) if m.any() else None for m in self.tracks[self.index]]


def area_share(masks: np.ndarray) -> float:
    """The mean share of the frame that a track (N, H, W) covers on the frames where it is seen (0: never)."""
    seen = masks.reshape(len(masks), -1).sum(axis=1)
    return float(seen[seen > 0].mean()) / (masks.shape[1] * masks.shape[2]) if seen.any() else 0.0


def prior_terms(score: float, share: float, weight: float = PRIOR_WEIGHT, small_area: float = SMALL_AREA) -> float:
    """``weight`` x log of the pipeline's score, plus log(share / small_area) for a track covering less than
    ``small_area`` of the frame (0: no area term)."""
    area = float(np.log(max(min(1.0, share / small_area), MIN_PRIOR))) if small_area > 0 else 0.0
    return weight * float(np.log(max(score, MIN_PRIOR))) + area


def log_prior(candidate: Candidate) -> float:
    """How likely a track is to be what someone names, before the words: PRIOR_WEIGHT x log of the pipeline's
    score, plus log(share of the frame it covers / SMALL_AREA) for a track smaller than SMALL_AREA."""
    return prior_terms(candidate.prior, area_share(candidate.masks))


def candidate_example(frames: np.ndarray, track: np.ndarray, sampled: Sequence[int]) -> Optional[Example]:
    """The reg task with ``track`` as its region on the sampled frames (shown wherever it is visible), or None
    when the object is visible on none of them."""
    masks = track[list(sampled)]
    given = masks.reshape(len(sampled), -1).any(axis=1)
    if not given.any():
        return None
    return Example(task="reg", frames=frames, prompt=build_prompt("reg"), regions=[Region(masks, given)])


def single_views(example: Example) -> list[Example]:
    """``example`` once per frame its region is given on, given on that frame alone."""
    region = example.regions[0]
    out = []
    for t in np.flatnonzero(region.given):
        given = np.zeros_like(region.given)
        given[t] = True
        out.append(dataclasses.replace(example, regions=[Region(region.masks, given)]))
    return out


def expression_likelihoods(system, examples: list, views: str = VIEW_MODE) -> list[float]:
    """log p(expression | candidate) per reg Example: shown on all its given frames at once (``"joint"``), or the
    log of the mean likelihood over its single-frame views (``"each"``)."""
    if views not in VIEW_MODES:
        raise ValueError(f"views must be one of {VIEW_MODES}, got {views!r}")
    shown = [[ex] if views == "joint" else single_views(ex) for ex in examples]
    flat = [v for group in shown for v in group]
    # views on the same frames in one batch: they share everything before the region (region_view_logprobs)
    score = getattr(system, "region_view_logprobs", system.answer_logprobs)
    by_clip: dict = {}
    for i, view in enumerate(flat):
        by_clip.setdefault(id(view.frames), []).append(i)
    scores = [0.0] * len(flat)
    for rows in by_clip.values():
        for j in range(0, len(rows), SCORE_BATCH):
            part = rows[j:j + SCORE_BATCH]
            for i, value in zip(part, score([flat[i] for i in part])):
                scores[i] = value
    out, i = [], 0
    for group in shown:
        part = np.asarray(scores[i:i + len(group)], float)
        out.append(float(np.logaddexp.reduce(part) - np.log(len(part))))
        i += len(group)
    return out


def ground(system, frames: np.ndarray, expression: str, candidates: list, views: str = VIEW_MODE) -> Grounding:
    """Pick the object ``expression`` names among ``candidates`` (Candidate or (N, H, W) bool masks, on ``frames``
    (N, H, W, 3)).

    The model sees ``system.num_frames`` frames sampled over the sequence; an object visible on none of them is
    shown on frames sampled to include its own first visible ones. ``views``: see expression_likelihoods."""
    candidates = [as_candidate(c) for c in candidates]
    tracks = [c.masks for c in candidates]
    if not tracks:
        return Grounding(None, [], [])
    sampled = sample_indices(len(frames), num=system.num_frames)
    clip = frames[sampled]
    examples, which = [], []
    for k, track in enumerate(tracks):
        ex = candidate_example(clip, track, sampled)
        if ex is None:  # not on the sampled frames: show it on its own visible frames, nearest first
            visible = np.flatnonzero(track.reshape(len(track), -1).any(axis=1))
            if not len(visible):
                continue
            own = sample_indices(len(frames), num=system.num_frames, keep=list(visible[:system.num_frames]))
            ex = candidate_example(frames[own], track, own)
        examples.append(dataclasses.replace(ex, answer=expression))
        which.append(k)
    likelihoods, scores = [-np.inf] * len(tracks), [-np.inf] * len(tracks)
    for k, loglik in zip(which, expression_likelihoods(system, examples, views)):
        likelihoods[k], scores[k] = float(loglik), float(loglik) + log_prior(candidates[k])
    if not which:
        return Grounding(None, scores, tracks, likelihoods)
    return Grounding(int(np.argmax(scores)), scores, tracks, likelihoods)


class TracksCache:
    """The object tracks of the last few frame sequences (a benchmark asks about several objects of one video:
    the pipeline runs once per video). Keyed by the frames' bytes."""

    def __init__(self, objects_fn: Optional[ObjectsFn] = None, size: int = 4):
        self.objects_fn, self.size, self._items = objects_fn or pipeline_objects, size, OrderedDict()

    def __call__(self, frames: np.ndarray) -> list:
        key = (frames.shape, hashlib.sha1(np.ascontiguousarray(frames).tobytes()).hexdigest())
        if key not in self._items:
            self._items[key] = [as_candidate(c) for c in self.objects_fn(frames)]
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return self._items[key]


def track_by_grounding(system, frames: np.ndarray, expression: str, objects_fn: Optional[ObjectsFn] = None) -> list:
    """Pixel xyxy box (or None) per frame of ``frames``: the object pipeline's track of the object the model
    grounds ``expression`` to."""
    return ground(system, frames, expression, (objects_fn or pipeline_objects)(frames)).boxes()


def ground_objects(system, video, expression: str, result):
    """The model picks, among the objects of an object-pipeline ``result`` on ``video``, the one ``expression``
    names, on ``system.num_frames`` frames sampled over the video. Returns (the picked object's index into
    ``result.objects`` or None, every object's score)."""
    from ..video import VideoReader

    if not result.objects:
        return None, []
    sampled = sample_indices(result.num_frames, num=system.num_frames)
    with VideoReader(video) as reader:
        frames = reader.get_frames(sampled)
    candidates = candidates_of(result.objects, sampled, result.height, result.width)
    picked = ground(system, frames, expression, candidates)
    return picked.index, picked.scores


def ground_video(system, video, expression: str, config=None):
    """The object pipeline over a whole video (streamed: bounded memory), then :func:`ground_objects`. Returns
    (ObjectsResult, the picked object's index into its ``objects`` or None, every object's score)."""
    from ..objects.pipeline import ObjectPipeline, PipelineConfig

    result = ObjectPipeline(config or PipelineConfig()).run(video)
    return (result, *ground_objects(system, video, expression, result))


__all__ = ["Candidate", "Grounding", "TracksCache", "area_share", "as_candidate", "candidate_example", "candidates_of",
           "expression_likelihoods", "ground", "ground_objects", "ground_video", "log_prior", "pipeline_objects",
           "prior_terms", "single_views", "track_by_grounding"]
