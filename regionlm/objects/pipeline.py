"""Detect -> segment -> track: a video in, object tracks out (VideoOrion's object pipeline).

The video is streamed in chunks of ``chunk_frames`` frames (never all of it in memory) and each object's masks
are kept as RLE, so a 2,000-frame video runs in bounded memory. Per frame:

1. the tracker carries every tracked object to the frame (``step``); objects it loses come back as empty masks;
2. on every ``detect_every``-th frame the detector runs; its tags (:func:`regionlm.objects.keyframes.frame_tags`)
   go to the key-frame splitter;
3. on key frames every detection is segmented and associated with the tracked masks by mask IoU (Hungarian,
   :func:`hungarian`): a re-found object keeps its id and, when the tracker drifted from it, is re-seeded with
   the new mask; a detection that is no tracked object is matched to an object it is likely to be (recently
   lost, or whose tracked mask collapsed) by predicted position, size and colour and keeps that id, or becomes a
   new object with a new id;
4. on other detection frames (our addition to VideoOrion, ``discover``; off gives the strict behaviour):
   detections that no tracked mask explains are segmented and associated the same way, so that objects entering
   after the last key frame, or coming back from behind another, are not missed until the next key frame; and a
   tracked mask that holds two or more separate detections which tile it (two objects of one colour that
   touched when first seen) is split: it keeps the best matching one, the others become objects of their own;
5. a new object found after frame 0 is tracked backwards over the last ``backfill`` frames (kept in memory), as
   it was usually there before, too small or too hidden to be detected.

Objects lost for more than ``max_lost`` frames are dropped from the tracker (their masks so far are kept). At the
end tracks seen on fewer than ``min_track_frames`` frames are dropped (detector flicker), tracks that duplicate a
longer one (mask IoU >= ``duplicate_iou`` on most shared frames) are merged into it, and when more than
``max_objects`` remain the highest scoring are kept (score: mean detection score of the track x the fraction of
frames where it is visible; ties: the earlier id). While running, no new object starts while ``max_objects`` are
tracked. Ids are then renumbered 1..K in order of first appearance. A video without objects gives an empty list.

Association uses our own Hungarian algorithm: scipy is only a dev dependency (see pyproject.toml).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from regionlm.errors import RegionLMError, VideoError
from regionlm.objects.base import ObjectsResult, ObjectTrack, create
from regionlm.objects.chroma import SMALL_SIDE, small_frame_view
from regionlm.objects.classical.detect import nms
from regionlm.objects.io import RLEMasks
from regionlm.objects.keyframes import frame_tags


# ------------------------------------------------------------------ assignment


def hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular cost matrix (like scipy's ``linear_sum_assignment``): returns
    (rows, cols), one pair per row of the smaller side, rows increasing. O(n^2 m) shortest augmenting paths
    with potentials (Jonker-Volgenant style); costs must be finite."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost has non-finite entries")
    transposed = cost.shape[0] > cost.shape[1]
    c = cost.T if transposed else cost
    n, m = c.shape  # n <= m
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, np.int64)  # p[j]: row (1-based) assigned to column j; 0 = free
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    cols = np.flatnonzero(p[1:])
    rows = p[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def match(cost: np.ndarray, max_cost: float) -> list[tuple[int, int]]:
    """Hungarian assignment, keeping only the pairs with cost <= ``max_cost``. Costs above the gate are raised
    first so that a gated-out pair never pushes a good pair into a worse one."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0:
        return []
    big = max_cost + 1.0 + float(np.abs(cost[np.isfinite(cost)]).max(initial=0.0))
    gated = np.where(np.isfinite(cost) & (cost <= max_cost), cost, big)
    rows, cols = hungarian(gated)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if gated[r, c] <= max_cost]


def mask_iou_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of every mask of ``a`` with every mask of ``b`` (bool (H, W) each). Only pairs whose boxes overlap
    are compared, on the overlap of their boxes: full-frame products would cost (H x W) per pair."""
    out = np.zeros((len(a), len(b)))
    if not len(a) or not len(b):
        return out
    a = [np.asarray(m, bool) for m in a]
    b = [np.asarray(m, bool) for m in b]
    ba, bb = [_box(m) for m in a], [_box(m) for m in b]
    area_a = [int(m.sum()) for m in a]
    area_b = [int(m.sum()) for m in b]
    for i, (mi, bi) in enumerate(zip(a, ba)):
        if bi is None:
            continue
        for j, (mj, bj) in enumerate(zip(b, bb)):
            if bj is None:
                continue
            x1, y1, x2, y2 = max(bi[0], bj[0]), max(bi[1], bj[1]), min(bi[2], bj[2]), min(bi[3], bj[3])
            if x2 <= x1 or y2 <= y1:
                continue
            inter = int(np.count_nonzero(mi[y1:y2, x1:x2] & mj[y1:y2, x1:x2]))
            out[i, j] = inter / (area_a[i] + area_b[j] - inter)
    return out


def _box(mask: np.ndarray):
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


# ------------------------------------------------------------------ config and state


@dataclass
class PipelineConfig:
    """Which parts (registry names + their options) and how they are combined; every default in one place."""

    detector: str = "classical"
    segmenter: str = "classical"
    tracker: str = "classical"
    splitter: str = "videoorion"
    detector_options: dict = field(default_factory=dict)
    segmenter_options: dict = field(default_factory=dict)
    tracker_options: dict = field(default_factory=dict)
    splitter_options: dict = field(default_factory=dict)
    prompts: Optional[list] = None  # text prompts for open-vocabulary detectors
    detect_every: int = 1  # detector (and tags) on every n-th frame
    chunk_frames: int = 16  # frames decoded at a time
    min_score: float = 0.3  # detections below this are ignored
    new_min_score: float = 0.5  # a detection must score this much to start a new object ...
    max_new_per_frame: int = 8  # ... and at most this many new objects start on a key frame (best first) ...
    max_new_between_keys: int = 3  # ... and this many in all on the frames up to the next key frame: what
    # enters the view or comes out from behind something, not every new proposal of a cluttered real scene
    match_iou: float = 0.3  # mask IoU for a detection to be a tracked object
    reseed_below: float = 0.75  # key frames: a matched object whose tracked mask has IoU below this is re-seeded
    explained: float = 0.5  # a detection this much covered by tracked masks is nothing new
    discover: bool = True  # look for new objects on every detection frame, not only on key frames
    max_lost: int = 60  # frames a lost object can be re-found and keep its id
    backfill: int = 8  # a new object is tracked back over this many earlier frames (kept in memory; 0: off)
    reid_distance: float = 2.0  # re-finding: centre distance to the predicted position, x the object's size
    reid_growth: float = 0.3  # ... plus this x the frames it has been gone (velocity is unknown behind things)
    reid_colour: float = 25.0  # re-finding: Lab distance of mean colours
    drift_colour: float = 45.0  # a tracked mask this far (Lab) from its object's colour ...
    drift_growth: float = 4.0  # ... or this many times its usual area, with no detection on it, is dropped
    min_area: int = 4  # smaller detection masks are ignored (pixels)
    min_track_frames: int = 3  # shorter tracks are dropped (unless the video is shorter)
    duplicate_iou: float = 0.7
    max_objects: int = 64
    smooth_chroma_side: int = SMALL_SIDE  # frames with a long side up to this get their chroma smoothed along the luma
    # first (objects.chroma: a codec's 4:2:0 colour blocks split small objects into fragments); 0: never
    progress: bool = False

    def validate(self) -> None:
        for name in ("detect_every", "chunk_frames", "max_objects"):
            if int(getattr(self, name)) < 1:
                raise RegionLMError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.min_track_frames < 1:
            raise RegionLMError(f"min_track_frames must be at least 1, got {self.min_track_frames}")


class _Track:
    """What the pipeline knows about one object: its masks so far (RLE) and what re-finding it needs."""

    def __init__(self, obj_id: int, label: str, first: int):
        self.id, self.label, self.first = obj_id, label, first
        self.scores: list[float] = []
        self.masks = RLEMasks()
        self.last_seen = -1  # last frame with a reliable (not collapsed) mask
        self.centre = None  # (x, y) of that mask
        self.size = 1.0  # sqrt(area) of the last visible mask
        self.velocity = np.zeros(2)
        self.colour = None  # mean Lab colour
        self.ref_area = 0.0  # recent area of its reliable masks
        self.seed_colour, self.seed_area = None, 0.0  # from its last detection

    def observe(self, t: int, mask: np.ndarray, lab: np.ndarray) -> None:
        self.masks[t] = mask
        ys, xs = np.nonzero(mask)
        area = len(xs)
        if self.ref_area and area < 0.25 * self.ref_area:
            return  # a collapsed mask (going behind something, or a tracker failure): not evidence of where it is
        self.ref_area = area if not self.ref_area else 0.7 * self.ref_area + 0.3 * area
        centre, size = np.array([xs.mean(), ys.mean()]), float(np.sqrt(area))
        # Velocity only from masks of a steady size: while an object slides behind another (or out of the
        # frame) the centre of its visible part moves in ways the object does not.
        if self.centre is not None and t > self.last_seen and 0.8 <= size / max(self.size, 1e-6) <= 1.25:
            v = (centre - self.centre) / (t - self.last_seen)
            self.velocity = 0.5 * self.velocity + 0.5 * v
        self.centre, self.size = centre, size
        colour = lab[ys, xs].mean(axis=0)
        self.colour = colour if self.colour is None else 0.7 * self.colour + 0.3 * colour
        self.last_seen = t

    def seeded(self, mask: np.ndarray, lab: np.ndarray) -> None:
        """A mask from a detection: the reference of what the object looks like (the tracker's masks may drift)."""
        self.seed_colour = lab[mask].mean(axis=0)
        self.seed_area = float(mask.sum())

    def predicted(self, t: int) -> np.ndarray:
        return self.centre + self.velocity * (t - self.last_seen)


# ------------------------------------------------------------------ pipeline


class ObjectPipeline:
    """``ObjectPipeline(config).run(video)`` -> :class:`ObjectsResult`. Parts come from the registry by name
    unless given ready-made (tests, or sharing a loaded model); a run builds fresh stateful parts."""

    def __init__(self, config: Optional[PipelineConfig] = None, *, detector=None, segmenter=None, tracker=None,
                 splitter_factory=None, tracker_factory=None):
        self.config = config or PipelineConfig()
        self.config.validate()
        self._given = {"detector": detector, "segmenter": segmenter, "tracker": tracker}
        self._splitter_factory = splitter_factory
        self._tracker_factory = tracker_factory  # fresh trackers for back-filling (given trackers cannot be copied)

    # -------------------------------------------------------------- parts
    def _part(self, kind: str):
        if self._given.get(kind) is not None:
            return self._given[kind]
        cfg = self.config
        name, options = getattr(cfg, kind), getattr(cfg, f"{kind}_options")
        _import_classical()
        return create(kind, name, **options)

    def _spare_tracker(self):
        """A second tracker for back-filling, built once per run (``start`` makes it forget the last object)."""
        if self._spare is None:
            if self._tracker_factory is not None:
                self._spare = self._tracker_factory()
            elif self._given.get("tracker") is None:
                self._spare = create("tracker", self.config.tracker, **self.config.tracker_options)
        return self._spare

    def _splitter(self, num_frames: int):
        if self._splitter_factory is not None:
            return self._splitter_factory(num_frames)
        _import_classical()
        return create("splitter", self.config.splitter, num_frames=num_frames, **self.config.splitter_options)

    # -------------------------------------------------------------- run
    def run(self, video) -> ObjectsResult:
        from regionlm.video import VideoReader

        with VideoReader(video) as reader:
            n, H, W = reader.num_frames, reader.height, reader.width

            def chunks():
                step = self.config.chunk_frames
                for s in range(0, n, step):
                    idx = list(range(s, min(s + step, n)))
                    yield from zip(idx, reader.get_frames(idx))

            return self.run_frames(chunks(), n, H, W, str(video))

    def run_frames(self, frames, num_frames: int, height: int, width: int, video: str = "") -> ObjectsResult:
        """The pipeline over an iterable of (index, frame) in order (frames (H, W, 3) uint8 RGB)."""
        import cv2

        cfg = self.config
        if num_frames < 1:
            raise VideoError(f"video {video} is empty (0 frames)")
        self.detector = self._part("detector")
        if hasattr(self.detector, "reset"):
            self.detector.reset()
        self.segmenter = self._part("segmenter")
        self.tracker = self._part("tracker")
        self.splitter = self._splitter(num_frames)
        self.tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._started = False
        self._recent: deque = deque(maxlen=cfg.backfill)  # the last frames, to carry new objects back in time
        self._new_ids: list[int] = []
        self._spare = None
        self._new_since_key = 0
        self.keyframes: list[int] = []
        timing = {"decode": 0.0, "detect": 0.0, "segment": 0.0, "track": 0.0, "associate": 0.0, "postprocess": 0.0}
        start = time.perf_counter()
        it = iter(frames)
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=num_frames, desc="objects", unit="frame", file=sys.stderr)
        count = 0
        while True:
            t0 = time.perf_counter()
            try:
                t, frame = next(it)
            except StopIteration:
                break
            frame = np.ascontiguousarray(frame)
            if frame.shape != (height, width, 3):
                raise VideoError(f"video {video}: frame {t} is {frame.shape}, expected ({height}, {width}, 3)")
            frame = small_frame_view(frame, cfg.smooth_chroma_side)
            timing["decode"] += time.perf_counter() - t0  # smoothing counts as getting the frame
            lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
            self._frame_step(t, frame, lab, timing)
            count += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        if count == 0:
            raise VideoError(f"video {video} is empty (0 frames)")
        t0 = time.perf_counter()
        objects = self._finish(count)
        timing["postprocess"] += time.perf_counter() - t0
        total = time.perf_counter() - start
        timing = {k: round(v, 4) for k, v in timing.items()}
        timing.update(total=round(total, 4), frames=count, fps=round(count / total, 3) if total > 0 else None,
                      keyframes=len(self.keyframes))
        return ObjectsResult(video=video, height=height, width=width, num_frames=num_frames, objects=objects,
                             timing=timing)

    # -------------------------------------------------------------- one frame
    def _frame_step(self, t: int, frame: np.ndarray, lab: np.ndarray, timing: dict) -> None:
        cfg = self.config
        t0 = time.perf_counter()
        current = self.tracker.step(frame) if self._started else {}
        current = {i: np.asarray(m, bool) for i, m in current.items() if i in self.tracks}
        gone = [i for i in current if not current[i].any() and t - self.tracks[i].last_seen > cfg.max_lost]
        if gone:  # lost for good: stop paying for them
            self.tracker.remove(gone)
            for i in gone:
                del current[i]
        timing["track"] += time.perf_counter() - t0

        dets = None
        if t % cfg.detect_every == 0:
            t0 = time.perf_counter()
            dets = self.detector.detect(frame, cfg.prompts)
            timing["detect"] += time.perf_counter() - t0
        tags = frame_tags(frame, dets) if (dets is not None and self.splitter.needs_tags) else None
        key = bool(self.splitter.is_keyframe(t, tags))
        if key:
            self.keyframes.append(t)
            self._new_since_key = 0

        seeds: dict[int, np.ndarray] = {}
        if dets is not None:
            self._drop_drifted(current, dets, lab)
        if dets is not None and len(dets):
            keep = np.flatnonzero(dets.scores >= cfg.min_score)
            active = {i: m for i, m in current.items() if m.any()}
            owners = {int(j): self._owner(dets.boxes[j], active) for j in keep}
            merged = self._merged_tracks(dets, owners)
            if not key:
                # Only what could start an object, bring back a lost one (near where it should be), or split a
                # merged track is segmented: on cluttered real frames segmenting every proposal costs seconds.
                budget_left = self._new_since_key < cfg.max_new_between_keys
                keep = np.array([j for j in keep if owners[j] in merged or (
                    cfg.discover and owners[j] is None and dets.scores[j] >= cfg.new_min_score
                    and (budget_left or self._near_lost(t, dets.boxes[j], active)))], np.int64)
            if len(keep):
                t0 = time.perf_counter()
                masks = list(self.segmenter.segment(frame, boxes=dets.boxes[keep]))
                timing["segment"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                refresh = self._confirm_split(merged, [owners[j] for j in keep], masks, active)
                seeds = self._associate(t, lab, masks, dets.scores[keep], [dets.labels[j] for j in keep], active,
                                        key, refresh)
                timing["associate"] += time.perf_counter() - t0

        if seeds:
            t0 = time.perf_counter()
            if self._started:
                self.tracker.add(frame, seeds)
            else:
                self.tracker.start(frame, seeds)
                self._started = True
            timing["track"] += time.perf_counter() - t0
            current.update(seeds)
            for i, m in seeds.items():
                self.tracks[i].seeded(m, lab)
        for i, m in current.items():
            if m.any():
                self.tracks[i].observe(t, m, lab)
        if self._new_ids and self._recent:
            t0 = time.perf_counter()
            for i in self._new_ids:
                self._backfill(i, frame, current[i])
            timing["track"] += time.perf_counter() - t0
        self._new_ids = []
        if self.config.backfill:
            self._recent.append((t, frame.copy()))  # a copy: the frame may be a view into a decoded chunk

    def _backfill(self, obj_id: int, frame: np.ndarray, mask: np.ndarray) -> None:
        """A new object found after frame 0 was often there before, too small or too hidden to be detected
        (entering the frame, coming out from behind another): track it backwards over the last ``backfill``
        frames, until it is lost or runs into another object's mask."""
        tracker = self._spare_tracker()
        if tracker is None:
            return
        track = self.tracks[obj_id]
        tracker.start(frame, {obj_id: mask})
        for tb, fb in reversed(self._recent):
            m = np.asarray(tracker.step(fb).get(obj_id, ()), bool)
            if m.shape != mask.shape or not m.any() or tb in track.masks:
                break
            area = m.sum()
            if any(tb in o.masks and _boxes_overlap(o.masks.box(tb), _box(m))
                   and (o.masks[tb] & m).sum() > 0.5 * area for o in self.tracks.values() if o is not track):
                break
            track.masks[tb] = m
            track.first = min(track.first, tb)

    def _drop_drifted(self, current: dict, dets, lab: np.ndarray) -> None:
        """A tracked mask that no longer looks like its object (mean colour far from the object's, or grown far
        beyond its size: the tracker leaked into the background) and that no detection supports is dropped: the
        object counts as lost, and detection + re-identification bring it back with its id."""
        cfg = self.config
        from regionlm.objects.classical.detect import box_iou

        boxes = dets.boxes[dets.scores >= cfg.min_score]
        drop = []
        for i, m in current.items():
            tr = self.tracks[i]
            if not m.any() or tr.seed_colour is None:
                continue
            area = m.sum()
            off_colour = np.linalg.norm(lab[m].mean(axis=0) - tr.seed_colour) > cfg.drift_colour
            if not (off_colour or area > cfg.drift_growth * tr.seed_area):
                continue
            if len(boxes) and box_iou(np.array([_box(m)], float), boxes).max() >= 0.3:
                continue
            drop.append(i)
        if drop:
            self.tracker.remove(drop)
            for i in drop:
                current[i] = np.zeros_like(current[i])

    def _near_lost(self, t: int, box: np.ndarray, active: dict) -> bool:
        """Whether a detection box is where a recently lost object could be (the re-identification gate)."""
        cfg = self.config
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        size = np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0))
        for i, tr in self.tracks.items():
            if i in active or tr.last_seen < 0 or t - tr.last_seen > cfg.max_lost:
                continue
            gate = cfg.reid_distance + cfg.reid_growth * max(t - tr.last_seen - 1, 0)
            if np.linalg.norm(centre - tr.predicted(t)) <= gate * max(tr.size, size):
                return True
        return False

    def _owner(self, box: np.ndarray, active: dict) -> Optional[int]:
        """The tracked object a detection box is (mostly) on: the one covering most of the middle of the box,
        if it covers at least ``explained`` of it; None for a detection that no tracked object explains."""
        if not active:
            return None
        x1, y1, x2, y2 = (float(v) for v in box)
        cx1, cy1 = int(x1 + 0.3 * (x2 - x1)), int(y1 + 0.3 * (y2 - y1))
        cx2, cy2 = max(int(np.ceil(x2 - 0.3 * (x2 - x1))), cx1 + 1), max(int(np.ceil(y2 - 0.3 * (y2 - y1))), cy1 + 1)
        best, best_cover = None, 0.0
        for i, m in active.items():
            part = m[cy1:cy2, cx1:cx2]
            cover = float(part.mean()) if part.size else 0.0
            if cover > best_cover:
                best, best_cover = i, cover
        return best if best_cover >= self.config.explained else None

    def _merged_tracks(self, dets, owners: dict) -> set:
        """Tracked objects that hold two or more separate detections: one track on several objects (two of
        one colour that touched when first seen, say). Their detections are segmented to split them up."""
        by_owner: dict[int, list[int]] = {}
        for j, i in owners.items():
            if i is not None:
                by_owner.setdefault(i, []).append(j)
        merged = set()
        for i, js in by_owner.items():
            if len(js) >= 2 and len(nms(dets.boxes[js], dets.scores[js], 0.2)) >= 2:
                merged.add(i)
        return merged

    def _confirm_split(self, merged: set, owners: list, masks: list, active: dict) -> set:
        """The merged tracks whose detections really tile them (together >= 80% of the tracked mask, each >=
        20%): a person tracked whole with a face and a shirt detected inside is not two objects."""
        confirmed = set()
        for i in merged:
            parts = [m for o, m in zip(owners, masks) if o == i]
            track = active[i]
            area = track.sum()
            inside = [(m & track).sum() for m in parts]
            union = np.zeros_like(track)
            for m in parts:
                union |= m
            if (union & track).sum() >= 0.8 * area and sum(a >= 0.2 * area for a in inside) >= 2:
                confirmed.add(i)
        return confirmed

    def _associate(self, t: int, lab: np.ndarray, masks: list, scores: np.ndarray, labels: list,
                   active: dict, key: bool, refresh: set = frozenset()) -> dict[int, np.ndarray]:
        """Seeds for the tracker (id -> mask): re-seeded objects, re-found objects and new objects. On key frames
        (and for ``refresh`` ids: merged tracks being split) a matched object is re-seeded when its tracked mask
        drifted from the detection's."""
        cfg = self.config
        ok = [k for k, m in enumerate(masks) if m.sum() >= cfg.min_area]
        masks = [masks[k] for k in ok]
        scores, labels = np.asarray(scores)[ok], [labels[k] for k in ok]
        seeds: dict[int, np.ndarray] = {}
        ids = list(active)
        iou = mask_iou_matrix(masks, [active[i] for i in ids])
        matched_det = set()
        pairs = match(1.0 - iou, 1.0 - cfg.match_iou)
        for d, a in pairs:
            matched_det.add(d)
            obj = self.tracks[ids[a]]
            obj.scores.append(float(scores[d]))
            if ids[a] in refresh or (key and iou[d, a] < cfg.reseed_below
                                     and not self._covers_others(masks[d], ids[a], active)):
                seeds[ids[a]] = masks[d]
        # What is left: parts of tracked objects, lost objects coming back, or new objects (best first). What
        # the objects cover is judged with the re-seeded masks: a split track no longer covers its other part.
        union = np.zeros(lab.shape[:2], bool)
        for i, m in active.items():
            union |= seeds.get(i, m)
        new = []
        for d in sorted(set(range(len(masks))) - matched_det, key=lambda d: -scores[d]):
            m = masks[d]
            taken = [union] + [masks[e] for e in new]
            if any((m & other).sum() >= cfg.explained * m.sum() for other in taken):
                continue
            new.append(d)
        # Objects that may be behind a leftover detection: lost ones (recently), tracked ones whose mask
        # collapsed (the tracker holds a wrong mask, e.g. after the object changed colour) and, on key frames
        # where every detection was compared with every object, tracked ones that matched no detection.
        # Elsewhere a tracked object is a candidate only for a detection that holds most of its mask (the object
        # seen whole after its mask shrank, e.g. while it came out from behind another).
        matched_ids = {ids[a] for _, a in pairs}
        candidates = [i for i, tr in self.tracks.items()
                      if i not in matched_ids and tr.last_seen >= 0 and t - tr.last_seen <= cfg.max_lost]
        allowed = np.ones((len(new), len(candidates)), bool)
        for j, i in enumerate(candidates):
            if i in active and not key and active[i].sum() >= 0.25 * self.tracks[i].ref_area:
                inside = active[i].sum() * 0.5
                allowed[:, j] = [(masks[d] & active[i]).sum() >= inside for d in new]
        refound = self._reidentify(t, lab, [masks[d] for d in new], candidates, allowed)
        started = 0
        for k, d in enumerate(new):
            if k in refound:
                obj = self.tracks[refound[k]]
            else:
                budget = cfg.max_new_per_frame if key else cfg.max_new_between_keys - self._new_since_key
                if scores[d] < cfg.new_min_score or started >= budget or len(active) + started >= cfg.max_objects:
                    continue
                started += 1
                if not key:
                    self._new_since_key += 1
                obj = _Track(self._next_id, labels[d], t)
                self._new_ids.append(obj.id)
                self.tracks[obj.id] = obj
                self._next_id += 1
            obj.scores.append(float(scores[d]))
            seeds[obj.id] = masks[d]
        return seeds

    def _covers_others(self, mask: np.ndarray, own: int, active: dict) -> bool:
        # A detection swallowing another tracked object (two objects of one colour touching) must not re-seed:
        # the tracker keeps them apart better than one merged mask would.
        return any(i != own and (mask & m).sum() >= 0.3 * m.sum() for i, m in active.items())

    def _reidentify(self, t: int, lab: np.ndarray, masks: list, candidates: list,
                    allowed: Optional[np.ndarray] = None) -> dict[int, int]:
        """Leftover detection k -> the id of an object it is likely to be: close to where that object should be
        by now (constant velocity from its last visible mask; distance in object sizes), of a similar size, and
        of a similar colour unless it is right there (objects can change colour)."""
        cfg = self.config
        if not masks or not candidates:
            return {}
        cost = np.full((len(masks), len(candidates)), np.inf)
        for k, m in enumerate(masks):
            ys, xs = np.nonzero(m)
            centre, size = np.array([xs.mean(), ys.mean()]), np.sqrt(len(xs))
            colour = lab[ys, xs].mean(axis=0)
            for j, i in enumerate(candidates):
                if allowed is not None and not allowed[k, j]:
                    continue
                tr = self.tracks[i]
                dist = np.linalg.norm(centre - tr.predicted(t)) / max(tr.size, size, 1.0)
                dcol = float(np.linalg.norm(colour - tr.colour))
                ratio = size / max(tr.size, 1.0)
                gate = cfg.reid_distance + cfg.reid_growth * max(t - tr.last_seen - 1, 0)
                if dist > gate or not 1 / 3 <= ratio <= 3:
                    continue
                if dcol > cfg.reid_colour and dist > 0.5:
                    continue
                cost[k, j] = dist / gate + 0.5 * min(dcol / cfg.reid_colour, 2.0)
        return {k: candidates[j] for k, j in match(cost, 2.0)}

    # -------------------------------------------------------------- end
    def _finish(self, num_frames: int) -> list[ObjectTrack]:
        cfg = self.config
        min_len = min(cfg.min_track_frames, num_frames)
        tracks = [tr for tr in self.tracks.values() if len(tr.masks) >= min_len]
        tracks = self._merge_duplicates(tracks)
        for tr in tracks:
            tr.score = (float(np.mean(tr.scores)) if tr.scores else 0.0) * len(tr.masks) / num_frames
        if len(tracks) > cfg.max_objects:
            tracks = sorted(tracks, key=lambda tr: (-tr.score, tr.id))[:cfg.max_objects]
        tracks.sort(key=lambda tr: (tr.first, tr.id))
        return [ObjectTrack(id=k + 1, label=tr.label, score=round(tr.score, 6), masks=tr.masks)
                for k, tr in enumerate(tracks)]

    def _merge_duplicates(self, tracks: list) -> list:
        """A track whose masks mostly coincide with a longer track's is the same object twice: its frames that
        the longer one lacks are added to it, and it is dropped."""
        cfg = self.config
        tracks = sorted(tracks, key=lambda tr: (-len(tr.masks), tr.id))
        kept: list = []
        for tr in tracks:
            target = None
            for big in kept:
                shared = [f for f in tr.masks if f in big.masks]
                if not shared or len(shared) < 0.5 * len(tr.masks):
                    continue
                same = sum(_boxes_overlap(tr.masks.box(f), big.masks.box(f))
                           and _rle_iou(tr.masks.rle(f), big.masks.rle(f)) >= cfg.duplicate_iou for f in shared)
                if same >= 0.8 * len(shared):
                    target = big
                    break
            if target is None:
                kept.append(tr)
                continue
            for f in tr.masks:
                if f not in target.masks:
                    target.masks.set_rle(f, tr.masks.rle(f), tr.masks.box(f))
            target.scores += tr.scores
            target.first = min(target.first, tr.first)
        return kept


def _boxes_overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _rle_iou(a: dict, b: dict) -> float:
    from pycocotools import mask as mask_utils

    ra = {"size": a["size"], "counts": a["counts"].encode() if isinstance(a["counts"], str) else a["counts"]}
    rb = {"size": b["size"], "counts": b["counts"].encode() if isinstance(b["counts"], str) else b["counts"]}
    return float(mask_utils.iou([ra], [rb], [0])[0, 0])


def _import_classical() -> None:
    # The classical parts register on import; the package __init__ imports them too, this is belt and braces
    # for a checkout where it does not.
    import importlib

    for name in ("detect", "segment", "track"):
        try:
            importlib.import_module(f"regionlm.objects.classical.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"regionlm.objects.classical.{name}":
                raise
    importlib.import_module("regionlm.objects.keyframes")


def run_pipeline(video, config: Optional[PipelineConfig] = None) -> ObjectsResult:
    return ObjectPipeline(config).run(video)


__all__ = ["ObjectPipeline", "PipelineConfig", "hungarian", "match", "mask_iou_matrix", "run_pipeline"]
