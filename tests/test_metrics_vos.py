import numpy as np
import pytest

from regionlm.eval.metrics.vos import (
    boundary_f,
    boundary_map,
    boundary_radius,
    db_statistics,
    disk,
    evaluate_semisupervised,
    evaluate_vos_sequences,
    jaccard,
    masks_from_label_maps,
)

from shared_data import DATA
DAVIS_MASKS = DATA / "davis-car-shadow" / "masks"


def _square(h, w, y0, x0, size):
    m = np.zeros((h, w), bool)
    m[y0 : y0 + size, x0 : x0 + size] = True
    return m


def test_jaccard_known_values_and_void():
    gt = _square(10, 10, 0, 0, 4)  # 16 px
    pred = _square(10, 10, 0, 2, 4)  # overlap 8, union 24
    assert jaccard(gt, pred) == pytest.approx(8 / 24)
    void = np.zeros((10, 10), bool)
    void[:, 4:] = True  # hides 8 pred-only pixels
    assert jaccard(gt, pred, void) == pytest.approx(8 / 16)
    empty = np.zeros((10, 10), bool)
    assert jaccard(empty, empty) == 1.0
    assert jaccard(gt, empty) == 0.0
    assert jaccard(np.stack([gt, empty]), np.stack([gt, empty])) == pytest.approx([1.0, 1.0])


def test_boundary_map_replicates_seg2bmap():
    seg = np.zeros((4, 5), bool)
    seg[1:3, 1:3] = True
    expected = np.array(
        [
            [1, 1, 1, 0, 0],  # differs from its S / SE neighbour
            [1, 0, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        bool,
    )
    assert np.array_equal(boundary_map(seg), expected)
    # the last row compares E only, the last column S only: a full mask has no boundary
    assert not boundary_map(np.ones((3, 3), bool)).any()
    right = np.zeros((3, 3), bool)
    right[:, 2] = True  # touching the right border: only its left neighbours are boundary
    assert np.array_equal(boundary_map(right), np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], bool))


def test_disk_and_radius():
    assert np.array_equal(disk(1), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))
    assert disk(8).shape == (17, 17) and disk(8).sum() == 197
    assert boundary_radius((480, 854)) == 8.0
    assert boundary_radius((480, 854), bound_th=3) == 3


def test_boundary_f_empty_cases():
    empty = np.zeros((20, 20), bool)
    sq = _square(20, 20, 5, 5, 6)
    assert boundary_f(empty, empty) == 1.0  # both empty
    assert boundary_f(sq, empty) == 0.0  # empty pred, non-empty gt: P=1, R=0
    assert boundary_f(empty, sq) == 0.0  # non-empty pred, empty gt: P=0, R=1
    assert boundary_f(sq, sq) == 1.0


def test_boundary_f_known_value():
    # 200x200 -> radius ceil(0.008 * 282.8) = 3 px; a square shifted by 10 px to the right
    gt = _square(200, 200, 50, 50, 40)
    pred = _square(200, 200, 50, 60, 40)
    b_gt, b_pred = boundary_map(gt), boundary_map(pred)
    binary_dilation = pytest.importorskip("scipy.ndimage").binary_dilation  # independent of cv2

    k = disk(3).astype(bool)
    p = (b_pred & binary_dilation(b_gt, k)).sum() / b_pred.sum()
    r = (b_gt & binary_dilation(b_pred, k)).sum() / b_gt.sum()
    assert boundary_f(gt, pred) == pytest.approx(2 * p * r / (p + r), abs=1e-12)
    # each boundary has 160 px; of the shifted one, 34 (top row) + 33 (bottom row) + 7 (left column
    # ends near the GT's top and bottom rows) lie within 3 px of the GT boundary; symmetric for R
    assert p == pytest.approx(r) and p == pytest.approx(74 / 160)


def test_db_statistics_decay_bins():
    v = np.arange(8) / 7
    mean, recall, decay = db_statistics(v)
    assert mean == pytest.approx(0.5)
    assert recall == pytest.approx(4 / 8)  # > 0.5 strictly
    # bins from round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7], ends included: [0:3] and [5:8]
    assert decay == pytest.approx((0 + 1 + 2) / 21 - (5 + 6 + 7) / 21)


def test_semisupervised_skips_first_and_last_frames():
    gt = np.stack([_square(30, 30, 5, 5, 10)] * 5)
    pred = gt.copy()
    pred[0] = False
    pred[-1] = False  # wrong only on the frames that are not scored
    r = evaluate_semisupervised(gt, pred)
    assert r["JF"] == 1.0 and r["J_frames"].shape == (1, 3)
    r = evaluate_semisupervised(gt, pred, skip_first_last=False)
    assert r["J"]["mean"] == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="nothing left"):
        evaluate_semisupervised(gt[:2], pred[:2])


def test_missing_pred_objects_are_empty_and_label_maps():
    labels = np.zeros((4, 12, 12), np.uint8)
    labels[:, 1:5, 1:5] = 1
    labels[:, 6:10, 6:10] = 2
    labels[:, 0, :] = 255
    masks, void = masks_from_label_maps(labels)
    assert masks.shape == (2, 4, 12, 12) and void[:, 0].all() and not masks[:, :, 0].any()
    r = evaluate_semisupervised(masks, masks[:1])
    assert r["per_object"][0]["J"]["mean"] == 1.0 and r["per_object"][1]["J"]["mean"] == 0.0
    assert r["J"]["mean"] == 0.5
    with pytest.raises(ValueError, match="objects"):
        evaluate_semisupervised(masks[:1], masks)
    both = evaluate_vos_sequences([(masks, masks), (masks[:1], np.zeros_like(masks[:1]))])
    assert both["J"]["mean"] == pytest.approx(2 / 3)  # every object weighs the same


def _davis_masks():
    if not DAVIS_MASKS.is_dir():
        pytest.skip(f"shared data not found at {DAVIS_MASKS}")
    from PIL import Image

    files = sorted(DAVIS_MASKS.glob("*.png"))
    return np.stack([np.array(Image.open(f)) == 255 for f in files])


def test_davis_gt_vs_gt_is_perfect():
    gt = _davis_masks()
    assert gt.shape == (40, 480, 854)
    r = evaluate_semisupervised(gt, gt)
    assert r["J"] == {"mean": 1.0, "recall": 1.0, "decay": 0.0}
    assert r["F"] == {"mean": 1.0, "recall": 1.0, "decay": 0.0}
    assert r["JF"] == 1.0 and r["J_frames"].shape == (1, 38)


def test_davis_shift_lowers_f_more_than_j():
    gt = _davis_masks()[::6]  # 7 frames are enough
    shifted = np.roll(gt, 16, axis=2)  # 16 px right: twice the 8 px boundary tolerance
    r = evaluate_semisupervised(gt, shifted)
    assert r["J"]["mean"] < 1.0 and r["F"]["mean"] < r["J"]["mean"]
    small = evaluate_semisupervised(gt, np.roll(gt, 4, axis=2))  # within tolerance: F stays 1
    assert small["F"]["mean"] == 1.0 and small["J"]["mean"] < 1.0
