"""Video object segmentation metrics: region J, boundary F, J&F (DAVIS protocol).

Mirrors davis2017-evaluation: ``davis2017/metrics.py`` (``db_eval_iou``, ``f_measure``,
``_seg2bmap``), ``davis2017/utils.py`` (``db_statistics``) and the semi-supervised branch of
``davis2017/evaluation.py``. Scores are fractions 0-1, like the toolkit (papers print x100).

* J = |pred & gt| / |pred | gt| over non-void pixels; 1 when the union is empty.
* F: boundary map = pixel differs from its E, S or SE neighbour (``_seg2bmap`` with its border
  rules, same resolution); each map is dilated (cv2) with a disk of radius
  ``ceil(0.008 * sqrt(H^2 + W^2))`` (8 px at 854x480); ``disk`` is skimage's
  (``x^2 + y^2 <= r^2``). P = matched pred boundary / pred boundary, R likewise for the GT;
  empty pred & non-empty GT: P=1, R=0; non-empty pred & empty GT: P=0, R=1; both empty: P=R=1;
  F = 2PR / (P + R), 0 when P + R = 0.
* Semi-supervised protocol: first and last frames are not scored; per object the mean over
  frames (M), the recall (fraction of frames with value > 0.5, R) and the decay (D: mean of the
  first minus mean of the last of 4 bins cut at ``round(linspace(1, n, 5)) - 1``, both ends
  included, exactly as ``db_statistics``); the final numbers are means over objects and
  J&F = (J-Mean + F-Mean) / 2. The official semi-supervised evaluation passes *no* void mask
  (void pixels are background there); so does :func:`evaluate_semisupervised` unless ``void``
  is given. ``db_statistics`` casts the bin edges to uint8 (wrong past 256 frames); we use
  int64, the same on every DAVIS sequence.
"""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

__all__ = [
    "jaccard",
    "boundary_map",
    "disk",
    "boundary_radius",
    "boundary_f",
    "db_statistics",
    "masks_from_label_maps",
    "evaluate_semisupervised",
    "evaluate_vos_sequences",
]


def jaccard(gt, pred, void=None):
    """Region similarity J of ``(..., H, W)`` masks (``db_eval_iou``); float or per-frame array."""
    gt = np.asarray(gt).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: gt {gt.shape}, pred {pred.shape}")
    keep = np.ones_like(gt) if void is None else ~_check_void(void, gt.shape)
    inter = np.sum(gt & pred & keep, axis=(-2, -1))
    union = np.sum((gt | pred) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    j = np.where(union == 0, 1.0, j)
    return float(j) if j.ndim == 0 else j


def _check_void(void, shape) -> np.ndarray:
    void = np.asarray(void).astype(bool)
    if void.shape != shape:
        raise ValueError(f"void mask shape {void.shape} differs from mask shape {shape}")
    return void


def boundary_map(seg) -> np.ndarray:
    """1-pixel boundary of a binary ``(H, W)`` mask (``_seg2bmap`` at the same resolution): a
    pixel that differs from its E, S or SE neighbour; in the last row only E is compared (outside
    = background), in the last column only S, and the bottom-right pixel is never boundary."""
    seg = np.asarray(seg).astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"boundary_map takes one (H, W) mask, got shape {seg.shape}")
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def disk(radius) -> np.ndarray:
    """``skimage.morphology.disk(radius)``: uint8 mask of points with ``x^2 + y^2 <= r^2``."""
    r = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(r, r)
    return ((x**2 + y**2) <= radius**2).astype(np.uint8)


def boundary_radius(shape: Tuple[int, int], bound_th: float = 0.008) -> float:
    """Dilation radius: ``bound_th`` pixels if >= 1, else ``ceil(bound_th * ||(H, W)||)``."""
    return bound_th if bound_th >= 1 else float(np.ceil(bound_th * np.linalg.norm(shape)))


def _f_one(gt, pred, void, bound_th) -> float:
    keep = np.ones_like(gt) if void is None else ~void
    fg_b = boundary_map(pred & keep)
    gt_b = boundary_map(gt & keep)
    kernel = disk(boundary_radius(gt.shape, bound_th))
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = float(np.sum(fg_b & (gt_dil > 0))) / n_fg
        recall = float(np.sum(gt_b & (fg_dil > 0))) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def boundary_f(gt, pred, void=None, bound_th: float = 0.008):
    """Boundary F-measure of ``(H, W)`` or ``(T, H, W)`` masks (``db_eval_boundary``)."""
    gt = np.asarray(gt).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: gt {gt.shape}, pred {pred.shape}")
    void = None if void is None else _check_void(void, gt.shape)
    if gt.ndim == 2:
        return _f_one(gt, pred, void, bound_th)
    if gt.ndim == 3:
        return np.array([_f_one(gt[t], pred[t], None if void is None else void[t], bound_th) for t in range(len(gt))])
    raise ValueError(f"boundary_f takes (H, W) or (T, H, W) masks, got shape {gt.shape}")


def db_statistics(per_frame) -> Tuple[float, float, float]:
    """(mean, recall, decay) of per-frame values (davis2017 ``utils.db_statistics``)."""
    v = np.asarray(per_frame, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no frames to summarise")
    mean = float(np.nanmean(v))
    recall = float(np.nanmean(v > 0.5))
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def masks_from_label_maps(labels, void_label: int = 255) -> Tuple[np.ndarray, np.ndarray]:
    """DAVIS-2017 label maps ``(T, H, W)`` (0 background, 1..K objects, 255 void) ->
    ``(K, T, H, W)`` bool object masks and the ``(T, H, W)`` void mask (``DAVIS.get_all_masks``:
    K = largest id present, void pixels are background in the object masks)."""
    labels = np.asarray(labels)
    void = labels == void_label
    ids = labels[~void]
    k = int(ids.max()) if ids.size else 0
    masks = np.stack([(labels == i) for i in range(1, k + 1)]) if k else np.zeros((0,) + labels.shape, bool)
    return masks, void


def evaluate_semisupervised(gt, pred, *, void=None, skip_first_last: bool = True, bound_th: float = 0.008) -> dict:
    """J, F and J&F of one sequence under the DAVIS semi-supervised protocol.

    ``gt`` is ``(K, T, H, W)`` object masks (or ``(T, H, W)`` for one object); ``pred`` the same,
    or with fewer objects (missing ones count as empty, as in the toolkit; more is an error).
    Returns ``J``/``F`` dicts with ``mean``, ``recall``, ``decay`` (means over objects),
    ``JF`` = (J mean + F mean) / 2, ``per_object`` (list of dicts) and per-frame arrays
    ``J_frames``/``F_frames`` of shape ``(K, T')``.
    """
    gt = np.asarray(gt).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if gt.ndim == 3:
        gt = gt[None]
    if pred.ndim == 3:
        pred = pred[None]
    if gt.ndim != 4 or pred.ndim != 4:
        raise ValueError(f"expected (K, T, H, W) or (T, H, W) masks, got gt {gt.shape}, pred {pred.shape}")
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(f"pred frames/size {pred.shape[1:]} differ from gt {gt.shape[1:]}")
    if pred.shape[0] > gt.shape[0]:
        raise ValueError(f"pred has {pred.shape[0]} objects but gt only {gt.shape[0]}")
    if pred.shape[0] < gt.shape[0]:
        pad = np.zeros((gt.shape[0] - pred.shape[0],) + pred.shape[1:], bool)
        pred = np.concatenate([pred, pad])
    if void is not None:
        void = _check_void(void, gt.shape[1:])
    if skip_first_last:
        if gt.shape[1] < 3:
            raise ValueError(f"{gt.shape[1]} frames: the protocol skips the first and last, nothing left to score")
        gt, pred = gt[:, 1:-1], pred[:, 1:-1]
        void = None if void is None else void[1:-1]
    if gt.shape[0] == 0:
        raise ValueError("no object to evaluate")
    j_frames = np.stack([np.atleast_1d(jaccard(g, p, void)) for g, p in zip(gt, pred)])
    f_frames = np.stack([boundary_f(g, p, void, bound_th) for g, p in zip(gt, pred)])
    per_object = []
    for jf, ff in zip(j_frames, f_frames):
        jm, jr, jd = db_statistics(jf)
        fm, fr, fd = db_statistics(ff)
        per_object.append({"J": {"mean": jm, "recall": jr, "decay": jd}, "F": {"mean": fm, "recall": fr, "decay": fd}})

    out = _summary(per_object)
    out.update(per_object=per_object, J_frames=j_frames, F_frames=f_frames)
    return out


def _summary(per_object) -> dict:
    def avg(metric, stat):
        return float(np.mean([o[metric][stat] for o in per_object]))

    J = {s: avg("J", s) for s in ("mean", "recall", "decay")}
    F = {s: avg("F", s) for s in ("mean", "recall", "decay")}
    return {"JF": (J["mean"] + F["mean"]) / 2, "J": J, "F": F}


def evaluate_vos_sequences(sequences, *, skip_first_last: bool = True, bound_th: float = 0.008) -> dict:
    """Dataset-level DAVIS numbers over ``(gt, pred)`` or ``(gt, pred, void)`` sequences: every
    object of every sequence weighs the same (davis2017 ``evaluation_method.py``). Returns ``JF``,
    ``J``, ``F`` as :func:`evaluate_semisupervised` and ``per_sequence`` (its full results)."""
    per_sequence, objects = [], []
    for i, seq in enumerate(sequences):
        void = seq[2] if len(seq) > 2 else None
        try:
            res = evaluate_semisupervised(seq[0], seq[1], void=void, skip_first_last=skip_first_last, bound_th=bound_th)
        except ValueError as err:
            raise ValueError(f"sequence {i}: {err}") from None
        per_sequence.append(res)
        objects.extend(res["per_object"])
    if not objects:
        raise ValueError("no sequence to evaluate")
    out = _summary(objects)
    out["per_sequence"] = per_sequence
    return out
