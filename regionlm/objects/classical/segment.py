"""Box or point -> mask without weights: GrabCut on a crop, or a colour model on small frames.

- Box, real frames: GrabCut initialised with the rectangle, on a crop around the box (with a margin that gives
  GrabCut background samples) scaled so that its long side is at most ``grabcut_side``: the cost no longer grows
  with the frame size, and the mask is scaled back.
- Box, small frames (long side <= ``small_side``, e.g. RegionWorld's 64x64): GrabCut's colour mixtures are
  unreliable with a few hundred pixels, and a box often holds a second object. The fast path models the
  background from the ring of pixels around the box, and keeps the dominant non-background colour near the box
  centre (one object = one colour region), as its largest connected parts.
- Point: a flood fill of similar colour from the point; on real frames it seeds GrabCut in a window around the
  point (the fill as probable object, a small disk at the point as sure object).
A mask never comes back empty for a box that covers pixels: when nothing stands out, the box itself is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from regionlm.errors import RegionError, RegionLMError
from regionlm.objects.base import Segmenter, register


@dataclass
class ClassicalSegmenterConfig:
    small_side: int = 128  # frames with a long side up to this use the colour fast path
    margin: float = 0.25  # crop margin around a box, x its size (at least 2 pixels)
    grabcut_iters: int = 3
    grabcut_side: int = 200  # GrabCut works on the crop scaled to at most this long side
    bg_tol: float = 22.0  # Lab distance from every background colour for a pixel to stand out
    obj_tol: float = 28.0  # Lab distance from the object colour for a pixel to belong to it
    keep_frac: float = 0.2  # connected parts smaller than this x the largest are dropped
    point_window: float = 0.35  # GrabCut window around a point, x the short frame side
    flood_tol: int = 18  # per-channel RGB tolerance of the flood fill from a point
    min_fill: float = 0.05  # a GrabCut mask filling less of the box than this is replaced by the colour path


@register("segmenter", "classical")
class ClassicalSegmenter(Segmenter):
    def __init__(self, config: Optional[ClassicalSegmenterConfig] = None, **overrides):
        cfg = config or ClassicalSegmenterConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise RegionLMError(f"classical segmenter: unknown option {k!r}")
            setattr(cfg, k, v)
        self.config = cfg

    def segment(self, frame: np.ndarray, boxes: Optional[np.ndarray] = None,
                points: Optional[np.ndarray] = None) -> np.ndarray:
        frame = np.ascontiguousarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise RegionError(f"a frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if (boxes is None) == (points is None):
            raise RegionError("segment: give either boxes (N, 4) or points (N, 2)")
        H, W = frame.shape[:2]
        lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
        small = max(H, W) <= self.config.small_side
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            out = np.zeros((len(boxes), H, W), bool)
            for n, box in enumerate(boxes):
                out[n] = self.box_mask(frame, lab, box, small)
            return out
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out = np.zeros((len(points), H, W), bool)
        for n, (x, y) in enumerate(points):
            if not (0 <= x < W and 0 <= y < H):
                raise RegionError(f"point ({x:g}, {y:g}) is outside the {W}x{H} frame")
            out[n] = self.point_mask(frame, lab, int(x), int(y), small)
        return out

    # -------------------------------------------------------------- boxes
    def box_mask(self, frame: np.ndarray, lab: np.ndarray, box, small: bool) -> np.ndarray:
        H, W = frame.shape[:2]
        x1, y1, x2, y2 = _clip_box(box, W, H)
        mask = np.zeros((H, W), bool)
        if x2 <= x1 or y2 <= y1:
            return mask  # the box covers no pixel of the frame
        got = None
        if not small and (x2 - x1) >= 8 and (y2 - y1) >= 8:
            got = self._grabcut_box(frame, (x1, y1, x2, y2))
        if got is None:
            got = self._colour_box(lab, (x1, y1, x2, y2))
        if got is None or not got.any():
            mask[y1:y2, x1:x2] = True
            return mask
        return got

    def _crop(self, box, W, H, margin):
        x1, y1, x2, y2 = box
        mx = max(2, int(round(margin * (x2 - x1))))
        my = max(2, int(round(margin * (y2 - y1))))
        return max(0, x1 - mx), max(0, y1 - my), min(W, x2 + mx), min(H, y2 + my)

    def _colour_box(self, lab: np.ndarray, box) -> Optional[np.ndarray]:
        cfg = self.config
        H, W = lab.shape[:2]
        x1, y1, x2, y2 = box
        cx1, cy1, cx2, cy2 = self._crop(box, W, H, cfg.margin)
        crop = lab[cy1:cy2, cx1:cx2]
        inbox = np.zeros(crop.shape[:2], bool)
        inbox[y1 - cy1:y2 - cy1, x1 - cx1:x2 - cx1] = True
        ring = crop[~inbox]
        if len(ring) < 8:  # the box fills the frame: its own border is the best background sample
            border = inbox.copy()
            border[1:-1, 1:-1] = False
            ring = crop[border]
        bg = _centres(ring, 4, min_share=0.2)
        pix = crop[inbox]
        d_bg = np.min(np.linalg.norm(pix[:, None, :] - bg[None], axis=2), axis=1)
        cand = d_bg > cfg.bg_tol
        if cand.sum() < 3:
            return None
        # Dominant candidate colour, weighted towards the box centre (a neighbour reaching into the box is
        # off-centre); then every box pixel of that colour.
        ys, xs = np.nonzero(inbox)
        bw, bh = max(x2 - x1, 1), max(y2 - y1, 1)
        off = np.hypot((xs + cx1 + 0.5 - (x1 + x2) / 2) / bw, (ys + cy1 + 0.5 - (y1 + y2) / 2) / bh)
        weight = np.clip(1.0 - off, 0.2, 1.0)[cand]
        centres = _centres(pix[cand], 3)
        assign = np.argmin(np.linalg.norm(pix[cand][:, None, :] - centres[None], axis=2), axis=1)
        best = int(np.argmax(np.bincount(assign, weights=weight, minlength=len(centres))))
        obj = cand & (np.linalg.norm(pix - centres[best], axis=1) < cfg.obj_tol)
        inside = np.zeros(crop.shape[:2], bool)
        inside[inbox] = obj
        inside = _largest_parts(inside, cfg.keep_frac)
        mask = np.zeros((H, W), bool)
        mask[cy1:cy2, cx1:cx2] = inside
        return _fit_box(mask, box) if mask.any() else mask

    def _grabcut_box(self, frame: np.ndarray, box) -> Optional[np.ndarray]:
        cfg = self.config
        H, W = frame.shape[:2]
        x1, y1, x2, y2 = box
        cx1, cy1, cx2, cy2 = self._crop(box, W, H, cfg.margin)
        crop = frame[cy1:cy2, cx1:cx2]
        s = min(1.0, cfg.grabcut_side / max(crop.shape[:2]))
        if s < 1.0:
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                              interpolation=cv2.INTER_AREA)
        ch, cw = crop.shape[:2]
        rx1, ry1 = int((x1 - cx1) * s), int((y1 - cy1) * s)
        rx2, ry2 = min(cw, int(np.ceil((x2 - cx1) * s))), min(ch, int(np.ceil((y2 - cy1) * s)))
        if rx2 - rx1 < 2 or ry2 - ry1 < 2 or (rx2 - rx1) * (ry2 - ry1) >= 0.98 * cw * ch:
            return None  # no background around the box to learn from
        gc = np.zeros((ch, cw), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(np.ascontiguousarray(crop[..., ::-1]), gc, (rx1, ry1, rx2 - rx1, ry2 - ry1), bgd, fgd,
                        cfg.grabcut_iters, cv2.GC_INIT_WITH_RECT)
        except cv2.error:
            return None
        fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
        if s < 1.0:
            fg = cv2.resize(fg, (cx2 - cx1, cy2 - cy1), interpolation=cv2.INTER_NEAREST)
        fg = _largest_parts(fg.astype(bool), cfg.keep_frac)
        if fg.sum() < cfg.min_fill * (x2 - x1) * (y2 - y1):
            return None
        mask = np.zeros((H, W), bool)
        mask[cy1:cy2, cx1:cx2] = fg
        mask[:, :x1] = False  # GrabCut with a rectangle never labels outside it; keep that after rescaling
        mask[:, x2:] = False
        mask[:y1] = False
        mask[y2:] = False
        return mask

    # -------------------------------------------------------------- points
    def point_mask(self, frame: np.ndarray, lab: np.ndarray, x: int, y: int, small: bool) -> np.ndarray:
        cfg = self.config
        H, W = frame.shape[:2]
        fill = _flood(frame, x, y, cfg.flood_tol)
        too_big = fill.sum() > 0.5 * H * W
        if small:
            return _disk_mask(H, W, x, y, max(1, min(H, W) // 32)) if too_big else fill
        r = max(8, int(cfg.point_window * min(H, W) / 2))
        wx1, wy1, wx2, wy2 = max(0, x - r), max(0, y - r), min(W, x + r + 1), min(H, y + r + 1)
        if not too_big and fill.any():  # the window grows to hold the fill (the object is at least that big)
            ys, xs = np.nonzero(fill)
            fw, fh = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
            wx1, wy1 = max(0, min(wx1, xs.min() - fw // 2)), max(0, min(wy1, ys.min() - fh // 2))
            wx2, wy2 = min(W, max(wx2, xs.max() + 1 + fw // 2)), min(H, max(wy2, ys.max() + 1 + fh // 2))
        s = min(1.0, cfg.grabcut_side / max(wx2 - wx1, wy2 - wy1))
        size = (max(1, round((wx2 - wx1) * s)), max(1, round((wy2 - wy1) * s)))
        crop = np.ascontiguousarray(cv2.resize(frame[wy1:wy2, wx1:wx2], size, interpolation=cv2.INTER_AREA)[..., ::-1])
        px, py = min(size[0] - 1, int((x - wx1) * s)), min(size[1] - 1, int((y - wy1) * s))
        gc = np.full(crop.shape[:2], cv2.GC_PR_BGD, np.uint8)
        gc[[0, -1], :] = cv2.GC_BGD  # the window's edge is background: the object is assumed inside it
        gc[:, [0, -1]] = cv2.GC_BGD
        if not too_big:
            gc[cv2.resize(fill[wy1:wy2, wx1:wx2].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0] = \
                cv2.GC_PR_FGD
        gc[_disk_mask(*crop.shape[:2], px, py, max(2, int(r * s) // 10))] = cv2.GC_FGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(crop, gc, None, bgd, fgd, cfg.grabcut_iters, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return fill if not too_big else _disk_mask(H, W, x, y, max(2, r // 10))
        fg = _component_at((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD), px, py).astype(np.uint8)
        fg = cv2.resize(fg, (wx2 - wx1, wy2 - wy1), interpolation=cv2.INTER_NEAREST) > 0
        mask = np.zeros((H, W), bool)
        mask[wy1:wy2, wx1:wx2] = fg
        return mask


# ------------------------------------------------------------------ helpers


def _clip_box(box, W, H):
    x1, y1, x2, y2 = (float(v) for v in box)
    if not np.all(np.isfinite([x1, y1, x2, y2])):
        raise RegionError(f"box {[x1, y1, x2, y2]} has a non-finite coordinate")
    return (int(np.clip(np.floor(x1), 0, W)), int(np.clip(np.floor(y1), 0, H)),
            int(np.clip(np.ceil(x2), 0, W)), int(np.clip(np.ceil(y2), 0, H)))


def _centres(pixels: np.ndarray, k: int, min_share: float = 0.0) -> np.ndarray:
    """Up to ``k`` k-means colour centres (fewer for few pixels), keeping those with at least ``min_share`` of the
    pixels (the largest always); deterministic (fixed seed). For the background ring, ``min_share`` drops the
    colour of the object itself where it reaches out of a too tight box."""
    pixels = np.asarray(pixels, np.float32).reshape(-1, 3)
    k = min(k, len(pixels))
    if k <= 1:
        return pixels.mean(axis=0, keepdims=True)
    cv2.setRNGSeed(0)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, assign, centres = cv2.kmeans(pixels, k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    share = np.bincount(assign.reshape(-1), minlength=k) / len(pixels)
    keep = (share >= min_share) | (share == share.max())
    return centres[keep]


def _largest_parts(mask: np.ndarray, keep_frac: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= keep_frac * areas.max()) + 1
    return np.isin(labels, keep)


def _reconstruct(marker: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Morphological reconstruction by dilation of ``marker`` under ``mask`` (float images)."""
    kernel = np.ones((3, 3), np.uint8)
    cur = np.minimum(marker, mask)
    while True:
        nxt = np.minimum(cv2.dilate(cur, kernel), mask)
        if np.array_equal(nxt, cur):
            return cur
        cur = nxt


def split_touching(mask: np.ndarray, h: Optional[float] = None, min_frac: float = 0.15,
                   min_solidity: float = 0.6) -> list[np.ndarray]:
    """Split a blob that is several convex-ish objects touching (two discs of one colour) into them: markers
    are the extended maxima of its distance transform with dynamic >= ``h`` (default max(2, 0.08 sqrt(area))
    pixels), grown back by watershed. A blob with one such maximum (one object, rings and stars included) comes
    back whole, as do splits that leave a part under ``min_frac`` of the area or a part of convex-hull solidity
    under ``min_solidity``."""
    mask = np.asarray(mask, bool)
    area = int(mask.sum())
    if area < 16:
        return [mask]
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.pad(mask[y0:y1, x0:x1], 1).astype(np.uint8)
    dt = cv2.distanceTransform(crop, cv2.DIST_L2, 5).astype(np.float32)
    h = max(2.0, 0.08 * np.sqrt(area)) if h is None else h
    domes = _reconstruct(dt - h, dt)
    # Regional maxima of the h-reconstruction: one connected plateau per dome of dynamic >= h (a ring's ridge,
    # bumpy from pixel rounding, is one plateau: it is not cut into pieces).
    tops = ((domes - _reconstruct(domes - 0.01, domes)) > 0.005) & (crop > 0)
    n, markers = cv2.connectedComponents(tops.astype(np.uint8), connectivity=8)
    if n <= 2:
        return [mask]
    markers = markers.astype(np.int32)
    markers[crop == 0] = n  # the outside is its own basin
    relief = np.repeat((255 - dt / max(float(dt.max()), 1e-6) * 255).astype(np.uint8)[..., None], 3, axis=2)
    cv2.watershed(relief, markers)
    kernel = np.ones((3, 3), np.uint8)
    line = (markers == -1) & (crop > 0)
    parts = []
    for j in range(1, n):
        part = markers == j
        part |= line & (cv2.dilate(part.astype(np.uint8), kernel) > 0)  # watershed lines go to a neighbour
        line &= ~part
        full = np.zeros_like(mask)
        full[y0:y1, x0:x1] = part[1:-1, 1:-1]
        parts.append(full)
    if min(p.sum() for p in parts) < min_frac * area or min(_solidity(p) for p in parts) < min_solidity:
        return [mask]  # a sliver, or a part that is no object's shape (a band of background around things)
    return parts


def _solidity(mask: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
    return float(mask.sum()) / max(hull, 1.0)


def _fit_box(mask: np.ndarray, box) -> np.ndarray:
    """The object in ``box`` out of a colour region: the region itself, or the part of it (when it is several
    touching objects, :func:`split_touching`) whose own box fits ``box`` best."""
    from regionlm.objects.classical.detect import box_iou
    from regionlm.regions import mask_to_box

    candidates = [mask] + [p for p in split_touching(mask) if p is not mask]
    if len(candidates) == 1:
        return mask
    boxes = np.array([mask_to_box(c) for c in candidates], float)
    return candidates[int(np.argmax(box_iou(np.asarray(box, float)[None], boxes)[0]))]


def _component_at(mask: np.ndarray, x: int, y: int) -> np.ndarray:
    """The connected part of ``mask`` under (x, y), or its largest part when the point is not on it."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    k = labels[y, x] if 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] else 0
    if k == 0:
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == k


def _flood(frame: np.ndarray, x: int, y: int, tol: int) -> np.ndarray:
    H, W = frame.shape[:2]
    # Mild smoothing against sensor noise on real frames only: on small frames it would blur thin parts away.
    img = cv2.GaussianBlur(frame, (3, 3), 0) if min(H, W) > 256 else frame.copy()
    ff = np.zeros((H + 2, W + 2), np.uint8)
    cv2.floodFill(np.ascontiguousarray(img), ff, (int(x), int(y)), (0, 0, 0), (tol,) * 3, (tol,) * 3,
                  4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    return ff[1:-1, 1:-1] > 0


def _disk_mask(H: int, W: int, x: int, y: int, r: int) -> np.ndarray:
    yy, xx = np.ogrid[:H, :W]
    return (xx - x) ** 2 + (yy - y) ** 2 <= r * r


__all__ = ["ClassicalSegmenter", "ClassicalSegmenterConfig"]
