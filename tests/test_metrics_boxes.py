import numpy as np
import pytest

from regionlm.eval.metrics.boxes import box_iou_xyxy, rec_accuracy


def test_iou_conventions_differ_as_documented():
    assert box_iou_xyxy((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3, abs=1e-12)
    assert box_iou_xyxy((0, 0, 10, 10), (5, 0, 15, 10), inclusive=True) == pytest.approx(0.375, abs=1e-12)
    assert round(box_iou_xyxy((0, 0, 10, 10), (5, 0, 15, 10)), 4) == 0.3333


def test_iou_edge_cases_and_broadcast():
    assert box_iou_xyxy((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou_xyxy((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching: no overlap (continuous)
    assert box_iou_xyxy((0, 0, 10, 10), (10, 0, 20, 10), inclusive=True) == pytest.approx(11 / 231)
    assert box_iou_xyxy((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0  # zero union
    ious = box_iou_xyxy(np.array([[0, 0, 10, 10], [0, 0, 4, 4]]), np.array([0, 0, 10, 10]))
    assert ious == pytest.approx([1.0, 0.16])
    with pytest.raises(ValueError, match="4 coordinates"):
        box_iou_xyxy((0, 0, 1), (0, 0, 1, 1))


def test_rec_accuracy_strict_threshold_and_unparseable_miss():
    gts = [(0, 0, 10, 10)] * 4
    preds = [
        (0, 0, 10, 10),  # IoU 1 -> hit
        (0, 0, 10, 5),  # IoU exactly 0.5 -> miss (strict >)
        None,  # unparseable answer -> miss
        (0, 0, 10, 6),  # IoU 0.6 -> hit
    ]
    r = rec_accuracy(preds, gts)
    assert r["hits"] == 2 and r["total"] == 4
    assert r["accuracy"] == pytest.approx(50.0)
    assert r["hit"] == [True, False, False, True]
    assert np.isnan(r["ious"][2])


def test_rec_accuracy_inclusive_and_errors():
    r = rec_accuracy([(0, 0, 10, 10)], [(5, 0, 15, 10)], threshold=0.35, inclusive=True)
    assert r["hits"] == 1
    r = rec_accuracy([(0, 0, 10, 10)], [(5, 0, 15, 10)], threshold=0.35)
    assert r["hits"] == 0
    assert rec_accuracy([(np.nan, 0, 1, 1)], [(0, 0, 1, 1)])["hits"] == 0
    with pytest.raises(ValueError, match="1 predictions but 2"):
        rec_accuracy([None], [(0, 0, 1, 1)] * 2)
