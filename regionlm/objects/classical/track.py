"""Classical (no weights) trackers.

``ClassicalMaskTracker`` (registered as ``("tracker", "classical")``), per object and frame:

1. Motion: DIS optical flow, backward (every pixel of the new frame looks up where it came from) and forward. Where
   the two disagree (background uncovered behind a moving object, textureless areas) a pixel is object only if
   the affine motion fitted (RANSAC) to the object's consistent flow agrees. Flow underestimates the motion of
   flat, textureless objects, so the result is checked by template matching the object's previous pixels around
   it and moved when another offset fits clearly better.
2. Re-segmentation, so that the mask does not drift: the warped mask's log-odds plus the log-odds of a colour model
   of the object against its surroundings, the colours weighted by how reliable they have been on this object
   (measured each frame before the model learns the frame). Where colours are reliable, GrabCut refines the mask
   (warped core = sure object, a band around the edge = uncertain); where they are not (a grey car on a grey road)
   the fused log-odds are thresholded in the band. ``REFINERS`` holds the alternatives, compared in
   benchmarks/objects_tracking.py.
3. Lost and found: a mask that collapses (the object left the frame or went behind something) or whose pixels
   stopped having the object's colours makes the object lost (empty masks). A lost object is looked for near where
   its motion would have taken it: a blob of its colours and about its size, not claimed by another object, brings
   it back with its id.

Everything per object runs on a window around it, so the cost grows with the objects' sizes, not the frame's.

``ClassicalBoxTracker``: a box tracker (``init(frame, box)`` / ``update(frame) -> box | None``) that tracks the
object's mask (GrabCut inside the first box) and reports its box, calibrated to keep the first box's size relative
to the mask's box; OpenCV CSRT runs alongside and takes over while the mask is lost or jumps implausibly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from regionlm.errors import RegionError
from regionlm.objects.base import Tracker, register

Box = tuple  # (x1, y1, x2, y2) ints, x2/y2 exclusive

_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
MOTIONS = ("dense", "affine", "dense+affine")


@dataclass
class ClassicalTrackerConfig:
    """Settings of the flow + re-segmentation mask tracker; every default in one place."""

    dis_preset: str = "medium"
    flow_min_side: int = 192  # small frames are upscaled for the flow (DIS needs patches of texture)
    flow_max_side: int = 640  # large frames are downscaled for the flow (speed); masks stay full resolution
    fb_alpha: float = 0.05  # forward-backward check: |f + b|^2 <= alpha (|f|^2 + |b|^2) + beta (pixels^2)
    fb_beta: float = 2.0
    motion: str = "dense+affine"  # one of MOTIONS: dense flow, one affine motion, or dense with affine fill-in
    affine_points: int = 2000  # flow correspondences sampled to fit an object's affine motion
    match_radius: float = 0.5  # shift check by template matching: search radius x object size (0: off)
    match_side: int = 32  # the coarse search scales the template to about this long side
    match_gain: float = 0.7  # a shift is taken when its matching cost is below this x the flow's
    match_max_cost: float = 0.1  # ... and below this x the object's contrast with its surroundings
    refine: str = "auto"  # a name in REFINERS
    grabcut_iters: int = 2
    # GrabCut reads the crop scaled to at most this long side (0: full resolution); its labels are taken back at
    # full resolution inside the uncertain band only, the sure core and background kept as seeded. Crops of
    # 64 x 64 frames never reach it. On large frames the tracking step is 1.8x faster (the object pipeline on
    # bedroom.mp4's first 40 frames), VOT bag AUC 86.4 either way (docs/RESULTS.md)
    grabcut_side: int = 128
    band: float = 0.12  # half width of the uncertain band around the warped mask edge, x sqrt(mask area)
    min_band: int = 2  # pixels
    margin: float = 0.5  # crop around the object for the refiner, x the object's box size
    colour_bins: int = 16  # per channel (a power of 2), RGB histogram colour model
    colour_lr: float = 0.1  # how fast the object's colour model follows the video
    flow_confidence_clip: float = 0.15  # the warped mask's probabilities are clipped to [c, 1 - c]
    colour_weight: float = 1.0  # weight of the colour log-odds (against the flow's) when colours are reliable
    # Colour reliability (Youden's J of the colour posterior on a crop around the object), measured on each new
    # frame before the model learns it: below the floor colours get no weight, at 1 the full weight.
    colour_floor: float = 0.6
    grabcut_min_weight: float = 0.5  # "auto": GrabCut when the colour weight is at least this x colour_weight
    lost_ratio: float = 0.15  # mask area below this fraction of the reference area: the object is lost
    area_decay: float = 0.9  # the reference area is the recent peak, decaying this much per frame
    min_colour_match: float = 0.3  # mean colour posterior below which a (reliable-colour) mask is not the object
    max_growth: float = 3.0  # a refined mask this many times larger than the warped one is rejected
    # A colour change, not an occlusion: the mask lost the object's colours, yet the flow carried at least this
    # fraction of the reference area, with at least this fraction of consistent pixels.
    recolour_min_area: float = 0.9
    recolour_min_valid: float = 0.8
    redetect: bool = True
    redetect_min_posterior: float = 0.8  # mean colour posterior of a blob to re-find a lost object
    redetect_area_range: tuple = (0.35, 2.5)  # blob area / reference area when lost
    redetect_radius: float = 2.0  # search around the predicted position: this x object size, + motion per frame
    redetect_frames: int = 8  # ... for at most this many frames of motion since it was lost

    def validate(self) -> None:
        if self.dis_preset not in _DIS_PRESETS:
            raise RegionError(f"dis_preset must be one of {', '.join(_DIS_PRESETS)}, got {self.dis_preset!r}")
        if self.motion not in MOTIONS:
            raise RegionError(f"motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}")
        if self.refine not in REFINERS:
            raise RegionError(f"refine must be one of {', '.join(REFINERS)}, got {self.refine!r}")
        if self.colour_bins not in (2, 4, 8, 16, 32, 64):
            raise RegionError(f"colour_bins must be a power of 2 from 2 to 64, got {self.colour_bins!r}")
        if not (isinstance(self.grabcut_side, int) and (self.grabcut_side == 0 or self.grabcut_side >= 16)):
            raise RegionError(f"grabcut_side must be 0 (full resolution) or an integer >= 16, got "
                              f"{self.grabcut_side!r}")


# ------------------------------------------------------------------------------------------------ boxes, masks


def _bbox(mask: np.ndarray) -> Optional[Box]:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _expand(box: Box, margin: float, pad: int, shape) -> Box:
    """``box`` grown by ``margin`` x its size + ``pad`` pixels on every side, clipped to ``shape`` (H, W)."""
    x1, y1, x2, y2 = box
    mx, my = int(margin * (x2 - x1)) + pad, int(margin * (y2 - y1)) + pad
    return max(x1 - mx, 0), max(y1 - my, 0), min(x2 + mx, shape[1]), min(y2 + my, shape[0])


def _crop(a: np.ndarray, box: Box) -> np.ndarray:
    return a[box[1]:box[3], box[0]:box[2]]


def _shift(box: Box, dx: int, dy: int) -> Box:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def _centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()]) if len(xs) else np.zeros(2)


def _largest_parts(mask: np.ndarray, keep_frac: float = 0.2) -> np.ndarray:
    """Drop specks: keep connected components of at least ``keep_frac`` of the largest one."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= keep_frac * areas.max()) + 1
    return np.isin(labels, keep)


_DISKS: dict[int, np.ndarray] = {}


def _disk(r: int) -> np.ndarray:
    r = max(int(r), 1)
    if r not in _DISKS:
        _DISKS[r] = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return _DISKS[r]


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise RegionError(f"a frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    return np.ascontiguousarray(frame)


def _check_mask(obj_id, mask, shape) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.shape != tuple(shape):
        size = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else f"of shape {mask.shape}"
        raise RegionError(f"object {obj_id}: mask is {size} but the frame is {shape[1]}x{shape[0]} (WxH)")
    if not mask.any():
        raise RegionError(f"object {obj_id}: the mask is empty")
    return mask


# ------------------------------------------------------------------------------------------------ colour model


class ColourModel:
    """RGB histograms of an object and of its surroundings; ``posterior(img)`` is P(object | colour). The first
    frame's object histogram is mixed back in, so the model cannot drift away from the object entirely."""

    def __init__(self, bins: int):
        self.bins = bins
        self.shift = 8 - int(math.log2(bins))
        self.fg = self.fg0 = self.bg = None

    def index(self, img: np.ndarray) -> np.ndarray:
        q = img >> self.shift
        return (q[..., 0].astype(np.int32) * self.bins + q[..., 1]) * self.bins + q[..., 2]

    def update(self, img: np.ndarray, fg: np.ndarray, bg: np.ndarray, lr: float) -> None:
        """Learn from ``img`` (a crop) with object pixels ``fg`` and surrounding pixels ``bg``."""
        idx = self.index(img)
        n = self.bins ** 3
        for name, sel in (("fg", fg), ("bg", bg)):
            hist = np.bincount(idx[sel], minlength=n).astype(np.float64)
            if hist.sum() == 0:
                continue
            hist /= hist.sum()
            old = getattr(self, name)
            setattr(self, name, hist if old is None else (1 - lr) * old + lr * hist)
        if self.fg0 is None and self.fg is not None:
            self.fg0 = self.fg.copy()

    def posterior(self, img: np.ndarray) -> np.ndarray:
        if self.fg is None or self.bg is None:
            return np.full(img.shape[:2], 0.5, np.float32)
        idx = self.index(img)
        pf = 0.5 * (self.fg + self.fg0)[idx] + 1e-6
        pb = self.bg[idx] + 1e-6
        return (pf / (pf + pb)).astype(np.float32)


def _separation(model: ColourModel, frame: np.ndarray, mask: np.ndarray, box: Box) -> float:
    """How well the colour posterior alone tells the object from the rest of a crop around it: true positive
    rate + true negative rate - 1 (Youden's J; 1: perfectly, 0: chance)."""
    win = _expand(box, 0.5, 4, mask.shape)
    m = _crop(mask, win)
    if m.all() or not m.any():
        return 0.0
    post = model.posterior(_crop(frame, win)) > 0.5
    return float(post[m].mean() + (~post[~m]).mean() - 1)


# ------------------------------------------------------------------------------------------------ refiners


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p))


@dataclass
class RefineInput:
    """What a refiner sees, on a crop around the object: the frame (BGR, as OpenCV wants it), the warped soft
    mask, the colour posterior P(object | colour), the band half width and how much to trust the colours (0 when
    the object's colours do not stand out from its surroundings, up to ``colour_weight``)."""

    crop: np.ndarray
    warped: np.ndarray
    colour: np.ndarray
    band: int
    colour_weight: float
    cfg: ClassicalTrackerConfig

    def score(self) -> np.ndarray:
        """Flow and colour log-odds added (naive-Bayes fusion); the flow is never fully certain."""
        c = self.cfg.flow_confidence_clip
        return _logit(np.clip(self.warped, c, 1 - c)) + self.colour_weight * _logit(self.colour)


def refine_flow(x: RefineInput) -> np.ndarray:
    """The warped mask as is (the flow-only ablation)."""
    return x.warped > 0.5


def refine_fusion(x: RefineInput) -> np.ndarray:
    """Fused flow + colour log-odds, thresholded, within a band around the warped mask."""
    near = cv2.dilate((x.warped > 0.5).astype(np.uint8), _disk(x.band)) > 0
    return (x.score() > 0) & near


def refine_grabcut(x: RefineInput) -> np.ndarray:
    """GrabCut seeded by the warped mask: its core = sure object (where the colours agree, when they count),
    outside the band = sure background; the band starts on the side the fused evidence favours."""
    inside = (x.warped > 0.5).astype(np.uint8)
    if not inside.any():
        return inside.astype(bool)
    k = _disk(x.band)
    score = x.score()
    core = (cv2.erode(inside, k) > 0) & (score > 0)
    if x.colour_weight > 0:  # the flow drags neighbouring pixels along: sure only where the colours agree
        core &= x.colour > 0.5
    if not core.any():  # thinner than the band (a ring, a thin bar): the surest half is the core
        core = inside.astype(bool) & (score >= np.median(score[inside > 0]))
    near = cv2.dilate(inside, k) > 0
    gc = np.full(inside.shape, cv2.GC_BGD, np.uint8)
    gc[near] = np.where(score[near] > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    gc[core] = cv2.GC_FGD
    if not (gc == cv2.GC_BGD).any():
        return (score > 0) & near
    h, w = gc.shape
    scale = min(1.0, x.cfg.grabcut_side / max(h, w)) if x.cfg.grabcut_side else 1.0
    crop, work = x.crop, gc
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        crop = cv2.resize(x.crop, size, interpolation=cv2.INTER_AREA)
        work = cv2.resize(gc, size, interpolation=cv2.INTER_NEAREST)
        if not (work == cv2.GC_BGD).any() or not ((work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD)).any():
            crop, work = x.crop, gc  # the band vanished at that size: full resolution
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's global RNG: same input, same mask
    try:
        cv2.grabCut(crop, work, None, bgd, fgd, x.cfg.grabcut_iters, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate colour statistics (e.g. a flat crop): keep the fused answer
        return (score > 0) & near
    fg = ((work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD)).astype(np.uint8)
    if work is gc:
        return fg.astype(bool)
    fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return (fg & near) | core  # the seeds hold at full resolution: GrabCut never moves them


def refine_auto(x: RefineInput) -> np.ndarray:
    """GrabCut where the object's colours are distinctive enough for it to help, the fusion elsewhere (GrabCut
    on a grey car on a grey road leaks into the road)."""
    if x.colour_weight >= x.cfg.grabcut_min_weight * x.cfg.colour_weight:
        return refine_grabcut(x)
    return refine_fusion(x)


REFINERS: dict[str, Callable[[RefineInput], np.ndarray]] = {
    "flow": refine_flow, "fusion": refine_fusion, "grabcut": refine_grabcut, "auto": refine_auto}


# ------------------------------------------------------------------------------------------------ motion


class _Flow:
    """Backward DIS flow and its forward-backward consistency, at a working resolution, as full-resolution remap
    grids."""

    def __init__(self, cfg: ClassicalTrackerConfig, shape: tuple[int, int]):
        h, w = shape
        self.scale = 1.0
        if max(h, w) > cfg.flow_max_side:
            self.scale = cfg.flow_max_side / max(h, w)
        elif min(h, w) < cfg.flow_min_side:
            self.scale = cfg.flow_min_side / min(h, w)
        self.size = (max(int(round(w * self.scale)), 8), max(int(round(h * self.scale)), 8))
        self.dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[cfg.dis_preset])
        self.shape = shape
        self.fb_alpha, self.fb_beta = cfg.fb_alpha, cfg.fb_beta * self.scale ** 2
        self.gy, self.gx = np.mgrid[:h, :w].astype(np.float32)

    def gray(self, frame: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self.scale != 1.0:
            g = cv2.resize(g, self.size, interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR)
        return g

    def maps(self, gray_now: np.ndarray, gray_before: np.ndarray):
        """For every pixel of the new frame, where it was on the previous one (map_x, map_y), and whether that is
        trustworthy: where the forward flow does not lead back, pixels are disoccluded (background uncovered
        behind a moving object, where the backward flow copies the object's motion and would drag the mask along
        as a smear) or the flow is guesswork (no texture)."""
        back = self.dis.calc(gray_now, gray_before, None)
        fwd = self.dis.calc(gray_before, gray_now, None)
        hs, ws = back.shape[:2]
        gy, gx = np.mgrid[:hs, :ws].astype(np.float32)
        fwd_at = cv2.remap(fwd, gx + back[..., 0], gy + back[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        err = np.sum((back + fwd_at) ** 2, axis=-1)
        mag = np.sum(back ** 2, axis=-1) + np.sum(fwd_at ** 2, axis=-1)
        valid = (err <= self.fb_alpha * mag + self.fb_beta).astype(np.float32)
        h, w = self.shape
        if self.scale != 1.0:
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) / self.scale
            valid = cv2.resize(valid, (w, h), interpolation=cv2.INTER_LINEAR)
        return self.gx + back[..., 0], self.gy + back[..., 1], valid > 0.5


def _match_shift(prev: np.ndarray, mask: np.ndarray, box: Box, frame: np.ndarray, predicted: np.ndarray,
                 radius: int, side: int):
    """The translation of the object (``prev`` pixels in ``mask``, inside ``box``) that best matches ``frame``,
    searched within ``radius`` of ``predicted`` by masked mean squared difference: coarse on crops scaled so the
    template's long side is about ``side`` pixels, then at full resolution around the coarse answer. Returns
    (shift, best cost / cost at the predicted shift, best cost), or (None, 1, inf) where it cannot tell."""
    h, w = mask.shape
    # The template is the object with a thin ring of its surroundings: its outline must match too (a flat
    # object's pixels alone fit anywhere inside a bigger blob of its colour).
    ring = max(1, int(round(0.15 * max(box[2] - box[0], box[3] - box[1]))))
    x1, y1, x2, y2 = _expand(box, 0.0, ring, (h, w))
    tmpl = prev[y1:y2, x1:x2].astype(np.float32)
    tmask = (cv2.dilate(mask[y1:y2, x1:x2].astype(np.uint8), _disk(ring)) > 0).astype(np.float32)

    def costs(scale: float, centre: np.ndarray, r: int):
        """Masked SSD of the template at shifts within ``r`` of ``centre``, at ``scale``; and the shift of [0, 0]."""
        cx1, cy1 = max(x1 + centre[0] - r, 0), max(y1 + centre[1] - r, 0)
        cx2, cy2 = min(x2 + centre[0] + r, w), min(y2 + centre[1] + r, h)
        if cx2 - cx1 < x2 - x1 or cy2 - cy1 < y2 - y1:
            return None, None
        region, t, m = frame[cy1:cy2, cx1:cx2].astype(np.float32), tmpl, tmask
        if scale < 1:
            def rs(a, interp):
                return cv2.resize(a, (max(int(a.shape[1] * scale), 1), max(int(a.shape[0] * scale), 1)),
                                  interpolation=interp)

            region, t, m = rs(region, cv2.INTER_AREA), rs(t, cv2.INTER_AREA), rs(m, cv2.INTER_LINEAR)
            m = (m > 0.5).astype(np.float32)
        if m.sum() < 1 or t.shape[0] > region.shape[0] or t.shape[1] > region.shape[1]:
            return None, None
        res = cv2.matchTemplate(region, t, cv2.TM_SQDIFF, mask=np.repeat(m[..., None], 3, axis=2))
        return res / m.sum(), np.array([cx1 - x1, cy1 - y1])

    scale = min(1.0, side / max(x2 - x1, y2 - y1))
    res, origin = costs(scale, predicted, radius)
    if res is None:
        return None, 1.0, np.inf
    by, bx = np.unravel_index(np.argmin(res), res.shape)
    coarse = origin + np.round(np.array([bx, by]) / scale).astype(int)
    fine, fine_origin = costs(1.0, coarse, int(np.ceil(1 / scale)))
    if fine is None:
        return None, 1.0, np.inf
    by, bx = np.unravel_index(np.argmin(fine), fine.shape)
    best, cost = (fine_origin + np.array([bx, by])).astype(np.float64), float(fine[by, bx])
    at_pred, _ = costs(1.0, predicted, 0)
    if at_pred is None:
        return best, 0.0, cost
    return best, cost / max(float(at_pred.min()), 1e-6), cost


def _contrast(frame: np.ndarray, mask: np.ndarray, box: Box) -> float:
    """Mean squared colour difference between the object's pixels and the mean colour of a ring around it."""
    win = _expand(box, 0.25, 2, mask.shape)
    m = _crop(mask, win)
    if m.all():
        return 0.0
    crop = _crop(frame, win).astype(np.float32)
    return float(((crop[m] - crop[~m].mean(axis=0)) ** 2).sum(axis=1).mean())


# ------------------------------------------------------------------------------------------------ mask tracker


@dataclass
class _Object:
    mask: np.ndarray  # full frame, the last output (empty while lost)
    box: Optional[Box]  # the mask's box
    colour: ColourModel
    area: float  # reference area for "lost": the recent peak, decaying (a shrinking object is not lost)
    separation: float = 0.0  # colour reliability (see ClassicalTrackerConfig.colour_floor), moving average
    centre: np.ndarray = field(default_factory=lambda: np.zeros(2))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # pixels per frame, moving average
    lost: bool = False
    lost_for: int = 0  # frames since it was lost


@dataclass
class _Step:
    """One object's new mask on a window of the frame, and the warped soft mask it came from (same window)."""

    win: Box
    mask: np.ndarray
    soft: np.ndarray
    moved_whole: bool = False  # the flow carried the object as one (see ClassicalTrackerConfig.recolour_min_area)


@register("tracker", "classical")
class ClassicalMaskTracker(Tracker):
    """Flow warping + re-segmentation of every object's mask (see the module docstring)."""

    def __init__(self, config: Optional[ClassicalTrackerConfig] = None, **overrides):
        cfg = config or ClassicalTrackerConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise RegionError(f"classical tracker: unknown setting {k!r}")
            setattr(cfg, k, v)
        cfg.validate()
        self.cfg = cfg
        self._refine = REFINERS[cfg.refine]
        self.objects: dict[int, _Object] = {}
        self._flow: Optional[_Flow] = None
        self._frame = self._gray = None
        self._rng = np.random.default_rng(0)

    # -------------------------------------------------------------- protocol
    def start(self, frame: np.ndarray, masks: dict[int, np.ndarray]) -> None:
        frame = _check_frame(frame)
        self.objects = {}
        self._rng = np.random.default_rng(0)  # RANSAC samples: same input, same tracks
        self._flow = _Flow(self.cfg, frame.shape[:2])
        self._frame, self._gray = frame, self._flow.gray(frame)
        self.add(frame, masks)

    def add(self, frame: np.ndarray, masks: dict[int, np.ndarray]) -> None:
        frame = self._check(frame, "add")
        for obj_id, mask in masks.items():
            mask = _check_mask(obj_id, mask, frame.shape[:2])
            box = _bbox(mask)
            model = ColourModel(self.cfg.colour_bins)
            self._learn(model, frame, mask, box, 1.0)
            self.objects[obj_id] = _Object(mask=mask, box=box, colour=model, area=float(mask.sum()),
                                           separation=_separation(model, frame, mask, box), centre=_centre(mask))

    def remove(self, ids: Sequence[int]) -> None:
        for i in ids:
            self.objects.pop(i, None)

    def step(self, frame: np.ndarray) -> dict[int, np.ndarray]:
        frame = self._check(frame, "step")
        gray = self._flow.gray(frame)
        tracked = [i for i, o in self.objects.items() if not o.lost]
        maps = self._flow.maps(gray, self._gray) if tracked else None
        steps = {i: self._propagate(self.objects[i], frame, maps) for i in tracked}
        self._resolve_overlaps(steps)
        for i in tracked:
            self._update(self.objects[i], frame, steps[i])
        for i, obj in self.objects.items():
            if obj.lost and i not in tracked:
                self._redetect(obj, frame)
        self._frame, self._gray = frame, gray
        return {i: o.mask.copy() for i, o in self.objects.items()}

    def _check(self, frame: np.ndarray, what: str) -> np.ndarray:
        if self._flow is None:
            raise RegionError(f"classical tracker: call start() before {what}()")
        frame = _check_frame(frame)
        if frame.shape[:2] != self._flow.shape:
            raise RegionError(f"frame is {frame.shape[1]}x{frame.shape[0]} but the video is "
                              f"{self._flow.shape[1]}x{self._flow.shape[0]}")
        return frame

    # -------------------------------------------------------------- motion + re-segmentation
    def _propagate(self, obj: _Object, frame: np.ndarray, maps) -> Optional[_Step]:
        cfg = self.cfg
        shape = frame.shape[:2]
        size = max(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])
        near = _expand(obj.box, 0.25, 4, shape)
        motion = max(float(np.abs(_crop(maps[0], near) - _crop(self._flow.gx, near)).max()),
                     float(np.abs(_crop(maps[1], near) - _crop(self._flow.gy, near)).max()))
        # The window holds wherever the object can be now, and the refiner's crop around it.
        win = _expand(obj.box, cfg.margin + cfg.match_radius + cfg.band, int(np.ceil(motion)) + 8, shape)
        warped = self._warp(obj, maps, win)
        if cfg.match_radius > 0:
            warped = self._correct_shift(obj, warped, win, frame)
        inside = warped > 0.5
        area = int(inside.sum())
        if area == 0:
            return _Step(win, inside, warped)
        # The band: a fraction of the object's size, and never wider than half its thickness.
        thick = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3).max()
        band = max(cfg.min_band, int(round(min(cfg.band * np.sqrt(area), thick))))
        crop = _expand(_bbox(inside), cfg.margin, 2 * band + 2, inside.shape)  # window coordinates
        pixels = _crop(_crop(frame, win), crop)
        colour = obj.colour.posterior(pixels)
        local_inside = _crop(inside, crop)
        refined = self._refine(RefineInput(np.ascontiguousarray(pixels[..., ::-1]), _crop(warped, crop), colour,
                                           band, self._colour_weight(obj), cfg))
        # Whether the flow carried the object as one: nearly all of it, with consistent flow. An object going
        # behind something is not (the occluder's pixels follow the occluder's motion, not the object's).
        moved_whole = area >= cfg.recolour_min_area * obj.area and \
            _crop(maps[2], win)[inside].mean() >= cfg.recolour_min_valid
        kept = refined.sum()
        if kept > cfg.max_growth * area:  # the refiner leaked into the background: trust the motion
            refined = local_inside
        elif kept < cfg.lost_ratio * area and (moved_whole or colour[local_inside].mean() > 0.5):
            # The refiner dropped nearly everything, yet the region still has the object's colours (the refiner
            # failed, not the track) or it moved as one (the object changed colour).
            refined = local_inside
        mask = np.zeros_like(inside)
        _crop(mask, crop)[:] = _largest_parts(refined)
        return _Step(win, mask, warped, moved_whole)

    def _warp(self, obj: _Object, maps, win: Box) -> np.ndarray:
        """The object's mask carried onto window ``win`` of the new frame: by the dense flow where it is
        consistent, elsewhere by the affine motion fitted to the object's consistent flow (RANSAC)."""
        cfg = self.cfg
        mx, my, valid = (_crop(m, win) for m in maps)
        # The source: the previous mask around its box. Replicating its edge where the box touches the frame
        # edge means what comes in from outside continues the object there (it is entering or leaving).
        src_box = _expand(obj.box, 0.0, 2, obj.mask.shape)
        src = _crop(obj.mask, src_box).astype(np.float32)
        sx, sy = src_box[0], src_box[1]
        dense = cv2.remap(src, mx - sx, my - sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if cfg.motion != "dense":
            ys, xs = np.nonzero((dense > 0.5) & valid)
            if len(xs) >= 12:
                pick = self._rng.choice(len(xs), size=min(len(xs), cfg.affine_points), replace=False)
                ys, xs = ys[pick], xs[pick]
                from_ = np.stack([mx[ys, xs], my[ys, xs]], 1).astype(np.float32)
                to = np.stack([xs + win[0], ys + win[1]], 1).astype(np.float32)
                thr = max(1.0, 0.03 * np.sqrt(obj.mask.sum()))
                A, _ = cv2.estimateAffine2D(from_, to, method=cv2.RANSAC, ransacReprojThreshold=thr, maxIters=500,
                                            refineIters=10)
                if A is not None:
                    # In window / source-crop coordinates: p_win = A (p_src + s) - w.
                    A = A.astype(np.float64)
                    A[:, 2] += A[:, :2] @ np.array([sx, sy], np.float64) - np.array(win[:2], np.float64)
                    rigid = cv2.warpAffine(src, A, (win[2] - win[0], win[3] - win[1]), flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
                    if cfg.motion == "affine":
                        return rigid
                    # Where the flow is unreliable, object only if both agree: a textureless part of the object
                    # (both say object), not the background uncovered behind it (the dense flow smears the
                    # object there) nor background the mask had leaked into (a bad affine fit says object).
                    return np.where(valid, dense, np.minimum(dense, rigid))
        dense[~valid] = np.minimum(dense[~valid], 0.5)  # no affine fill-in: unreliable flow is "unknown"
        return dense

    def _correct_shift(self, obj: _Object, warped: np.ndarray, win: Box, frame: np.ndarray) -> np.ndarray:
        """Optical flow underestimates the motion of flat, textureless objects (the flow inside is smoothed from
        the static background around them). Match the object's previous pixels around where the flow put it;
        when another offset fits clearly (and closely) better, move the warped mask there."""
        cfg = self.cfg
        inside = warped > 0.5
        if not inside.any():
            return warped
        predicted = _centre(inside) + np.array(win[:2]) - obj.centre
        size = max(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])
        radius = int(np.ceil(cfg.match_radius * size)) + 2
        shift, gain, cost = _match_shift(self._frame, obj.mask, obj.box, frame, np.round(predicted).astype(int),
                                         radius, cfg.match_side)
        if shift is None or gain > cfg.match_gain or np.abs(shift - predicted).max() < 1:
            return warped
        # Only a close match counts: an object that changed colour matches nowhere, a look-alike nearby partly.
        if cost > cfg.match_max_cost * _contrast(self._frame, obj.mask, obj.box):
            return warped
        dx, dy = shift - predicted
        return cv2.warpAffine(warped, np.float32([[1, 0, dx], [0, 1, dy]]), warped.shape[::-1],
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _resolve_overlaps(self, steps: dict[int, _Step]) -> None:
        """Masks of different objects never overlap: a contested pixel goes to the object the flow puts there."""
        ids = list(steps)
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                p, q = steps[ids[a]], steps[ids[b]]
                x1, y1 = max(p.win[0], q.win[0]), max(p.win[1], q.win[1])
                x2, y2 = min(p.win[2], q.win[2]), min(p.win[3], q.win[3])
                if x1 >= x2 or y1 >= y2:
                    continue
                common = (x1, y1, x2, y2)
                mp, mq = _crop(p.mask, _shift(common, -p.win[0], -p.win[1])), \
                    _crop(q.mask, _shift(common, -q.win[0], -q.win[1]))
                both = mp & mq
                if both.any():
                    sp = _crop(p.soft, _shift(common, -p.win[0], -p.win[1]))[both]
                    sq = _crop(q.soft, _shift(common, -q.win[0], -q.win[1]))[both]
                    p_wins = sp >= sq
                    mp[both], mq[both] = p_wins, ~p_wins

    # -------------------------------------------------------------- bookkeeping
    def _colour_weight(self, obj: _Object) -> float:
        cfg = self.cfg
        return cfg.colour_weight * float(np.clip((obj.separation - cfg.colour_floor) / (1 - cfg.colour_floor), 0, 1))

    def _learn(self, model: ColourModel, frame: np.ndarray, mask: np.ndarray, box: Box, lr: float) -> None:
        """Update the colour model from the object and its surroundings (what it must stand out from)."""
        win = _expand(box, 1.0, 8, mask.shape)
        m = _crop(mask, win)
        model.update(_crop(frame, win), m, ~m, lr)

    def _update(self, obj: _Object, frame: np.ndarray, step: _Step) -> None:
        cfg = self.cfg
        area = float(step.mask.sum())
        local = _bbox(step.mask)
        mask = np.zeros(frame.shape[:2], bool)
        if local is not None:
            box = _shift(local, step.win[0], step.win[1])
            _crop(mask, box)[:] = _crop(step.mask, local)
        if local is None or area < cfg.lost_ratio * obj.area:
            obj.lost, obj.lost_for, obj.mask, obj.box = True, 1, np.zeros_like(mask), None
            return
        if not self._looks_like(obj, frame, mask, box):
            if not step.moved_whole:  # a remnant on whatever hid the object
                obj.lost, obj.lost_for, obj.mask, obj.box = True, 1, np.zeros_like(mask), None
                return
            obj.colour = ColourModel(cfg.colour_bins)  # it changed colour: learn the new colours afresh
            self._learn(obj.colour, frame, mask, box, 1.0)
        centre = _centre(_crop(mask, box)) + np.array(box[:2])
        obj.velocity = 0.5 * obj.velocity + 0.5 * (centre - obj.centre)
        obj.centre, obj.mask, obj.box = centre, mask, box
        obj.area = max(area, cfg.area_decay * obj.area)
        # Reliability is measured before the model sees this frame: how well it predicted the new mask.
        obj.separation = 0.5 * obj.separation + 0.5 * _separation(obj.colour, frame, mask, box)
        self._learn(obj.colour, frame, mask, box, cfg.colour_lr)

    def _looks_like(self, obj: _Object, frame: np.ndarray, mask: np.ndarray, box: Box) -> bool:
        """Where colours are reliable, a mask whose pixels do not have the object's colours is not the object (a
        remnant left on the occluder or the background when the object went behind something)."""
        if self._colour_weight(obj) < self.cfg.grabcut_min_weight * self.cfg.colour_weight:
            return True
        post = obj.colour.posterior(_crop(frame, box))
        return float(post[_crop(mask, box)].mean()) >= self.cfg.min_colour_match

    def _redetect(self, obj: _Object, frame: np.ndarray) -> None:
        """A lost object: the blob of its colours near where its motion would have taken it, about its size, not
        claimed by another object, if one is convincing enough."""
        cfg = self.cfg
        # Only a colour model that told the object from its surroundings can find it again by its colours.
        if not cfg.redetect or self._colour_weight(obj) < cfg.grabcut_min_weight * cfg.colour_weight:
            return
        shape = frame.shape[:2]
        frames = min(obj.lost_for, cfg.redetect_frames)  # how far the object may have got, bounded
        expected = obj.centre + obj.velocity * frames
        radius = cfg.redetect_radius * np.sqrt(obj.area) + frames * (2 * np.hypot(*obj.velocity) + 1)
        c = np.round(expected).astype(int)
        r = int(np.ceil(radius + 2 * np.sqrt(obj.area)))  # the blob may reach beyond its centre's search radius
        win = (max(c[0] - r, 0), max(c[1] - r, 0), min(c[0] + r, shape[1]), min(c[1] + r, shape[0]))
        obj.lost_for += 1
        if win[0] >= win[2] or win[1] >= win[3]:
            return
        post = obj.colour.posterior(_crop(frame, win))
        cand = post > 0.5
        for other in self.objects.values():
            if other is not obj and other.box is not None:
                cand &= ~_crop(other.mask, win)
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
        lo, hi = cfg.redetect_area_range
        best, best_score = None, 0.0
        for k in range(1, n):
            a = stats[k, cv2.CC_STAT_AREA]
            if not lo * obj.area <= a <= hi * obj.area or \
                    np.hypot(*(centroids[k] + np.array(win[:2]) - expected)) > radius:
                continue
            blob = labels == k
            score = float(post[blob].mean())
            if score >= cfg.redetect_min_posterior and score > best_score:
                best, best_score = blob, score
        if best is None:
            return
        mask = np.zeros(shape, bool)
        _crop(mask, win)[:] = best
        box = _bbox(mask)
        obj.lost, obj.lost_for, obj.mask, obj.box = False, 0, mask, box
        obj.area, obj.centre, obj.velocity = float(mask.sum()), _centre(_crop(mask, box)) + np.array(box[:2]), \
            np.zeros(2)


# ------------------------------------------------------------------------------------------------ box trackers


def seed_mask_from_box(frame: np.ndarray, box_xyxy, iters: int = 5, min_fill: float = 0.1) -> np.ndarray:
    """The object inside a box: GrabCut initialised with the box, on a crop around it (falls back to the box
    itself when GrabCut finds almost nothing there, e.g. a box around a flat region)."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box_xyxy)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    box_mask = np.zeros((h, w), bool)
    box_mask[y1:y2, x1:x2] = True
    win = _expand((x1, y1, x2, y2), 0.5, 4, (h, w))
    if x2 - x1 < 4 or y2 - y1 < 4 or (x1, y1, x2, y2) == win:  # too small, or no background around it
        return box_mask
    gc = np.zeros((win[3] - win[1], win[2] - win[0]), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(np.ascontiguousarray(_crop(frame, win)[..., ::-1]), gc,
                    (x1 - win[0], y1 - win[1], x2 - x1, y2 - y1), bgd, fgd, iters, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return box_mask
    mask = np.zeros((h, w), bool)
    _crop(mask, win)[:] = _largest_parts((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD), 0.3)
    return mask if mask.sum() >= min_fill * box_mask.sum() else box_mask


@dataclass
class BoxTrackerConfig:
    mask: ClassicalTrackerConfig = field(default_factory=ClassicalTrackerConfig)
    grabcut_iters: int = 5  # seeding the mask from the first box
    min_seed_fill: float = 0.1  # a GrabCut seed mask filling less than this of the box is replaced by the box
    max_jump: float = 0.5  # mask box centre moving more than this x box size in one frame: distrust it
    csrt: bool = True  # CSRT alongside (most of the cost at large sizes); without it a distrusted mask is "lost"


class ClassicalBoxTracker:
    """Box tracking by the mask tracker, with CSRT alongside (see the module docstring)."""

    def __init__(self, config: Optional[BoxTrackerConfig] = None):
        self.cfg = config or BoxTrackerConfig()
        self.masks = ClassicalMaskTracker(self.cfg.mask)
        self.csrt = CSRTBoxTracker() if self.cfg.csrt else None
        self.box = None
        self.ratio = (1.0, 1.0)

    def init(self, frame: np.ndarray, box_xyxy) -> None:
        frame = _check_frame(frame)
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 - x1 < 1 or y2 - y1 < 1:
            raise RegionError(f"box {[float(v) for v in box_xyxy]} does not cover a pixel of the {w}x{h} frame")
        seed = seed_mask_from_box(frame, (x1, y1, x2, y2), self.cfg.grabcut_iters, self.cfg.min_seed_fill)
        self.masks.start(frame, {1: seed})
        if self.csrt is not None:
            self.csrt.init(frame, (x1, y1, x2, y2))
        mb = _bbox(seed)
        # The user's box around the object's mask: keep that relation (VOT boxes, for one, are not tight).
        self.ratio = ((x2 - x1) / (mb[2] - mb[0]), (y2 - y1) / (mb[3] - mb[1]))
        self.box = np.array([x1, y1, x2, y2], np.float64)

    def update(self, frame: np.ndarray):
        if self.box is None:
            raise RegionError("box tracker: call init() first")
        mask = self.masks.step(frame)[1]
        csrt_box = self.csrt.update(frame) if self.csrt is not None else None
        mask_box = None
        mb = _bbox(mask)
        if mb is not None:
            cx, cy = (mb[0] + mb[2]) / 2, (mb[1] + mb[3]) / 2
            bw, bh = (mb[2] - mb[0]) * self.ratio[0], (mb[3] - mb[1]) * self.ratio[1]
            mask_box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        box = mask_box if mask_box is not None and self._plausible(mask_box) else csrt_box
        if box is not None:
            self.box = np.asarray(box, np.float64)
        return None if box is None else [float(v) for v in box]

    def _plausible(self, box: np.ndarray) -> bool:
        prev = self.box
        size = max(prev[2] - prev[0], prev[3] - prev[1])
        jump = np.hypot((box[0] + box[2] - prev[0] - prev[2]) / 2, (box[1] + box[3] - prev[1] - prev[3]) / 2)
        return jump <= self.cfg.max_jump * size


class CSRTBoxTracker:
    """Plain OpenCV CSRT, the reference the classical box tracker is measured against."""

    def __init__(self):
        self.csrt = None
        self.lost = False

    def init(self, frame: np.ndarray, box_xyxy) -> None:
        frame = _check_frame(frame)
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        self.csrt = cv2.TrackerCSRT_create()
        try:
            self.csrt.init(np.ascontiguousarray(frame[..., ::-1]), (int(round(x1)), int(round(y1)),
                                                                    max(int(round(x2 - x1)), 1),
                                                                    max(int(round(y2 - y1)), 1)))
            self.lost = False
        except cv2.error:  # OpenCV cannot build its filter on a sliver (a 1-pixel box at the frame's edge)
            self.lost = True

    def update(self, frame: np.ndarray):
        if self.csrt is None:
            raise RegionError("box tracker: call init() first")
        if self.lost:
            return None
        try:
            ok, b = self.csrt.update(np.ascontiguousarray(_check_frame(frame)[..., ::-1]))
        except cv2.error:  # its filter can also fail on the next frame (a 2x2 box in the frame's corner)
            self.lost = True
            return None
        return [float(b[0]), float(b[1]), float(b[0] + b[2]), float(b[1] + b[3])] if ok else None


BOX_TRACKERS: dict[str, Callable] = {"classical": ClassicalBoxTracker, "csrt": CSRTBoxTracker}
