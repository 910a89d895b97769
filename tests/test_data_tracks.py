"""Box-track formats: ElysiumTrack-1M, VideoRef45K, LaSOT/GOT-10k/OTB sequence folders and VOT."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regionlm.data import load, load_elysium, load_ref45k, load_sot, load_sot_sequence, load_vot, polygons_to_xywh
from regionlm.errors import DataFormatError

from shared_data import DATA, real


# ----------------------------------------------------------------- Elysium

def elysium_record(rid="e1", n=3):
    return {"source": "webvid", "id": rid, "vid": "v1", "metadata": {"clip": 0},
            "frames": [f"frames/v1/{i:06d}.jpg" for i in range(n)], "object_class": "dog",
            "box": [[0.1, 0.2, 0.5, 0.6]] * n, "object_description": "a brown dog", "frame_size": [640, 360]}


def test_elysium_pixel_boxes_and_defects(tmp_path):
    short = elysium_record("e2")
    short["box"] = short["box"][:2]
    outside = elysium_record("e3")
    outside["box"] = [[0.1, 0.2, 0.5, 0.6], [0.1, 0.2, 1.2, 0.6], [0.1, 0.2, 0.5, 0.6]]
    flipped = elysium_record("e4")
    flipped["box"][2] = [0.5, 0.2, 0.1, 0.6]
    path = tmp_path / "elysium.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [elysium_record(), short, outside, flipped]))

    with pytest.raises(DataFormatError, match="2 boxes for 3 frames") as info:
        load_elysium(path)
    assert (info.value.file, info.value.record, info.value.field) == (str(path), "e2", "box")

    result = load(path, "elysium", errors="skip")
    (track,) = result.records
    np.testing.assert_allclose(track.boxes[0], [64, 72, 320, 216])
    assert track.frame_size == (640, 360) and track.object_class == "dog" and len(track.frames) == 3
    assert [(s.record, s.field) for s in result.skipped] == [("e2", "box"), ("e3", "box[1]"), ("e4", "box[2]")]
    assert "outside [0, 1]" in result.skipped[1].reason and "x2 < x1" in result.skipped[2].reason


# ----------------------------------------------------------------- VideoRef45K

def test_videoref45k(tmp_path):
    good = {"video_name": "vid7", "caption": "A man walks.", "frame_path": "frames/vid7",
            "frame_id": ["0001.jpg", "0002.jpg", "0003.jpg"], "track_list": [[10, 20, 50, 80], [], [12, 22, 52, 82]],
            "key_frame_box": [10, 20, 50, 80], "key_frame_id": "0001.jpg"}
    bad = {**good, "track_list": good["track_list"][:2]}
    path = tmp_path / "ref45k.json"
    path.write_text(json.dumps([good, bad]))
    result = load_ref45k(path, errors="skip")
    (track,) = result.records
    assert track.present.tolist() == [True, False, True] and np.isnan(track.boxes[1]).all()
    assert track.key_frame_box == [10, 20, 50, 80]
    (skip,) = result.skipped
    assert (skip.record, skip.field) == ("#1 vid7", "track_list") and "2 entries for 3 frames" in skip.reason


# ----------------------------------------------------------------- LaSOT / GOT-10k / OTB

def make_sequence(root: Path, name: str, gt_lines, n_frames=4, subdir="img", flags=None):
    seq = root / name
    frames = seq / subdir if subdir else seq
    frames.mkdir(parents=True)
    for i in range(n_frames):
        Image.new("RGB", (32, 24)).save(frames / f"{i + 1:08d}.jpg")
    (seq / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    for fname, text in (flags or {}).items():
        (seq / fname).write_text(text)
    return seq


def test_lasot_sequence_with_mixed_separators_and_flags(tmp_path):
    seq = make_sequence(tmp_path, "cat-1", ["1,2,10,12", "2 3 10 12", "3\t4\t10\t12", "4,\t5, 0,0"],
                        flags={"full_occlusion.txt": "0,1,0,0", "out_of_view.txt": "0,0,1,0\n"})
    s = load_sot_sequence(seq)
    assert s.name == "cat-1" and len(s) == 4 and s.frames_dir == seq / "img"
    np.testing.assert_array_equal(s.boxes_xywh[2], [3, 4, 10, 12])
    assert s.absent.tolist() == [False, True, True, True]  # occluded, out of view, zero-size box
    np.testing.assert_array_equal(s.boxes_xyxy[0], [1, 2, 11, 14])


def test_got10k_sequence_frames_in_folder_and_absence_label(tmp_path):
    seq = make_sequence(tmp_path, "GOT-10k_Val_000001", ["1,2,10,12"] * 3, n_frames=3, subdir=None,
                        flags={"absence.label": "0\n0\n1\n"})
    s = load(seq, "got10k").records[0]
    assert s.frames_dir == seq and s.absent.tolist() == [False, False, True]


def test_groundtruth_line_count_mismatch_names_file_and_counts(tmp_path):
    seq = make_sequence(tmp_path, "dog-2", ["1,2,10,12"] * 3, n_frames=4)
    with pytest.raises(DataFormatError) as info:
        load_sot_sequence(seq)
    msg = str(info.value)
    assert info.value.file == str(seq / "groundtruth.txt") and info.value.record == "dog-2"
    assert "3 lines in groundtruth.txt but 4 frames" in msg


def test_unparseable_groundtruth_line_names_the_line(tmp_path):
    seq = make_sequence(tmp_path, "dog-3", ["1,2,10,12", "1,2,x,12", "1,2,10,12", "1,2,10,12"])
    with pytest.raises(DataFormatError, match=r"field 'line 2': cannot parse '1,2,x,12'"):
        load_sot_sequence(seq)
    seq = make_sequence(tmp_path, "dog-4", ["1,2,10,12", "1,2,10", "1,2,10,12", "1,2,10,12"])
    with pytest.raises(DataFormatError, match=r"field 'line 2': expected 4 numbers x,y,w,h, got 3"):
        load_sot_sequence(seq)


def test_bad_flag_file(tmp_path):
    seq = make_sequence(tmp_path, "cat-2", ["1,2,10,12"] * 4, flags={"full_occlusion.txt": "0,1,0"})
    with pytest.raises(DataFormatError, match="3 flags in full_occlusion.txt but 4 frames"):
        load_sot_sequence(seq)


def test_folder_of_sequences_skip_mode(tmp_path):
    # LaSOT nests sequences in class folders; GOT-10k/OTB put them directly under the root.
    make_sequence(tmp_path / "cat", "cat-1", ["1,2,10,12"] * 4)
    make_sequence(tmp_path / "cat", "cat-2", ["1,2,10,12"] * 3)
    make_sequence(tmp_path, "bird-1", ["1,2,10,12"] * 4)
    with pytest.raises(DataFormatError, match="cat-2"):
        load_sot(tmp_path)
    result = load_sot(tmp_path, errors="skip")
    assert [s.name for s in result] == ["bird-1", "cat-1"]
    assert [s.record for s in result.skipped] == ["cat-2"] and "3 lines" in result.skipped[0].reason


# ----------------------------------------------------------------- VOT

def _by_hand(line: str):
    """Centre- and area-preserving axis-aligned box of one VOT polygon, written out step by step."""
    v = [float(t) for t in line.split(",")]
    xs, ys = v[0::2], v[1::2]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    shoelace = 0.5 * abs(sum(xs[i] * ys[(i + 1) % 4] - xs[(i + 1) % 4] * ys[i] for i in range(4)))
    s = math.sqrt(shoelace / ((x2 - x1) * (y2 - y1)))
    w, h = s * (x2 - x1), s * (y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return [cx - w / 2, cy - h / 2, w, h]


def test_vot_bag_polygons_to_boxes():
    path = real("vot15-bag")
    seq = load_vot(path).records[0]
    assert len(seq) == 196 and seq.frames_dir == path / "frames" and not seq.absent.any()
    first = (path / "groundtruth.txt").read_text().splitlines()[0]
    assert first.startswith("291.827,203.603,396.382,264.289")
    np.testing.assert_allclose(seq.boxes_xywh[0], _by_hand(first), rtol=1e-9)
    # The rotated rectangle's sides are ~120.9 and ~91.2 px: the box keeps that area.
    assert seq.boxes_xywh[0, 2] * seq.boxes_xywh[0, 3] == pytest.approx(120.89 * 91.22, rel=1e-3)
    with Image.open(seq.frames[0]) as im:
        assert im.size == (480, 360)
    x, y, w, h = seq.boxes_xywh.T
    assert (w > 10).all() and (h > 10).all()
    assert (x > -5).all() and (y > -5).all() and (x + w < 485).all() and (y + h < 365).all()
    assert seq.polygons.shape == (196, 8)


def test_vot_axis_aligned_nan_and_bad_lines(tmp_path):
    seq = make_sequence(tmp_path, "vot-a", ["1,1,11,1,11,6,1,6", "NaN,NaN,NaN,NaN,NaN,NaN,NaN,NaN", "2,3,4,5",
                                            "0,5,5,0,10,5,5,10"], subdir="color")
    s = load_vot(seq).records[0]
    np.testing.assert_allclose(s.boxes_xywh[0], [1, 1, 10, 5])  # an axis-aligned polygon stays as it is
    np.testing.assert_allclose(s.boxes_xywh[2], [2, 3, 4, 5])
    # A diamond: bbox 10x10, area 50 -> a sqrt(50) square about the same centre.
    np.testing.assert_allclose(s.boxes_xywh[3], [5 - math.sqrt(50) / 2] * 2 + [math.sqrt(50)] * 2)
    assert s.absent.tolist() == [False, True, False, False]

    bad = make_sequence(tmp_path, "vot-b", ["1,1,11,1,11,6,1,6", "1,1,11,1,11,6", "1,2,3", "1,2,3,4"])
    with pytest.raises(DataFormatError) as info:
        load_vot(bad)
    assert (info.value.file, info.value.record, info.value.field) == (str(bad / "groundtruth.txt"), "vot-b", "line 3")
    assert "got 3 value(s)" in info.value.reason


def test_polygons_to_xywh_vectorised():
    polys = np.array([[0, 0, 4, 0, 4, 2, 0, 2], [0, 5, 5, 0, 10, 5, 5, 10]], dtype=float)
    out = polygons_to_xywh(polys)
    np.testing.assert_allclose(out[0], [0, 0, 4, 2])
    assert out[1, 2] * out[1, 3] == pytest.approx(50)
