"""Outlining the pointed box (regionlm.model.outline): the segmenter's outline replaces a pointed box of the wrong
size, an outline of something else is refused, the first box is kept, reading in chunks changes nothing, and the
options are checked."""

from __future__ import annotations

import numpy as np
import pytest

from regionlm.errors import RegionLMError
from regionlm.eval.metrics.boxes import box_iou_xyxy
from regionlm.model.inference import _outline_config
from regionlm.model.outline import (OutlineConfig, grown, outline_box, outline_segmenter, outline_track,
                                   segmenter_view)
from regionlm.objects.classical.segment import ClassicalSegmenter

GREY = (90, 90, 90)


def frame_with(*objects, size: int = 64) -> np.ndarray:
    """A grey frame with filled rectangles ((x1, y1, x2, y2), colour)."""
    frame = np.full((size, size, 3), GREY, np.uint8)
    for (x1, y1, x2, y2), colour in objects:
        frame[y1:y2, x1:x2] = colour
    return frame


def test_grown_is_about_the_centre_and_cut_to_the_frame():
    assert grown([10, 20, 30, 30], 1.5, 64, 64) == [5.0, 17.5, 35.0, 32.5]
    assert grown([0, 0, 10, 10], 2.0, 64, 64) == [0.0, 0.0, 15.0, 15.0]
    assert grown([50, 50, 64, 60], 1.0, 64, 64) == [50.0, 50.0, 64.0, 60.0]


@pytest.mark.parametrize("pointed", [[19, 19, 31, 31], [18, 20, 30, 32], [20, 18, 32, 30]])
def test_a_pointed_box_of_the_wrong_size_becomes_the_objects_outline(pointed):
    # a 14 x 14 object (it grew from the first box's 12 x 12); the pointer put its 12 x 12 box on it, off centre
    frame = frame_with(((18, 18, 32, 32), (220, 40, 40)))
    box = outline_box(ClassicalSegmenter(), segmenter_view(frame), pointed, OutlineConfig())
    truth = np.array([18, 18, 32, 32], float)
    assert box_iou_xyxy(np.asarray(box, float), truth) >= 0.9
    assert box_iou_xyxy(np.asarray(pointed, float), truth) < 0.75  # it was worse


def test_a_large_frame_is_outlined_at_the_work_side():
    # 540 x 960, as a real mp4: GrabCut reads the crop scaled to work_side, and the box still fits the object
    # (a two-colour texture on noise; the pointer's box too small)
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 120, (540, 960, 3)).astype(np.uint8)
    frame[200:330, 400:600] = (rng.integers(0, 2, (130, 200, 1)) * np.array([[[180, 30, 30]]]) + 40).astype(np.uint8)
    seg = outline_segmenter(OutlineConfig())
    assert seg.config.grabcut_side == 128 and outline_segmenter(OutlineConfig(work_side=96)).config.grabcut_side == 96
    pointed = [410.0, 210.0, 590.0, 320.0]
    box = outline_box(seg, segmenter_view(frame), pointed, OutlineConfig())
    truth = np.array([400, 200, 600, 330], float)
    assert box_iou_xyxy(np.asarray(box, float), truth) >= 0.9
    assert box_iou_xyxy(np.asarray(pointed, float), truth) < 0.8


class FixedSegmenter:
    """A segmenter that outlines the same mask whatever the box (to test the rule, not the segmenter)."""

    def __init__(self, mask):
        self.mask, self.boxes = mask, []

    def segment(self, frame, boxes=None, points=None):
        self.boxes.append([float(v) for v in boxes[0]])
        return self.mask[None]


def test_an_outline_of_something_else_keeps_the_pointed_box():
    pointed = [20.0, 12.0, 34.0, 26.0]
    neighbour = np.zeros((64, 64), bool)
    neighbour[8:30, 32:40] = True  # reaches into the grown box: overlaps the pointed box little
    seg = FixedSegmenter(neighbour)
    assert outline_box(seg, frame_with(), pointed, OutlineConfig()) == pointed
    assert seg.boxes == [grown(pointed, 1.3, 64, 64)]  # the segmenter was asked inside the grown box
    loose = outline_box(seg, frame_with(), pointed, OutlineConfig(min_iou=0.0))
    assert loose == [32.0, 8.0, 40.0, 30.0]  # with no overlap asked for, the neighbour would have been taken
    assert outline_box(FixedSegmenter(np.zeros((64, 64), bool)), frame_with(), pointed, OutlineConfig()) == pointed
    empty = FixedSegmenter(neighbour)
    assert outline_box(empty, frame_with(), [30.0, 5.0, 30.5, 9.0], OutlineConfig()) == [30.0, 5.0, 30.5, 9.0]
    assert empty.boxes == []  # a box under a pixel wide is not segmented


def test_a_track_keeps_its_first_box_and_reads_in_chunks():
    frames = np.stack([frame_with(((10 + 3 * t, 20, 26 + 3 * t, 36), (40, 200, 60))) for t in range(6)])
    first = [10.0, 20.0, 12.0, 12.0]  # the user's box, smaller than the object: kept as given
    pointed = [first] + [[12.0 + 3 * t, 22.0, 12.0, 12.0] for t in range(1, 6)]

    def get(a, b):
        return frames[a:b]

    whole = outline_track(get, 6, pointed, OutlineConfig())
    assert whole[0] == first
    for t, (x, y, w, h) in enumerate(whole[1:], 1):
        truth = np.array([10 + 3 * t, 20, 26 + 3 * t, 36], float)
        assert box_iou_xyxy(np.array([x, y, x + w, y + h]), truth) >= 0.8
    assert outline_track(get, 6, pointed, OutlineConfig(), chunk=2) == whole


def test_bad_options_are_refused():
    with pytest.raises(RegionLMError, match="grow must be >= 1"):
        OutlineConfig(grow=0.9).validate()
    with pytest.raises(RegionLMError, match=r"min_iou must be in \[0, 1\]"):
        OutlineConfig(min_iou=1.5).validate()
    with pytest.raises(RegionLMError, match="work_side must be an integer >= 16"):
        OutlineConfig(work_side=8).validate()
    with pytest.raises(RegionLMError, match="outline must be True, False or an OutlineConfig"):
        _outline_config("yes")
    with pytest.raises(RegionLMError, match="grow"):
        _outline_config(OutlineConfig(grow=0.5))
    assert _outline_config(True) == OutlineConfig() and _outline_config(False) is None


def test_the_commands_check_outline(tmp_path, capsys):
    from regionlm.cli import main

    video = tmp_path / "v.npy"
    assert main(["track", str(video), "--region", "box:1,1,5,5@0", "--outline", "maybe", "--json"]) == 2
    assert "--outline must be on or off" in capsys.readouterr().err
    assert main(["track", str(video), "--region", "box:1,1,5,5@0", "--backend", "classical", "--outline",
                 "off"]) == 2
    assert "--outline works only with --backend model" in capsys.readouterr().err
    assert main(["eval", "--benchmark", "world-sot", "--data", str(tmp_path), "--model", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--outline", "maybe"]) == 2
    assert "--outline must be on or off" in capsys.readouterr().err
