"""Region propagation: a region given on one frame, followed to the other frames by the classical trackers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from regionlm.errors import RegionLMError
from regionlm.model.propagation import CHUNK, MAX_TRACKED, is_box_mask, propagate_region, tracking_path
from regionlm.regions import box_to_mask, mask_to_box

N, SIZE = 12, 64


def _disc_at(t: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(mask, (10 + 3 * t, 20 + t), 6, 1, -1)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def video():
    """A red disc moving right and down past a still blue square, on a grey background."""
    frames = np.full((N, SIZE, SIZE, 3), 90, np.uint8)
    frames[:, 40:52, 8:20] = (40, 60, 200)
    for t in range(N):
        frames[t][_disc_at(t)] = (220, 40, 30)
    return frames


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_a_mask_is_followed_forward_and_backward_to_the_targets(video):
    key, targets = 5, [0, 3, 5, 8, 11]
    out = propagate_region(lambda idx: video[idx], {key: _disc_at(key)}, key, targets)
    assert sorted(out) == targets
    assert np.array_equal(out[key], _disc_at(key))  # the given frame keeps the given mask
    for t in targets:
        assert _iou(out[t], _disc_at(t)) > 0.7, t


def test_a_box_is_followed_as_filled_boxes(video):
    key = 0
    given = box_to_mask(mask_to_box(_disc_at(key)), SIZE, SIZE)
    assert is_box_mask(given) and not is_box_mask(_disc_at(key))
    out = propagate_region(lambda idx: video[idx], {key: given}, key, [0, 6, 11])
    for t in (6, 11):
        assert is_box_mask(out[t])
        truth = box_to_mask(mask_to_box(_disc_at(t)), SIZE, SIZE)
        assert _iou(out[t], truth) > 0.6, t


def test_given_frames_are_kept_and_only_the_targets_are_filled(video):
    other = np.zeros((SIZE, SIZE), bool)
    other[0:3, 0:3] = True
    out = propagate_region(lambda idx: video[idx], {2: _disc_at(2), 7: other}, 2, [2, 7, 9])
    assert sorted(out) == [2, 7, 9] and np.array_equal(out[7], other)


def test_off_changes_nothing_and_an_unknown_method_is_an_error(video):
    masks = {4: _disc_at(4)}
    out = propagate_region(lambda idx: video[idx], masks, 4, [0, 4, 8], method="off")
    assert list(out) == [4]
    with pytest.raises(RegionLMError, match="region propagation must be one of off, classical"):
        propagate_region(lambda idx: video[idx], masks, 4, [0, 4, 8], method="sam")


def test_a_long_video_is_followed_through_every_kth_frame_read_in_chunks(video):
    assert tracking_path(5, 9, [7]) == [5, 6, 7, 8, 9] and tracking_path(5, 0, [2]) == [5, 4, 3, 2, 1, 0]
    path = tracking_path(100, 1100, [537, 1100])
    assert path[0] == 100 and path[-1] == 1100 and 537 in path and len(path) <= MAX_TRACKED + 2
    assert max(b - a for a, b in zip(path, path[1:])) <= -(-1000 // MAX_TRACKED)
    asked = []

    def get_frames(idx):  # a 2,000-frame "video": the disc's frames repeated, counting what is read
        asked.append(list(idx))
        return video[[min(i // 200, N - 1) for i in idx]]

    out = propagate_region(get_frames, {1000: _disc_at(5)}, 1000, [0, 1000, 1999])
    read = sorted({i for batch in asked for i in batch})
    assert sorted(out) == [0, 1000, 1999] and max(len(b) for b in asked) <= CHUNK
    assert len(read) <= 2 * (MAX_TRACKED + 1)


def test_large_frames_are_tracked_small_and_masks_come_back_full_size(video):
    big = np.repeat(np.repeat(video, 6, axis=1), 6, axis=2)  # 384x384: tracked at 256x256
    disc = lambda t: np.repeat(np.repeat(_disc_at(t), 6, axis=0), 6, axis=1)  # noqa: E731
    asked = []

    def get_frames(idx):
        asked.append(list(idx))
        return big[idx]

    out = propagate_region(get_frames, {0: disc(0)}, 0, [0, 5, 11])
    assert sorted(out) == [0, 5, 11] and out[11].shape == (384, 384)
    assert _iou(out[5], disc(5)) > 0.7 and _iou(out[11], disc(11)) > 0.7
    assert sorted(i for batch in asked for i in batch) == list(range(12))  # one pass forward, none backward
