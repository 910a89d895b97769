"""benchmarks/objects_pipeline.py: why a visible object matched no mask (merged, fragment, no mask)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import objects_pipeline  # noqa: E402


def _box(y1, y2, x1, x2):
    m = np.zeros((20, 20), bool)
    m[y1:y2, x1:x2] = True
    return m


def test_miss_kind():
    truth = _box(0, 4, 0, 4)  # 16 pixels
    kind = objects_pipeline.miss_kind
    assert kind(truth, [_box(0, 4, 0, 12)]) == "merged"  # all of it, in a mask three times its size
    assert kind(truth, [_box(0, 1, 0, 4)]) == "fragment"  # a quarter of it, nothing else
    assert kind(truth, []) == "no mask"
    assert kind(truth, [_box(10, 14, 10, 14)]) == "no mask"  # elsewhere
    # a mask sharing one row with it (IoU 4 / 28): a quarter of each, neither merged nor a fragment
    assert kind(truth, [_box(3, 7, 0, 4)]) == "other"
    # the mask overlapping it most decides: the fragment beats the far larger blob that barely touches it
    assert kind(truth, [_box(3, 20, 3, 20), _box(0, 2, 0, 4)]) == "fragment"
