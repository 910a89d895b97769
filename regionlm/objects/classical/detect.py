"""Class-agnostic object proposals without weights: colour/contour segments, motion and saliency, fused.

Three cues, each weak alone:

- colour/contour: Felzenszwalb graph segmentation; a segment is an object proposal when its colour stands out
  from the ring of pixels around it (Lab distance) and it is not background-like (huge, or spanning the frame).
  It gives tight boxes and works on still objects, on plain and on textured backgrounds (texture cells differ
  from their surroundings far less than objects do).
- motion: a MOG2 background model over the stream (the detector is stateful: one instance per video, frames in
  order). Finds moving objects that blend into the background colour-wise.
- saliency: OpenCV's spectral-residual static saliency. Finds "things" on cluttered real frames.

Colour segments are the primary proposals; motion and saliency raise their score where they agree and add their
own boxes only where no colour segment explains them. Then box NMS (our own: torchvision is not allowed here).
Work happens on a copy scaled down to ``work_side`` pixels on the long side; boxes come back in input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from regionlm.objects.base import Detections, Detector, register
from regionlm.objects.classical.segment import split_touching
from regionlm.regions import mask_to_box


# ------------------------------------------------------------------ box geometry


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes (x2/y2 exclusive, so area = (x2-x1)*(y2-y1))."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first. A box is dropped when its
    IoU with an already kept box is above ``iou_threshold``. Ties keep the earlier box (stable sort)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


# ------------------------------------------------------------------ proposals


@dataclass
class Proposal:
    box: np.ndarray  # xyxy in work pixels
    score: float
    source: str  # "colour", "motion" or "saliency"
    area: int = 0


@dataclass
class ClassicalDetectorConfig:
    work_side: int = 320  # long side of the working copy (smaller frames are used as they are)
    # Felzenszwalb: k grows with the image so that segments are a similar fraction of the frame at any size.
    # sigma 0: no pre-smoothing. Smoothing turns every sharp object edge into a ring of in-between colours that
    # becomes a segment of its own; real frames are smoothed enough by the downscaling to work_side.
    seg_sigma: float = 0.0
    seg_k_per_kpx: float = 4.0  # k = seg_k_per_kpx * (pixels / 1000), clipped to [seg_k_min, seg_k_max]
    seg_k_min: float = 300.0
    seg_k_max: float = 600.0
    min_area_frac: float = 0.003  # smallest proposal, as a fraction of the frame (at least min_area_px)
    min_area_px: int = 8
    max_area_frac: float = 0.4  # bigger segments are background (walls, floor, sky)
    ring_px: int = 3  # width of the ring a segment's colour is compared with (work pixels)
    contrast_lo: float = 20.0  # Lab distance (to the ring and to the background colours) with score 0 ...
    contrast_hi: float = 60.0  # ... and with score 1
    split_touching: bool = True  # split a segment of several touching objects of one colour (distance transform)
    bg_share: float = 0.15  # a border colour covering this much of the frame's border is a background colour
    min_score: float = 0.15
    use_motion: bool = True
    motion_warmup: int = 2  # the background model needs a few frames before its foreground means anything
    motion_max_fg: float = 0.35  # more foreground than this: camera motion or a light change, not objects
    use_saliency: bool = True
    nms_iou: float = 0.6
    max_detections: int = 50
    label: str = "object"


@register("detector", "classical")
class ClassicalDetector(Detector):
    """Stateful (motion model) class-agnostic detector; use one instance per video, frames in order.
    ``reset()`` forgets the motion model. Text prompts are ignored (there are no classes)."""

    def __init__(self, config: Optional[ClassicalDetectorConfig] = None, **overrides):
        cfg = config or ClassicalDetectorConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                from regionlm.errors import RegionLMError

                raise RegionLMError(f"classical detector: unknown option {k!r}")
            setattr(cfg, k, v)
        self.config = cfg
        self.reset()

    def reset(self) -> None:
        self._bg = None
        self._frames_seen = 0
        self._shape = None
        self._saliency = None

    # -------------------------------------------------------------- public
    def detect(self, frame: np.ndarray, prompts: Optional[Sequence[str]] = None) -> Detections:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"a frame must be (H, W, 3), got {frame.shape}")
        H, W = frame.shape[:2]
        if self._shape != (H, W):  # a new video size: the motion model no longer applies
            self.reset()
            self._shape = (H, W)
        scale = min(1.0, self.config.work_side / max(H, W))
        small = frame if scale == 1.0 else cv2.resize(frame, (max(1, round(W * scale)), max(1, round(H * scale))),
                                                      interpolation=cv2.INTER_AREA)
        props = self._fuse(small)
        self._frames_seen += 1
        if not props:
            return Detections(np.zeros((0, 4)), np.zeros(0), [])
        boxes = np.stack([p.box for p in props]).astype(np.float64) / scale
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, W)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, H)
        scores = np.array([p.score for p in props])
        return Detections(boxes, scores, [self.config.label] * len(props))

    # -------------------------------------------------------------- cues
    def colour_proposals(self, small: np.ndarray) -> list[Proposal]:
        cfg = self.config
        h, w = small.shape[:2]
        npx = h * w
        k = float(np.clip(cfg.seg_k_per_kpx * npx / 1000.0, cfg.seg_k_min, cfg.seg_k_max))
        min_area = max(cfg.min_area_px, int(cfg.min_area_frac * npx))
        seg = cv2.ximgproc.segmentation.createGraphSegmentation(sigma=cfg.seg_sigma, k=k, min_size=min_area)
        labels = seg.processImage(np.ascontiguousarray(small[..., ::-1]))  # OpenCV wants BGR
        n = int(labels.max()) + 1
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
        flat = labels.reshape(-1)
        counts = np.bincount(flat, minlength=n).astype(np.float64)
        means = np.stack([np.bincount(flat, weights=lab[..., c].reshape(-1), minlength=n) for c in range(3)], 1)
        means /= np.maximum(counts, 1)[:, None]
        boxes = _label_boxes(labels, n)
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        # Segments spanning the frame in either direction are background bands, not objects.
        ok = (counts >= min_area) & (counts <= cfg.max_area_frac * npx) & (bw < 0.95 * w) & (bh < 0.95 * h)
        if not ok.any():
            return []
        # An object differs from what surrounds it (contrast) AND from the background's colours: texture cells
        # (checker, stripes) have contrast too, but their colours are the background's.
        contrast = _ring_contrast(labels, lab, means, n, cfg.ring_px)
        distinct = np.minimum(contrast, _background_distance(lab, means, cfg.bg_share))
        score = np.clip((distinct - cfg.contrast_lo) / (cfg.contrast_hi - cfg.contrast_lo), 0.0, 1.0)
        out = []
        for i in np.flatnonzero(ok & (score > 0)):
            parts = [None]
            if cfg.split_touching:
                x1, y1, x2, y2 = boxes[i]
                parts = split_touching(labels[y1:y2, x1:x2] == i)
            if len(parts) == 1:
                out.append(Proposal(boxes[i].astype(float), float(score[i]), "colour", int(counts[i])))
                continue
            for part in parts:  # touching objects of one colour: one proposal each
                px1, py1, px2, py2 = mask_to_box(part)
                out.append(Proposal(np.array([x1 + px1, y1 + py1, x1 + px2, y1 + py2], float), float(score[i]),
                                    "colour", int(part.sum())))
        return out

    def motion_proposals(self, small: np.ndarray) -> list[Proposal]:
        cfg = self.config
        if self._bg is None:
            self._bg = cv2.createBackgroundSubtractorMOG2(history=100, varThreshold=25, detectShadows=False)
        fg = self._bg.apply(small[..., ::-1])
        if self._frames_seen < cfg.motion_warmup:
            return []
        fg = cv2.morphologyEx((fg > 0).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        if fg.mean() > cfg.motion_max_fg:
            return []
        return self._components(fg, np.ones_like(fg, np.float32), "motion")

    def saliency_proposals(self, small: np.ndarray) -> list[Proposal]:
        if self._saliency is None:
            self._saliency = cv2.saliency.StaticSaliencySpectralResidual_create()
        ok, sal = self._saliency.computeSaliency(np.ascontiguousarray(small[..., ::-1]))
        if not ok or sal is None:
            return []
        sal = sal.astype(np.float32)
        if sal.max() <= 0:
            return []
        sal /= sal.max()
        thr = float(sal.mean() + 2.5 * sal.std())
        return self._components((sal > thr).astype(np.uint8), sal, "saliency")

    def _components(self, binary: np.ndarray, strength: np.ndarray, source: str) -> list[Proposal]:
        cfg = self.config
        h, w = binary.shape
        min_area = max(cfg.min_area_px, int(cfg.min_area_frac * h * w))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        out = []
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < min_area or area > cfg.max_area_frac * h * w:
                continue
            score = float(strength[labels == i].mean())
            out.append(Proposal(np.array([x, y, x + bw, y + bh], float), score, source, area))
        return out

    # -------------------------------------------------------------- fusion
    def _fuse(self, small: np.ndarray) -> list[Proposal]:
        cfg = self.config
        colour = self.colour_proposals(small)
        others = []
        if cfg.use_motion:
            others += self.motion_proposals(small)
        if cfg.use_saliency:
            others += self.saliency_proposals(small)
        props = list(colour)
        cb = np.stack([p.box for p in colour]) if colour else np.zeros((0, 4))
        for o in others:
            # Containment too: a motion/saliency blob usually covers several colour segments of one object.
            support = np.flatnonzero((box_iou(o.box[None], cb)[0] > 0.3) | (_fraction_inside(cb, o.box) > 0.8))
            for j in support:  # agreement raises the colour segments' scores
                colour[j].score = min(1.0, colour[j].score + 0.25 * o.score * (1 - colour[j].score) + 0.05)
            if len(support) >= 2:
                # A blob holding several segments is likely the whole object (a person: face, shirt, trousers).
                o.score = max(colour[j].score for j in support)
                props.append(o)
            elif len(support) == 0:
                o.score *= 0.5  # a box of a blurry cue alone is a weak proposal
                props.append(o)
        props = [p for p in props if p.score >= cfg.min_score]
        if not props:
            return []
        keep = nms(np.stack([p.box for p in props]), np.array([p.score for p in props]), cfg.nms_iou)
        return [props[i] for i in keep[:cfg.max_detections]]


def _label_boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """xyxy box (x2/y2 exclusive) of every label 0..n-1 of a label image, in one pass."""
    h, w = labels.shape
    flat = labels.reshape(-1)
    ys, xs = np.divmod(np.arange(flat.size), w)
    boxes = np.zeros((n, 4), np.int64)
    boxes[:, 0] = w
    boxes[:, 1] = h
    np.minimum.at(boxes[:, 0], flat, xs)
    np.minimum.at(boxes[:, 1], flat, ys)
    np.maximum.at(boxes[:, 2], flat, xs + 1)
    np.maximum.at(boxes[:, 3], flat, ys + 1)
    return boxes


def _ring_contrast(labels: np.ndarray, lab: np.ndarray, means: np.ndarray, n: int, r: int) -> np.ndarray:
    """Per segment: Lab distance between its mean colour and the mean colour just outside it, looking ``r``
    pixels away in 8 directions; the median over the directions, so that a neighbour on one side (another
    object touching it) does not decide. NaN for a segment with no outside (it fills the frame)."""
    h, w = labels.shape
    lp = np.pad(labels, r, mode="constant", constant_values=-1)
    cp = np.pad(lab, ((r, r), (r, r), (0, 0)), mode="edge")
    dists = np.full((n, 8), np.nan)
    offsets = [(dx, dy) for dx in (-r, 0, r) for dy in (-r, 0, r) if dx or dy]
    for o, (dx, dy) in enumerate(offsets):
        other = lp[r + dy:r + dy + h, r + dx:r + dx + w]
        sel = (other != labels) & (other >= 0)
        own = labels[sel]
        cnt = np.bincount(own, minlength=n)
        shifted = cp[r + dy:r + dy + h, r + dx:r + dx + w][sel]
        sums = np.stack([np.bincount(own, weights=shifted[:, c], minlength=n) for c in range(3)], 1)
        has = cnt > 0
        dists[has, o] = np.linalg.norm(means[has] - sums[has] / cnt[has][:, None], axis=1)
    # Median of the valid directions per row (np.nanmedian is slow on many short rows): sort puts NaN last.
    srt = np.sort(dists, axis=1)
    valid = (~np.isnan(dists)).sum(axis=1)
    lo = np.clip((valid - 1) // 2, 0, 7)
    hi = np.clip(valid // 2, 0, 7)
    rows = np.arange(n)
    return np.where(valid > 0, 0.5 * (srt[rows, lo] + srt[rows, hi]), np.nan)


def _background_distance(lab: np.ndarray, means: np.ndarray, share: float) -> np.ndarray:
    """Lab distance of each colour in ``means`` to the nearest dominant colour of the frame's border (the
    background, as far as one frame can tell). A border colour counts when it covers at least ``share`` of the
    border, so that an object entering the frame does not make its own colour background."""
    border = np.concatenate([lab[0], lab[-1], lab[1:-1, 0], lab[1:-1, -1]]).astype(np.float32)
    k = min(6, len(border))
    cv2.setRNGSeed(0)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, assign, centres = cv2.kmeans(border, k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    weight = np.bincount(assign.reshape(-1), minlength=k) / len(border)
    centres = centres[weight >= share]
    if not len(centres):
        return np.full(len(means), np.inf)
    return np.min(np.linalg.norm(means[:, None, :] - centres[None], axis=2), axis=1)


def _fraction_inside(boxes: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Fraction of each box's area that lies inside ``outer``."""
    x1 = np.maximum(boxes[:, 0], outer[0])
    y1 = np.maximum(boxes[:, 1], outer[1])
    x2 = np.minimum(boxes[:, 2], outer[2])
    y2 = np.minimum(boxes[:, 3], outer[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / np.maximum(box_area(boxes), 1e-12)


__all__ = ["ClassicalDetector", "ClassicalDetectorConfig", "box_iou", "box_area", "nms"]
