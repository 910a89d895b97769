import json

import numpy as np
import pytest
from shared_data import DATA
from PIL import Image
from pycocotools import mask as mask_utils

from regionlm.errors import RegionError, RegionLMError
from regionlm.regions import (
    RegionPrompt,
    box_to_mask,
    box_to_text,
    box_xywh_to_xyxy,
    box_xyxy_to_xywh,
    decode_segmentation,
    format_frame_boxes,
    mask_to_box,
    mask_to_polygons,
    mask_to_rle,
    parse_box_text,
    parse_frame_boxes,
    parse_region,
    polygons_to_mask,
    prompt_to_mask,
    rle_to_mask,
    text_to_box,
    validate_frame,
)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def uncompressed_counts(mask):
    """Reference uncompressed COCO RLE: alternating 0/1 runs over the column-major mask, starting with 0s."""
    flat = mask.T.reshape(-1).astype(np.int8)
    edges = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    runs = np.diff(edges).tolist()
    return [0] + runs if flat[0] else runs


# ---------------------------------------------------------------------- RLE
def random_masks():
    rng = np.random.default_rng(0)
    yield np.zeros((7, 5), bool)
    yield np.ones((7, 5), bool)
    yield np.ones((1, 1), bool)
    for _ in range(30):
        h, w = rng.integers(1, 50, 2)
        yield rng.random((h, w)) < rng.random()
    m = np.zeros((480, 854), bool)
    m[100:300, 200:700] = True  # non-square, to catch a transposed (C-order) encoding
    yield m


@pytest.mark.parametrize("mask", list(random_masks()), ids=lambda m: f"{m.shape}-{int(m.sum())}")
def test_rle_round_trip(mask):
    rle = mask_to_rle(mask)
    assert rle["size"] == list(mask.shape)
    assert isinstance(rle["counts"], str)
    json.dumps(rle)
    back = rle_to_mask(rle)
    assert back.dtype == bool and back.shape == mask.shape
    assert np.array_equal(back, mask)
    # bytes counts and uncompressed counts decode to the same mask
    assert np.array_equal(rle_to_mask({"size": rle["size"], "counts": rle["counts"].encode()}), mask)
    assert np.array_equal(rle_to_mask({"size": rle["size"], "counts": uncompressed_counts(mask)}), mask)


def test_rle_accepts_non_bool_and_c_order_masks():
    m = np.zeros((6, 9), np.uint8)
    m[1:3, 2:8] = 255
    assert np.array_equal(rle_to_mask(mask_to_rle(m)), m > 0)


@pytest.mark.parametrize("rle, words", [
    ({"size": [2, 2], "counts": None}, "null"),
    ({"counts": "04"}, "size"),
    ({"size": [2], "counts": "04"}, "size"),
    ({"size": "2x2", "counts": "04"}, "size"),
    ({"size": [2, 2], "counts": 4}, "counts"),
    ({"size": [2, 2], "counts": [1, 2]}, "cover 3 pixels"),
    ({"size": [2, 2], "counts": [1, "a", 3]}, "integers"),
    ({"size": [2, 2], "counts": [-1, 5]}, "negative"),
    ({"size": [2, 2], "counts": "01"}, "cover 1 pixels"),  # pycocotools alone would return garbage here
    ({"size": [2, 2], "counts": "0;"}, "cover"),
    ({"size": [2, 2], "counts": "0~"}, "alphabet"),
    ({"size": [2, 2], "counts": "0P"}, "middle"),
    ([0, 4], "dict"),
])
def test_rle_errors(rle, words):
    with pytest.raises(RegionError, match=words):
        rle_to_mask(rle)


# ---------------------------------------------------------------------- polygons
def test_polygon_round_trip():
    poly = [[10, 10, 60, 12, 70, 50, 35, 70, 12, 45]]  # a hand-made pentagon
    m = polygons_to_mask(poly, 80, 90)
    assert m.shape == (80, 90) and 1500 < m.sum() < 3000
    polys = mask_to_polygons(m)
    assert len(polys) == 1 and all(isinstance(v, float) for v in polys[0])
    assert iou(polygons_to_mask(polys, 80, 90), m) > 0.9


def test_mask_to_polygons_several_parts_and_tiny():
    m = np.zeros((40, 40), bool)
    m[2:10, 2:10] = True
    m[20:35, 15:38] = True
    m[38, 0] = True  # a 1-pixel blob: fewer than 3 contour points, dropped
    polys = mask_to_polygons(m)
    assert len(polys) == 2
    assert iou(polygons_to_mask(polys, 40, 40), m) > 0.85
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []


def test_polygons_input_checks():
    # a flat polygon without the outer list is accepted; < 3 points are dropped (not read as a box)
    assert polygons_to_mask([0, 0, 10, 0, 10, 10], 12, 12).any()
    assert not polygons_to_mask([[0, 0, 10, 10]], 12, 12).any()
    with pytest.raises(RegionError, match="odd"):
        polygons_to_mask([[0, 0, 10, 0, 10]], 12, 12)
    with pytest.raises(RegionError, match="numbers"):
        polygons_to_mask([["a", 0, 10, 0, 10, 10]], 12, 12)


def test_decode_segmentation_dispatch():
    m = np.zeros((20, 30), bool)
    m[5:15, 3:20] = True
    rle = mask_to_rle(m)
    assert np.array_equal(decode_segmentation(rle), m)
    assert np.array_equal(decode_segmentation({"size": [20, 30], "counts": uncompressed_counts(m)}), m)
    assert np.array_equal(decode_segmentation([[3, 5, 20, 5, 20, 15, 3, 15]], 20, 30), m)
    with pytest.raises(RegionError, match="height and width"):
        decode_segmentation([[3, 5, 20, 5, 20, 15]])
    with pytest.raises(RegionError, match="differs"):
        decode_segmentation(rle, 21, 30)
    for bad in (None, "abc", 5):
        with pytest.raises(RegionError, match="RLE dict or a polygon list"):
            decode_segmentation(bad, 20, 30)


# ---------------------------------------------------------------------- boxes
def test_box_mask_round_trip():
    m = box_to_mask((3, 4, 10, 9), 12, 15)
    assert m.sum() == 7 * 5
    assert mask_to_box(m) == (3, 4, 10, 9)  # x2/y2 exclusive
    assert mask_to_box(np.zeros((4, 4), bool)) is None
    assert mask_to_box(np.ones((4, 6), bool)) == (0, 0, 6, 4)
    # floats are rounded, outside parts clipped
    assert mask_to_box(box_to_mask((2.5, 3.4, 7.6, 100), 12, 15)) == (3, 3, 8, 12)
    assert mask_to_box(box_to_mask((-5, -5, 4, 4), 12, 15)) == (0, 0, 4, 4)
    assert not box_to_mask((20, 20, 30, 30), 12, 15).any()


def test_box_format_conversions():
    assert box_xyxy_to_xywh([1, 2, 11, 22]) == [1, 2, 10, 20]
    assert box_xywh_to_xyxy([1, 2, 10, 20]) == [1, 2, 11, 22]
    arr = np.array([[1.0, 2, 11, 22], [0, 0, 5, 5]])
    assert np.array_equal(box_xywh_to_xyxy(box_xyxy_to_xywh(arr)), arr)


# ---------------------------------------------------------------------- box text codec
def test_box_text_codec():
    assert box_to_text([0, 0, 854, 480], 854, 480) == "[0,0,99,99]"
    assert box_to_text([85.4, 48, 427, 240], 854, 480) == "[10,10,50,50]"
    assert box_to_text([-10, 5, 2000, 479.9], 854, 480) == "[0,1,99,99]"
    assert text_to_box("[10,10,50,50]", 854, 480) == pytest.approx([85.4, 48, 427, 240])
    rng = np.random.default_rng(1)
    for _ in range(200):
        w, h = rng.integers(16, 2000, 2)
        box = np.sort(rng.uniform(0, 1, 4).reshape(2, 2), axis=0).T.reshape(-1) * [w, h, w, h]
        back = text_to_box(box_to_text(box, w, h), w, h)
        assert np.all(np.abs(np.array(back) - box) <= np.array([w, h, w, h]) * 0.01 + 1e-9)


@pytest.mark.parametrize("s, want", [
    ("[1,2,3,4]", [1, 2, 3, 4]),
    ("[ 1, 2 ,3,4 ]", [1, 2, 3, 4]),
    ("The car is at [12, 30, 45, 99].", [12, 30, 45, 99]),
    ("[0,0,100,100]", [0, 0, 100, 100]),
    ("[1,2,3]", None),
    ("[1,2,3,x]", None),
    ("[1.5,2,3,4]", None),
    ("[1,2,300,4]", None),
    ("[-1,2,3,4]", None),
    ("", None),
    ("no box here", None),
    (None, None),
    (12, None),
])
def test_parse_box_text(s, want):
    assert parse_box_text(s) == want


def test_frame_boxes_round_trip():
    boxes = {0: [1, 2, 3, 4], 1: [5, 6, 7, 8], 3: None, 9: [10, 20, 30, 40]}
    text = format_frame_boxes(boxes)
    assert text == "Frame 1: [1,2,3,4], Frame 2: [5,6,7,8], Frame 10: [10,20,30,40]"  # 1-based in text
    got, problems = parse_frame_boxes(text)
    assert got == {k: v for k, v in boxes.items() if v is not None} and problems == []


def test_parse_frame_boxes_tolerance():
    got, problems = parse_frame_boxes("Frame 1: [1,2,3,4], Frame 2:[5,6,7,8]")
    assert got == {0: [1, 2, 3, 4], 1: [5, 6, 7, 8]} and problems == []
    got, problems = parse_frame_boxes("frame 1 : [ 1, 2, 3, 4 ];\nFrame 2: [5,6,7,8]\n\nFRAME 3:[9,9,9,9]")
    assert got == {0: [1, 2, 3, 4], 1: [5, 6, 7, 8], 2: [9, 9, 9, 9]} and problems == []
    got, problems = parse_frame_boxes("Sure! Frame 1: [1,2,3,4], Frame 2: lost it, Frame 0: [1,1,1,1], "
                                      "Frame 1: [9,9,9,9]")
    assert got == {0: [1, 2, 3, 4]}
    assert len(problems) == 4 and "Frame 2" in problems[1]


@pytest.mark.parametrize("s", ["", "garbage", "[1,2,3,4]", "Frame", "Frame x: [1,2]", None, 3.5,
                               "Frame 1: [1,2,3", "Frame 99999999999999999999: [1,2,3,4]"])
def test_parse_frame_boxes_garbage_never_crashes(s):
    got, problems = parse_frame_boxes(s)
    assert isinstance(got, dict) and isinstance(problems, list)
    if not got:
        assert problems


# ---------------------------------------------------------------------- region prompts
def test_parse_region_kinds():
    assert parse_region("box:10,20,30,40@5") == RegionPrompt("box", 5, box=(10, 20, 30, 40))
    assert parse_region(" box: 10.5, 20, 30, 40 ") == RegionPrompt("box", 0, box=(10.5, 20, 30, 40))
    assert parse_region("point:10,20@3") == RegionPrompt("point", 3, points=[(10, 20)])
    assert parse_region("point:10,20;30,40@0").points == [(10, 20), (30, 40)]
    assert parse_region("mask:a/b.png@7") == RegionPrompt("mask", 7, path="a/b.png")
    assert parse_region("rle:r.json") == RegionPrompt("rle", 0, path="r.json")
    # an '@' in a path that is not followed by a frame number belongs to the path
    assert parse_region("mask:me@home.png") == RegionPrompt("mask", 0, path="me@home.png")
    assert parse_region("mask:me@home.png@2") == RegionPrompt("mask", 2, path="me@home.png")
    assert str(parse_region("point:10,20.5;30,40@1")) == "point:10,20.5;30,40@1"


@pytest.mark.parametrize("spec, words", [
    ("box:30,20,10,40@0", "x2 > x1"),
    ("box:10,40,30,40@0", "y2 > y1"),
    ("box:10,20,30,40@-1", "negative"),
    ("box:10,20,30@0", "4 numbers"),
    ("box:10,20,30,40,50@0", "4 numbers"),
    ("box:a,20,30,40@0", "'a' is not a number"),
    ("box:10,20,30,nan@0", "finite"),
    ("box:10,20,30,40@x", "not an integer"),
    ("box:10,20,30,40@", "not an integer"),
    ("point:10@0", "2 numbers"),
    ("point:@0", "no point"),
    ("point:1,2;3@0", "2 numbers"),
    ("mask:@0", "no file"),
    ("circle:1,2,3@0", "unknown kind"),
    ("10,20,30,40", "unknown kind"),
    ("", "unknown kind"),
])
def test_parse_region_errors(spec, words):
    with pytest.raises(RegionError, match=words) as e:
        parse_region(spec)
    assert repr(spec) in str(e.value)  # the message names the spec
    assert isinstance(e.value, RegionLMError)


def test_prompt_to_mask_box_and_points():
    m = prompt_to_mask(parse_region("box:10,20,30,40@0"), 48, 64)
    assert mask_to_box(m) == (10, 20, 30, 40)
    m = prompt_to_mask(parse_region("box:50,40,100,100@0"), 48, 64)  # partly outside: clipped
    assert mask_to_box(m) == (50, 40, 64, 48)
    m = prompt_to_mask(parse_region("point:10,20;50,1@0"), 100, 200)
    r = 2  # max(2, 2% of 100)
    assert m[20, 10] and m[20, 10 + r] and not m[20, 10 + r + 1] and m[1, 50] and m[0, 50]
    assert mask_to_box(m) == (8, 0, 53, 23)
    with pytest.raises(RegionError, match="outside"):
        prompt_to_mask(parse_region("box:70,10,90,20@0"), 48, 64)
    with pytest.raises(RegionError, match="outside"):
        prompt_to_mask(parse_region("point:64,10@0"), 48, 64)
    with pytest.raises(RegionError, match="empty"):
        prompt_to_mask(parse_region("box:10.1,10,10.3,20@0"), 48, 64)  # rounds to zero width


def test_prompt_to_mask_files(tmp_path):
    m = np.zeros((48, 64), bool)
    m[5:25, 10:40] = True
    Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / "m.png")
    assert np.array_equal(prompt_to_mask(parse_region(f"mask:{tmp_path / 'm.png'}@2"), 48, 64), m)
    pal = Image.fromarray(m.astype(np.uint8) * 3, mode="L").convert("P")  # palette PNG: index != 0
    pal.save(tmp_path / "p.png")
    assert np.array_equal(prompt_to_mask(parse_region(f"mask:{tmp_path / 'p.png'}"), 48, 64), m)
    Image.fromarray(np.stack([m.astype(np.uint8) * 200] * 3, -1)).save(tmp_path / "rgb.png")
    assert np.array_equal(prompt_to_mask(parse_region(f"mask:{tmp_path / 'rgb.png'}"), 48, 64), m)
    (tmp_path / "r.json").write_text(json.dumps(mask_to_rle(m)))
    assert np.array_equal(prompt_to_mask(parse_region(f"rle:{tmp_path / 'r.json'}@1"), 48, 64), m)

    with pytest.raises(RegionError, match=r"64x48 but the frame is 80x48"):
        prompt_to_mask(parse_region(f"mask:{tmp_path / 'm.png'}"), 48, 80)
    with pytest.raises(RegionError, match=r"64x48 but the frame is 64x40"):
        prompt_to_mask(parse_region(f"rle:{tmp_path / 'r.json'}"), 40, 64)
    with pytest.raises(RegionError, match="not found"):
        prompt_to_mask(parse_region(f"mask:{tmp_path / 'nope.png'}"), 48, 64)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(RegionError, match="cannot read mask image"):
        prompt_to_mask(parse_region(f"mask:{tmp_path / 'bad.png'}"), 48, 64)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(RegionError, match="empty"):
        prompt_to_mask(parse_region(f"mask:{tmp_path / 'empty.png'}"), 48, 64)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RegionError, match="cannot read JSON"):
        prompt_to_mask(parse_region(f"rle:{tmp_path / 'bad.json'}"), 48, 64)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(RegionError, match="one COCO RLE dict"):
        prompt_to_mask(parse_region(f"rle:{tmp_path / 'list.json'}"), 48, 64)


def test_validate_frame():
    validate_frame(parse_region("box:1,1,5,5@39"), 40)
    with pytest.raises(RegionError, match="frame 40 is past the end.*40 frames"):
        validate_frame(parse_region("box:1,1,5,5@40"), 40)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
def test_real_sav_masks_match_pycocotools():
    path = DATA / "sav_000001_manual.json"
    if not path.exists():
        pytest.skip(f"{path} not available")
    sav = json.loads(path.read_text())
    rles = [rle for frame in sav["masklet"][::5] for rle in frame]
    assert rles
    for rle in rles:
        m = rle_to_mask(rle)
        assert m.shape == (sav["video_height"], sav["video_width"])
        ref = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert np.array_equal(m, ref.astype(bool))
        assert mask_to_rle(m)["counts"] == rle["counts"]
