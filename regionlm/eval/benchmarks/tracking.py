"""Shared by the single-object tracking benchmarks (world-sot, world-rsot, lasot, vot): the pytracking / LaSOT
protocol of metrics.tracking (``auc``, ``precision``, ``norm_precision``, ``op50``, ``op75``, percent).

A prediction is one ``[x, y, w, h]`` pixel box per frame of the sequence (``null`` where the tracker gives none:
it takes the previous frame's box, as any bad box does). The first frame is overwritten by the ground truth unless
the benchmark says otherwise; frames where the target is absent count as failures (LaSOT protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import RegionLMError
from ..metrics.tracking import evaluate_sequences
from .base import Benchmark, Sample, Scores

TRACKING_KEYS = ("auc", "precision", "norm_precision", "op50", "op75")


@dataclass
class Track:
    """One sequence to score: ground truth (N, 4) xywh, absent flags (N,) and the Sample asked."""

    id: str
    gt: np.ndarray
    absent: np.ndarray
    sample: Sample


class TrackingBenchmark(Benchmark):
    task = "track"
    headline = TRACKING_KEYS
    first_frame_gt = True  # the tracker is given the first box, so its frame-0 output is replaced by the GT
    gives_init_box = True

    def samples(self, items: list) -> list[Sample]:
        return [t.sample for t in items]

    def score(self, items: list, predictions: dict) -> Scores:
        sequences, per_sample = [], []
        for t in items:
            pred = fit_boxes(t, predictions[t.id])
            sequences.append((t.gt, pred, t.absent))
            per_sample.append({"id": t.id, "num_frames": len(t.gt), "boxes": predictions[t.id]})
        res = evaluate_sequences(sequences, first_frame_gt=self.first_frame_gt)
        for row, auc in zip(per_sample, res["per_sequence_auc"]):
            row["auc"] = float(auc)
        curves = {k: np.asarray(res[k]).tolist() for k in ("success_curve", "success_thresholds", "precision_curve",
                                                          "precision_thresholds", "norm_precision_curve",
                                                          "norm_precision_thresholds")}
        details = {"first_frame_gt": self.first_frame_gt, "n_sequences": res["n_sequences"],
                   "n_frames": int(sum(len(t.gt) for t in items))}
        return Scores(metrics={k: res[k] for k in TRACKING_KEYS}, per_sample=per_sample, curves=curves,
                      details=details)


def fit_boxes(track: Track, boxes: list) -> np.ndarray:
    """A prediction (already cut to the sequence by the runner) as an (N, 4) float array, NaN rows for ``null``."""
    n = len(track.gt)
    if len(boxes) != n:
        raise RegionLMError(f"sequence {track.id}: {len(boxes)} predicted boxes but the sequence has {n} frames")
    return np.array([[np.nan] * 4 if b is None else b for b in boxes], dtype=np.float64).reshape(n, 4)


def xyxy_track_to_xywh(boxes: list) -> tuple[np.ndarray, np.ndarray]:
    """RegionWorld per-frame xyxy boxes (``null`` out of frame) -> (N, 4) xywh GT and the null mask."""
    missing = np.array([b is None for b in boxes], dtype=bool)
    arr = np.array([[0, 0, 0, 0] if b is None else b for b in boxes], dtype=np.float64).reshape(len(boxes), 4)
    return np.concatenate([arr[:, :2], arr[:, 2:] - arr[:, :2]], axis=1), missing
