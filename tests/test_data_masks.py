"""Mask formats: DAVIS (2016 and 2017 label maps) and SA-V masklets."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regionlm.data import load, load_davis, load_davis_sequence, load_sav
from regionlm.errors import DataFormatError
from regionlm.regions import mask_to_rle

from shared_data import DATA, real


# ----------------------------------------------------------------- DAVIS

def test_davis_2016_car_shadow():
    path = real("davis-car-shadow")
    (seq,) = load(path, "davis").records
    assert seq.name == "davis-car-shadow" and len(seq) == 40 and seq.mode == "2016"
    assert seq.object_ids == [1]
    car = seq.masks[1]
    assert car.shape == (40, 480, 854) and car.dtype == bool
    assert car.any(axis=(1, 2)).all()  # the car is on every frame
    assert seq.annotated.all() and not seq.void.any()
    # The DAVIS-2017 reading of the same PNGs: 255 is void, so there is no object at all.
    seq17 = load_davis_sequence(path / "frames", path / "masks", mode="2017")
    assert seq17.masks == {} and (seq17.void == car).all()


def _palette_png(path: Path, labels: np.ndarray):
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192])
    im.save(path)


def make_davis2017(root: Path, name="dogs", n=3, h=12, w=16):
    frames, anns = root / "JPEGImages" / "480p" / name, root / "Annotations" / "480p" / name
    frames.mkdir(parents=True)
    anns.mkdir(parents=True)
    for t in range(n):
        Image.new("RGB", (w, h)).save(frames / f"{t:05d}.jpg")
        lab = np.zeros((h, w), dtype=np.uint8)
        lab[2:5, 2 + t:6 + t] = 1
        lab[7:10, 8:12] = 2
        lab[6, :] = 255  # void line between the objects
        _palette_png(anns / f"{t:05d}.png", lab)
    return frames, anns


def test_davis_2017_root_layout(tmp_path):
    make_davis2017(tmp_path)
    (seq,) = load_davis(tmp_path).records
    assert seq.mode == "2017" and seq.object_ids == [1, 2]
    assert seq.masks[1].shape == (3, 12, 16)
    assert seq.masks[1][2, 2:5, 4:8].all() and seq.masks[1].sum() == 3 * 12
    assert seq.void[:, 6].all() and seq.void.sum() == 3 * 16
    with pytest.raises(DataFormatError, match=r"values \[1, 2\] found: not DAVIS-2016"):
        load_davis(tmp_path, mode="2016")


def test_davis_first_frame_only_and_defects(tmp_path):
    frames, anns = make_davis2017(tmp_path, name="a")
    for p in sorted(anns.glob("*.png"))[1:]:
        p.unlink()  # semi-supervised test set: the first frame only
    (seq,) = load_davis(tmp_path).records
    assert seq.annotated.tolist() == [True, False, False] and not seq.masks[1][1:].any()

    frames_b, anns_b = make_davis2017(tmp_path, name="b")
    _palette_png(anns_b / "00001.png", np.zeros((10, 16)))
    with pytest.raises(DataFormatError, match="mask is 16x10 but the frames are 16x12") as info:
        load_davis(tmp_path)
    assert info.value.file == str(anns_b / "00001.png") and info.value.record == "b"
    result = load_davis(tmp_path, errors="skip")
    assert [s.name for s in result] == ["a"] and [s.record for s in result.skipped] == ["b"]

    _, anns_c = make_davis2017(tmp_path / "c", name="c")
    _palette_png(anns_c / "00009.png", np.zeros((12, 16)))
    with pytest.raises(DataFormatError, match="no matching frame 00009"):
        load_davis(tmp_path / "c")


# ----------------------------------------------------------------- SA-V

def test_sav_real_masklets():
    path = real("sav_000001_manual.json")
    raw = json.loads(path.read_text())
    result = load(path, "sav")
    assert len(result) == 5 and not result.skipped
    assert [m.masklet_id for m in result] == [0, 1, 2, 3, 4]
    for m in result:
        # video_height=848, video_width=480 (portrait); COCO RLE size is [height, width].
        assert (m.height, m.width) == (848, 480) and m.num_frames == 483
        assert m.frames == list(range(0, 484, 4))  # 121 annotated frames, every 4th
        assert m.rles[0]["size"] == [848, 480]
    first = result[0].mask(0)
    assert first.shape == (848, 480) and first.dtype == bool and first.any()
    # Object 3 appears late: masklet_first_appeared_frame counts annotated frames (113 -> video frame 452).
    obj3 = result[3]
    assert raw["masklet_first_appeared_frame"][3] == 113 == obj3.meta["first_appeared_frame"]
    visible = obj3.visible_frames()
    assert visible[0] == 452 and len(visible) == 8
    assert len(result[1].visible_frames()) == 121


def _sav(h=6, w=4, n_frames=9):
    m = np.zeros((h, w), dtype=bool)
    m[1:3, 1:3] = True
    per_frame = [[mask_to_rle(m), mask_to_rle(~m)] for _ in range(3)]
    return {"video_id": "sav_x", "video_frame_count": float(n_frames), "video_height": float(h),
            "video_width": float(w), "masklet": per_frame, "masklet_id": [0, 1], "masklet_num": 2,
            "masklet_type": ["manual", "manual"]}


def test_sav_defects(tmp_path):
    data = _sav()
    data["masklet"][1][1]["counts"] = None
    path = tmp_path / "sav_x_manual.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError) as info:
        load_sav(path)
    assert (info.value.record, info.value.field) == ("sav_x/masklet 1", "masklet[1][1].counts")
    result = load_sav(path, errors="skip")
    assert [m.masklet_id for m in result] == [0] and result[0].frames == [0, 4, 8]
    assert result[0].meta["type"] == "manual" and result[0].mask(4)[1:3, 1:3].all()
    assert [s.record for s in result.skipped] == ["sav_x/masklet 1"]

    data = _sav()
    data["video_width"] = 5.0  # RLE size [6, 4] no longer matches [height, width]
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=r"RLE size \[6, 4\] differs"):
        load_sav(path)

    data = _sav(n_frames=8)  # 3 annotated frames every 4 frames need 9 frames
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match="do not fit in 8 video frames"):
        load_sav(path, errors="skip")
