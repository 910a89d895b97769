import math

import numpy as np
import pytest

from regionlm.eval.metrics.tracking import (
    evaluate_sequences,
    iou_xywh,
    repair_predictions,
    sequence_errors,
)

GT = [[10, 10, 20, 20], [50, 50, 40, 20]]
PRED = [[0, 0, 5, 5], [60, 55, 40, 20]]


def test_worked_example_frame_errors():
    e = sequence_errors(GT, PRED)
    assert e["iou"][0] == 1.0  # frame 0 overwritten by GT
    assert e["iou"][1] == pytest.approx(0.391304, abs=1e-6)
    assert e["iou"][1] == pytest.approx(450 / 1150, abs=1e-12)
    assert e["center_error"][1] == pytest.approx(11.180340, abs=1e-6)
    assert e["norm_center_error"][1] == pytest.approx(0.353553, abs=1e-6)


def test_worked_example_part1():
    r = evaluate_sequences([(GT, PRED)])
    assert r["auc"] / 100 == pytest.approx(0.666667, abs=1e-6)
    assert r["auc"] == pytest.approx(100 * (20 + 8) / (2 * 21), abs=1e-9)
    assert r["precision"] / 100 == pytest.approx(1.0, abs=1e-6)
    assert r["norm_precision"] / 100 == pytest.approx(0.5, abs=1e-6)
    assert r["op50"] / 100 == pytest.approx(0.5, abs=1e-6)
    assert r["op75"] / 100 == pytest.approx(0.5, abs=1e-6)


def test_worked_example_part2_absent_frame():
    gt = GT + [[0, 0, 0, 0]]
    pred = PRED + [[100, 100, 30, 30]]
    absent = [False, False, True]
    r = evaluate_sequences([(gt, pred, absent)])
    assert r["auc"] / 100 == pytest.approx(0.444444, abs=1e-6)
    assert r["precision"] / 100 == pytest.approx(0.666667, abs=1e-6)
    assert r["norm_precision"] / 100 == pytest.approx(0.333333, abs=1e-6)
    e = sequence_errors(gt, pred, absent)
    assert e["iou"][2] == -1 and math.isinf(e["center_error"][2]) and math.isinf(e["norm_center_error"][2])
    r = evaluate_sequences([(gt, pred, absent)], exclude_invalid_frames=True)
    assert r["auc"] / 100 == pytest.approx(0.666667, abs=1e-6)
    assert r["precision"] / 100 == pytest.approx(1.0, abs=1e-6)
    assert r["norm_precision"] / 100 == pytest.approx(0.5, abs=1e-6)


def test_invalid_gt_size_without_absent_flag_is_failure():
    gt = GT + [[5, 5, 0, 10]]
    pred = PRED + [[5, 5, 3, 10]]
    r = evaluate_sequences([(gt, pred)])
    assert r["auc"] == pytest.approx(100 * 28 / 63)


def test_perfect_tracker_auc_is_20_over_21():
    gt = np.array([[1, 2, 30, 40], [3, 4, 30, 40], [5, 6, 31, 41]], float)
    r = evaluate_sequences([(gt, gt.copy())])
    assert r["auc"] == pytest.approx(100 * 20 / 21)
    assert r["precision"] == r["norm_precision"] == r["op50"] == r["op75"] == 100.0


def test_thresholds_strict_success_and_inclusive_precision():
    gt = [[0, 0, 10, 10], [0, 0, 10, 10]]
    pred = [[0, 0, 10, 10], [0, 0, 5, 10]]  # frame 1: IoU exactly 0.5
    r = evaluate_sequences([(gt, pred)])
    assert r["op50"] == 50.0  # 0.5 > 0.5 is false
    gt = [[0, 0, 10, 10], [0, 0, 10, 10]]
    pred = [[0, 0, 10, 10], [20, 0, 10, 10]]  # frame 1: centre error exactly 20 px
    r = evaluate_sequences([(gt, pred)])
    assert r["precision"] == 100.0
    assert r["precision_curve"][19] == 0.5


def test_first_frame_overwrite_option():
    r = evaluate_sequences([(GT, PRED)], first_frame_gt=False)
    assert r["auc"] == pytest.approx(100 * 8 / 42)
    assert r["precision"] == 50.0


def test_bad_predictions_take_previous_frame():
    gt = [[0, 0, 10, 10]] * 4
    pred = [[0, 0, 10, 10], [0, 0, 10, 10], [np.nan, 0, 10, 10], [0, 0, 0, 10]]
    fixed, missing = repair_predictions(pred, gt)
    assert np.array_equal(fixed[2], [0, 0, 10, 10]) and np.array_equal(fixed[3], [0, 0, 10, 10])
    assert not missing.any()
    assert evaluate_sequences([(gt, pred)])["auc"] == pytest.approx(100 * 20 / 21)


def test_bad_first_frame_without_overwrite_is_a_miss():
    gt = [[0, 0, 10, 10]] * 3
    pred = [[0, 0, -1, 10], [0, 0, 0, 0], [0, 0, 10, 10]]
    e = sequence_errors(gt, pred, first_frame_gt=False)
    assert list(e["iou"][:2]) == [0.0, 0.0] and np.isinf(e["center_error"][:2]).all()
    assert e["iou"][2] == 1.0
    # with the overwrite on, frame 1 copies the GT box of frame 0
    e = sequence_errors(gt, pred, first_frame_gt=True)
    assert list(e["iou"]) == [1.0, 1.0, 1.0]


def test_sequences_weigh_the_same():
    short_perfect = ([[0, 0, 10, 10]] * 2, [[0, 0, 10, 10]] * 2)
    long_half = ([[0, 0, 10, 10]] * 10, [[0, 0, 10, 10]] * 5 + [[50, 50, 10, 10]] * 5)
    r = evaluate_sequences([short_perfect, long_half])
    assert r["auc"] == pytest.approx(100 * (20 / 21 + 0.5 * 20 / 21) / 2)
    assert r["per_sequence_auc"] == pytest.approx([100 * 20 / 21, 50 * 20 / 21])


def test_length_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"sequence 0: length mismatch: 2 GT boxes but 1 predicted"):
        evaluate_sequences([(GT, PRED[:1])])
    with pytest.raises(ValueError, match="absent flags"):
        evaluate_sequences([(GT, PRED, [False])])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        evaluate_sequences([(GT, [1, 2, 3])])


def test_all_invalid_sequence_is_skipped_when_excluding():
    bad = ([[0, 0, 0, 0]] * 2, [[0, 0, 5, 5]] * 2)
    r = evaluate_sequences([(GT, PRED), bad], exclude_invalid_frames=True)
    assert r["skipped_sequences"] == [1] and r["n_sequences"] == 1
    assert r["auc"] == pytest.approx(100 * 28 / 42)


def test_iou_xywh_matches_definition():
    assert iou_xywh([[0, 0, 10, 10]], [[5, 0, 10, 10]])[0] == pytest.approx(50 / 150)
    assert iou_xywh([[0, 0, 10, 10]], [[20, 0, 10, 10]])[0] == 0.0
