"""Single-object tracking metrics: success AUC, precision, normalised precision, OP50/OP75.

Mirrors pytracking ``pytracking/analysis/extract_results.py`` (``calc_err_center``,
``calc_iou_overlap``, ``calc_seq_err_robust``, ``extract_results``), i.e. the LaSOT / OTB /
TrackingNet protocol as written in METRICS.md:

* boxes are ``(x, y, w, h)`` in pixels, (x, y) the top-left corner;
* IoU: intersection side = ``min(x1+w1, x2+w2) - max(x1, x2)`` clamped at 0;
* centre = ``(x + (w-1)/2, y + (h-1)/2)``; the normalised centre error divides both centres by
  the GT ``(w, h)`` before taking the distance;
* success: a frame passes threshold t iff ``IoU > t`` (strict), t in ``linspace(0, 1, 21)``,
  so a perfect tracker has AUC = 20/21;
* precision: ``error <= t``, t = 0..50 px, score at 20 px; normalised precision: t = 0..0.50
  step 0.01, score at 0.20;
* per sequence, curve = passing frames / frames; curves are averaged over sequences (each
  sequence weighs the same); AUC = mean of the averaged success curve.

Choices where pytracking and METRICS.md leave room (documented, tested):

* invalid GT (``w <= 0`` or ``h <= 0``, or marked absent) gives IoU = -1 and *both* centre
  errors = +inf, so the frame fails every threshold (pytracking's non-LaSOT branch sets the
  normalised error to -1, which would *pass*; METRICS.md's worked example requires +inf);
* ``exclude_invalid_frames=True`` drops invalid frames from numerator and denominator;
* bad predictions (NaN/inf, ``w <= 0`` or ``h <= 0``) take the previous frame's (already
  repaired) prediction. The first-frame GT overwrite is applied *before* this repair, so a bad
  frame 1 copies the GT box of frame 0; a bad frame 0 without overwrite has no prediction at
  all and counts as a miss on every metric (IoU 0, errors +inf), as do frames that copy it.
  (pytracking raises on NaN / negative sizes and only repairs zero sizes; on valid tracker
  output the two agree.)
* a length mismatch between GT and prediction is a ``ValueError`` (pytracking pads/cuts).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_AT = 20  # index of 20 px in PRECISION_THRESHOLDS
NORM_PRECISION_AT = 20  # index of 0.20 in NORM_PRECISION_THRESHOLDS

__all__ = [
    "SUCCESS_THRESHOLDS",
    "PRECISION_THRESHOLDS",
    "NORM_PRECISION_THRESHOLDS",
    "iou_xywh",
    "center_xywh",
    "center_error",
    "repair_predictions",
    "sequence_errors",
    "sequence_curves",
    "evaluate_sequences",
]


def _as_boxes(boxes, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected an (N, 4) array of (x, y, w, h) boxes, got shape {arr.shape}")
    return arr


def iou_xywh(a, b) -> np.ndarray:
    """IoU of paired ``(x, y, w, h)`` boxes, shape ``(N, 4)`` each (pytracking ``calc_iou_overlap``)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        # IoU cannot exceed 1; rounding on fractional boxes gives 1 + 1e-15, which would pass the strict
        # threshold t = 1.0 and lift a perfect tracker above the protocol's 20/21.
        return np.minimum(inter / union, 1.0)


def center_xywh(boxes) -> np.ndarray:
    """Box centres ``(x + (w-1)/2, y + (h-1)/2)`` (pytracking convention, pixel centres)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes[..., :2] + 0.5 * (boxes[..., 2:] - 1.0)


def center_error(pred, gt, normalized: bool = False) -> np.ndarray:
    """Euclidean centre distance; ``normalized`` divides both centres by the GT ``(w, h)`` first
    (pytracking ``calc_err_center``). Frames with a zero GT size give inf/nan: mask them."""
    pc, gc = center_xywh(pred), center_xywh(gt)
    if normalized:
        wh = np.asarray(gt, dtype=np.float64)[..., 2:]
        with np.errstate(divide="ignore", invalid="ignore"):
            pc, gc = pc / wh, gc / wh
    with np.errstate(invalid="ignore"):
        return np.sqrt(((pc - gc) ** 2).sum(-1))


def repair_predictions(pred, gt, first_frame_gt: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Apply the first-frame overwrite, then replace bad boxes (non-finite, ``w<=0`` or ``h<=0``)
    by the previous frame's repaired box. Returns ``(boxes, missing)``; ``missing[i]`` is True
    where no prediction exists at all (bad frame 0 without overwrite, and frames copying it)."""
    pred = _as_boxes(pred, "pred").copy()
    gt = _as_boxes(gt, "gt")
    if first_frame_gt and len(pred):
        pred[0] = gt[0]
    missing = np.zeros(len(pred), dtype=bool)
    for i in range(len(pred)):
        box = pred[i]
        if np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0:
            continue
        if i == 0:
            pred[0] = 0.0
            missing[0] = True
        else:
            pred[i] = pred[i - 1]
            missing[i] = missing[i - 1]
    return pred, missing


def sequence_errors(gt, pred, absent=None, first_frame_gt: bool = True) -> dict:
    """Per-frame IoU, centre error and normalised centre error of one sequence.

    Returns a dict with ``iou``, ``center_error``, ``norm_center_error`` (all ``(N,)``) and
    ``valid`` (GT usable: ``w > 0``, ``h > 0`` and not ``absent``). Invalid frames have IoU -1
    and errors +inf; frames with no prediction have IoU 0 and errors +inf.
    """
    gt = _as_boxes(gt, "gt")
    pred = _as_boxes(pred, "pred")
    if len(gt) != len(pred):
        raise ValueError(f"length mismatch: {len(gt)} GT boxes but {len(pred)} predicted boxes")
    if len(gt) == 0:
        raise ValueError("empty sequence: no frames to evaluate")
    pred, missing = repair_predictions(pred, gt, first_frame_gt)
    valid = np.all(np.isfinite(gt), axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    if absent is not None:
        absent = np.asarray(absent, dtype=bool).reshape(-1)
        if len(absent) != len(gt):
            raise ValueError(f"length mismatch: {len(gt)} GT boxes but {len(absent)} absent flags")
        valid &= ~absent
    iou = iou_xywh(pred, gt)
    err = center_error(pred, gt)
    nerr = center_error(pred, gt, normalized=True)
    iou[missing] = 0.0
    err[missing] = np.inf
    nerr[missing] = np.inf
    iou[~valid] = -1.0
    err[~valid] = np.inf
    nerr[~valid] = np.inf
    return {"iou": iou, "center_error": err, "norm_center_error": nerr, "valid": valid}


def sequence_curves(
    gt, pred, absent=None, first_frame_gt: bool = True, exclude_invalid_frames: bool = False
) -> Optional[dict]:
    """Success, precision and normalised-precision curves (fractions 0-1) of one sequence.

    Returns None when ``exclude_invalid_frames`` leaves no frame to score.
    """
    e = sequence_errors(gt, pred, absent, first_frame_gt)
    keep = e["valid"] if exclude_invalid_frames else np.ones_like(e["valid"])
    n = int(keep.sum())
    if n == 0:
        return None
    iou, err, nerr = e["iou"][keep], e["center_error"][keep], e["norm_center_error"][keep]
    return {
        "success": (iou[:, None] > SUCCESS_THRESHOLDS[None, :]).sum(0) / n,
        "precision": (err[:, None] <= PRECISION_THRESHOLDS[None, :]).sum(0) / n,
        "norm_precision": (nerr[:, None] <= NORM_PRECISION_THRESHOLDS[None, :]).sum(0) / n,
        "n_frames": n,
    }


def evaluate_sequences(
    sequences: Iterable[Sequence],
    first_frame_gt: bool = True,
    exclude_invalid_frames: bool = False,
) -> dict:
    """Evaluate a tracker on sequences of ``(gt, pred)`` or ``(gt, pred, absent)``.

    ``gt`` and ``pred`` are ``(N, 4)`` xywh pixel boxes, ``absent`` an optional ``(N,)`` bool
    array (True = target absent). Returns percentages (0-100) ``auc``, ``precision`` (at 20 px),
    ``norm_precision`` (at 0.20), ``op50``, ``op75``; the averaged curves (fractions 0-1)
    ``success_curve``, ``precision_curve``, ``norm_precision_curve`` with their
    ``*_thresholds``; ``per_sequence_auc`` (percent, NaN for a skipped sequence),
    ``n_sequences`` (averaged) and ``skipped_sequences`` (indices with no frame left when
    ``exclude_invalid_frames`` is on).
    """
    curves, per_seq_auc, skipped = [], [], []
    for i, seq in enumerate(sequences):
        if len(seq) not in (2, 3):
            raise ValueError(f"sequence {i}: expected (gt, pred) or (gt, pred, absent), got {len(seq)} items")
        gt, pred = seq[0], seq[1]
        absent = seq[2] if len(seq) == 3 else None
        try:
            c = sequence_curves(gt, pred, absent, first_frame_gt, exclude_invalid_frames)
        except ValueError as err:
            raise ValueError(f"sequence {i}: {err}") from None
        if c is None:
            skipped.append(i)
            per_seq_auc.append(float("nan"))
            continue
        curves.append(c)
        per_seq_auc.append(100.0 * float(c["success"].mean()))
    if not curves:
        raise ValueError("no sequence to evaluate" + (" (all frames invalid)" if skipped else ""))
    success = np.mean([c["success"] for c in curves], axis=0)
    precision = np.mean([c["precision"] for c in curves], axis=0)
    norm_precision = np.mean([c["norm_precision"] for c in curves], axis=0)
    return {
        "auc": 100.0 * float(success.mean()),
        "precision": 100.0 * float(precision[PRECISION_AT]),
        "norm_precision": 100.0 * float(norm_precision[NORM_PRECISION_AT]),
        "op50": 100.0 * float(success[10]),
        "op75": 100.0 * float(success[15]),
        "success_curve": success,
        "precision_curve": precision,
        "norm_precision_curve": norm_precision,
        "success_thresholds": SUCCESS_THRESHOLDS.copy(),
        "precision_thresholds": PRECISION_THRESHOLDS.copy(),
        "norm_precision_thresholds": NORM_PRECISION_THRESHOLDS.copy(),
        "per_sequence_auc": np.asarray(per_seq_auc),
        "n_sequences": len(curves),
        "skipped_sequences": skipped,
    }
