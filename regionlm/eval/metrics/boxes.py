"""Box IoU in xyxy and referring expression comprehension accuracy (RefCOCO Acc@0.5).

* ``box_iou_xyxy`` default is the continuous convention (no +1), as torchvision
  ``box_iou`` and Shikra's evaluation; ``inclusive=True`` is the "+1 pixel" convention of
  MiniGPT-v2 (``w = x2 - x1 + 1``). (0,0,10,10) vs (5,0,15,10): 1/3 continuous, 0.375 inclusive.
* ``rec_accuracy``: a hit iff IoU > threshold (strict, 0.5); accuracy = hits / samples, an
  unparseable answer (``None``) or a non-finite box is a miss, never dropped.

Boxes with ``x2 < x1`` (or ``y2 < y1``) have zero area here (torchvision would give a negative
area); a zero union gives IoU 0.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["box_iou_xyxy", "rec_accuracy"]


def box_iou_xyxy(a, b, inclusive: bool = False):
    """IoU of ``(..., 4)`` xyxy boxes ``a`` and ``b`` (broadcast elementwise, not pairwise).

    Returns a float for single boxes, else an array.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 coordinates (x1, y1, x2, y2), got shapes {a.shape} and {b.shape}")
    one = 1.0 if inclusive else 0.0

    def area(x):
        return np.clip(x[..., 2] - x[..., 0] + one, 0, None) * np.clip(x[..., 3] - x[..., 1] + one, 0, None)

    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one, 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one, 0, None)
    inter = iw * ih
    union = area(a) + area(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return float(iou) if iou.ndim == 0 else iou


def rec_accuracy(
    predictions: Sequence[Optional[Sequence[float]]],
    ground_truths: Sequence[Sequence[float]],
    threshold: float = 0.5,
    inclusive: bool = False,
) -> dict:
    """Acc@threshold for referring expression comprehension.

    ``predictions[i]`` is an xyxy box or ``None`` (the answer did not parse). Returns
    ``accuracy`` (percent), ``hits``, ``total``, ``ious`` (NaN for misses without a box) and
    ``hit`` (per-sample bools).
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predictions but {len(ground_truths)} ground-truth boxes")
    if len(ground_truths) == 0:
        raise ValueError("no samples to evaluate")
    ious, hit = [], []
    for pred, gt in zip(predictions, ground_truths):
        if pred is None:
            ious.append(float("nan"))
            hit.append(False)
            continue
        iou = box_iou_xyxy(pred, gt, inclusive=inclusive)
        ok = bool(np.isfinite(iou) and iou > threshold)
        ious.append(iou)
        hit.append(ok)
    hits = int(sum(hit))
    return {
        "accuracy": 100.0 * hits / len(hit),
        "hits": hits,
        "total": len(hit),
        "ious": np.asarray(ious, dtype=np.float64),
        "hit": hit,
    }
