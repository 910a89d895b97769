"""Regions: masks, COCO RLE and polygons, boxes, the Elysium box text codec, and command-line region prompts.

Conventions
- Masks are ``np.ndarray`` bool of shape (H, W).
- Boxes are xyxy in pixels; from a mask, x2/y2 are exclusive (max index + 1), so w = x2 - x1.
- Frame indices are 0-based in Python. In model text (``Frame 1: [..]``) they are 1-based, as in Elysium:
  :func:`format_frame_boxes` adds 1 and :func:`parse_frame_boxes` subtracts 1, nothing else does.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regionlm.errors import RegionError

# ---------------------------------------------------------------------- RLE


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a 2-D mask (JSON-serialisable)."""
    from pycocotools import mask as mask_utils

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RegionError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    # pycocotools reads the buffer in column-major order: it must be Fortran-contiguous uint8.
    rle = mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("utf-8")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Decode a COCO RLE (compressed str/bytes counts, or uncompressed list counts) to a bool mask (H, W)."""
    if not isinstance(rle, dict):
        raise RegionError(f"an RLE must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle.get("size")
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(_is_number(v) and v >= 0 and float(v).is_integer() for v in size)):
        raise RegionError(f"RLE 'size' must be [height, width] (two non-negative integers), got {size!r}")
    h, w = int(size[0]), int(size[1])
    counts = rle.get("counts")
    if counts is None:
        raise RegionError("RLE 'counts' is missing or null")
    if isinstance(counts, (list, tuple, np.ndarray)):
        runs = _check_runs(counts, h, w)
    else:
        if isinstance(counts, str):
            counts = counts.encode("utf-8")
        if not isinstance(counts, bytes):
            raise RegionError(f"RLE 'counts' must be a string or a list of integers, got "
                              f"{type(counts).__name__}")
        # Decoded here rather than by pycocotools.mask.decode: that does not check the runs, and runs
        # covering fewer than h*w pixels leave the rest of its output uninitialised (garbage). This is
        # also ~3x faster.
        runs = _check_runs(_decode_counts(counts), h, w)
    # Runs alternate 0s and 1s, starting with 0s, over the mask in column-major (Fortran) order.
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def _check_runs(runs, h, w) -> np.ndarray:
    try:
        arr = np.asarray(runs)
        ok = arr.ndim == 1 and (arr.size == 0 or np.issubdtype(arr.dtype, np.integer))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RegionError("RLE 'counts' list must hold integers only")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise RegionError("RLE 'counts' has a negative run length")
    if int(arr.sum()) != h * w:
        raise RegionError(f"RLE 'counts' cover {int(arr.sum())} pixels but 'size' {h}x{w} has {h * w}")
    return arr


def _decode_counts(s: bytes) -> np.ndarray:
    """Run lengths of a COCO compressed counts string (the code of pycocotools' maskApi.c rleFrString).

    Each value is written in 6-bit chunks (char - 48): 5 data bits, bit 0x20 = more chunks follow,
    bit 0x10 of the last chunk = sign.
    """
    c = np.frombuffer(s, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    if ((c < 0) | (c > 63)).any():
        raise RegionError("RLE 'counts' string has characters outside the COCO RLE alphabet")
    last = (c & 0x20) == 0  # last chunk of each value
    if not last[-1]:
        raise RegionError("RLE 'counts' string ends in the middle of a value")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    value_id = np.repeat(np.arange(len(ends)), ends - starts + 1)
    pos = np.arange(c.size) - starts[value_id]  # chunk position within its value
    if pos.max() > 10:
        raise RegionError("RLE 'counts' string has an impossibly long value")
    x = np.add.reduceat((c & 0x1F) << (5 * pos), starts)
    nchunks = ends - starts + 1
    negative = (c[ends] & 0x10) != 0
    x = np.where(negative, x - (np.int64(1) << (5 * nchunks)), x)
    # maskApi.c: value m > 2 is stored as a delta to value m - 2 (values 0, 1 and 2 are stored as is).
    runs = x.copy()
    runs[2::2] = np.cumsum(x[2::2])
    runs[1::2] = np.cumsum(x[1::2])
    return runs


# ---------------------------------------------------------------------- polygons


def polygons_to_mask(polygons, height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (a list of flat [x1, y1, x2, y2, ...] lists) into one bool mask (H, W).

    Polygons with fewer than 3 points are skipped (no area; pycocotools would read a 4-number list as a box).
    """
    from pycocotools import mask as mask_utils

    polys = _check_polygons(polygons)
    polys = [p for p in polys if len(p) >= 6]
    if not polys:
        return np.zeros((int(height), int(width)), dtype=bool)
    rles = mask_utils.frPyObjects(polys, int(height), int(width))
    merged = mask_utils.merge(rles)
    # rle_to_mask rather than mask_utils.decode, which warns under numpy 2 (copy keyword).
    return rle_to_mask({"size": [int(height), int(width)], "counts": merged["counts"]})


def _check_polygons(polygons) -> list[list[float]]:
    if not isinstance(polygons, (list, tuple)):
        raise RegionError(f"polygons must be a list of [x1, y1, x2, y2, ...] lists, got {type(polygons).__name__}")
    if polygons and all(_is_number(v) for v in polygons):
        polygons = [polygons]  # one flat polygon without the outer list
    out = []
    for k, p in enumerate(polygons):
        if not isinstance(p, (list, tuple, np.ndarray)) or not all(_is_number(v) for v in p):
            raise RegionError(f"polygon {k} must be a flat list of numbers [x1, y1, x2, y2, ...], got {p!r:.80}")
        if len(p) % 2:
            raise RegionError(f"polygon {k} has an odd number of coordinates ({len(p)})")
        out.append([float(v) for v in p])
    return out


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a mask as COCO polygons (flat [x1, y1, ...] float lists); holes are not kept."""
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RegionError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    contours, _ = cv2.findContours((mask != 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def decode_segmentation(seg, height: int | None = None, width: int | None = None) -> np.ndarray:
    """A dataset 'segmentation' (RLE dict, compressed or not, or a polygon list) as a bool mask (H, W)."""
    if isinstance(seg, dict):
        mask = rle_to_mask(seg)
        if height is not None and width is not None and mask.shape != (int(height), int(width)):
            raise RegionError(f"RLE size {mask.shape[0]}x{mask.shape[1]} (HxW) differs from the frame "
                              f"{int(height)}x{int(width)}")
        return mask
    if isinstance(seg, (list, tuple)):
        if height is None or width is None:
            raise RegionError("a polygon segmentation needs the frame height and width")
        return polygons_to_mask(seg, height, width)
    raise RegionError(f"a segmentation must be an RLE dict or a polygon list, got {type(seg).__name__}: "
                      f"{seg!r:.60}")


# ---------------------------------------------------------------------- boxes


def mask_to_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight xyxy box of a mask in pixels with exclusive x2/y2; None for an empty mask."""
    mask = np.asarray(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def box_to_mask(box, height: int, width: int) -> np.ndarray:
    """Filled bool mask of an xyxy box (x2/y2 exclusive). Coordinates are rounded, then clipped to the frame."""
    x1, y1, x2, y2 = (int(math.floor(float(v) + 0.5)) for v in box)  # round half up, not to even
    mask = np.zeros((int(height), int(width)), dtype=bool)
    mask[max(y1, 0):max(min(y2, height), 0), max(x1, 0):max(min(x2, width), 0)] = True
    return mask


def box_xyxy_to_xywh(box):
    """[x1, y1, x2, y2] -> [x, y, w, h]. Lists/tuples give a list; arrays (..., 4) give an array."""
    if isinstance(box, np.ndarray):
        return np.concatenate([box[..., :2], box[..., 2:] - box[..., :2]], axis=-1)
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def box_xywh_to_xyxy(box):
    """[x, y, w, h] -> [x1, y1, x2, y2]. Lists/tuples give a list; arrays (..., 4) give an array."""
    if isinstance(box, np.ndarray):
        return np.concatenate([box[..., :2], box[..., :2] + box[..., 2:]], axis=-1)
    x, y, w, h = box
    return [x, y, x + w, y + h]


# ---------------------------------------------------------------------- box text (Elysium)

_BOX_RE = re.compile(r"\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]")
_FRAME_RE = re.compile(r"frame\s*(\d+)\s*:?", re.IGNORECASE)


def box_to_ints(box_xyxy, width: float, height: float) -> list[int]:
    """Pixel xyxy box -> the four Elysium integers: floor(coord / size * 100), clamped to 0..99."""
    sizes = (width, height, width, height)
    return [min(99, max(0, int(math.floor(float(v) / s * 100)))) for v, s in zip(box_xyxy, sizes)]


def box_to_text(box_xyxy, width: float, height: float) -> str:
    """Pixel xyxy box -> ``"[x1,y1,x2,y2]"`` with integers in [0, 100) (Elysium's text format)."""
    return "[{},{},{},{}]".format(*box_to_ints(box_xyxy, width, height))


def text_to_box(text, width: float, height: float) -> list[float] | None:
    """Inverse of :func:`box_to_text`: ``"[x1,y1,x2,y2]"`` (or four ints) -> pixel xyxy floats (v/100*size).

    Returns None when the text does not parse.
    """
    ints = parse_box_text(text) if isinstance(text, str) else (list(text) if text is not None else None)
    if ints is None or len(ints) != 4:
        return None
    sizes = (width, height, width, height)
    return [v / 100 * s for v, s in zip(ints, sizes)]


def parse_box_text(s) -> list[int] | None:
    """The first ``[a,b,c,d]`` box in ``s`` as four ints, or None. Never raises.

    Spaces are allowed anywhere inside the brackets. Values must be integers 0..100 (100 accepted because
    some writers do not clamp a corner on the right/bottom edge).
    """
    if not isinstance(s, str):
        return None
    m = _BOX_RE.search(s)
    if m is None:
        return None
    vals = [int(v) for v in m.groups()]
    return vals if all(v <= 100 for v in vals) else None


def format_frame_boxes(boxes: dict) -> str:
    """{0-based frame: [4 ints] or None} -> ``"Frame 1: [..], Frame 2: [..]"`` (1-based in text).

    Frames whose box is None (object absent) are left out.
    """
    parts = []
    for frame in sorted(boxes):
        box = boxes[frame]
        if box is None:
            continue
        if len(box) != 4:
            raise RegionError(f"frame {frame}: a box needs 4 values, got {box!r}")
        parts.append("Frame {}: [{},{},{},{}]".format(int(frame) + 1, *(int(v) for v in box)))
    return ", ".join(parts)


def parse_frame_boxes(s) -> tuple[dict[int, list[int]], list[str]]:
    """``"Frame 1: [..], Frame 2: [..]"`` -> ({0-based frame: [4 ints]}, problems). Never raises.

    Separators between entries may be commas, semicolons, spaces or newlines. Each entry that cannot be
    read (no box, frame 0, a repeated frame, text before the first "Frame") is described in ``problems``.
    """
    boxes: dict[int, list[int]] = {}
    problems: list[str] = []
    if not isinstance(s, str):
        return boxes, [f"expected text, got {type(s).__name__}"]
    marks = list(_FRAME_RE.finditer(s))
    if not marks:
        return boxes, [f"no 'Frame N:' entries in {s.strip()!r:.80}"] if s.strip() else ["empty answer"]
    lead = s[:marks[0].start()].strip(" \t\r\n,;")
    if lead:
        problems.append(f"text before the first frame ignored: {lead!r:.60}")
    for k, m in enumerate(marks):
        piece = s[m.end():marks[k + 1].start() if k + 1 < len(marks) else len(s)]
        number = int(m.group(1))
        box = parse_box_text(piece)
        if box is None:
            problems.append(f"Frame {number}: no [x1,y1,x2,y2] box in {piece.strip()!r:.60}")
        elif number < 1:
            problems.append(f"Frame {number}: frames are numbered from 1")
        elif number - 1 in boxes:
            problems.append(f"Frame {number}: repeated, the first box is kept")
        else:
            boxes[number - 1] = box
    return boxes, problems


# ---------------------------------------------------------------------- command-line region prompts

KINDS = ("box", "mask", "point", "rle")


@dataclass
class RegionPrompt:
    """A region given on the command line. ``frame`` is a 0-based frame index of the video.

    box: (x1, y1, x2, y2) pixels; points: [(x, y), ...] pixels; path: PNG (mask) or JSON (rle) file.
    """

    kind: str
    frame: int
    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float]] | None = None
    path: str | None = None

    def __str__(self):  # the spec syntax again, for error messages
        if self.kind == "box":
            body = ",".join(_fmt_num(v) for v in self.box)
        elif self.kind == "point":
            body = ";".join(f"{_fmt_num(x)},{_fmt_num(y)}" for x, y in self.points)
        else:
            body = str(self.path)
        return f"{self.kind}:{body}@{self.frame}"


def _fmt_num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def parse_region(spec: str) -> RegionPrompt:
    """Parse a command-line region: ``box:x1,y1,x2,y2@F``, ``mask:PATH.png@F``, ``point:x,y[;x,y...]@F``,
    ``rle:FILE.json@F``. Coordinates are pixels (floats allowed); ``@F`` is the 0-based frame index and is
    optional (default frame 0). Files are only read by :func:`prompt_to_mask`.
    """
    if not isinstance(spec, str):
        raise RegionError(f"region {spec!r}: expected text like 'box:x1,y1,x2,y2@F'")
    text = spec.strip()
    kind, sep, body = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS:
        raise RegionError(f"region {spec!r}: unknown kind {kind!r} (use box:, mask:, point: or rle:)")

    frame = 0
    head, at, tail = body.rpartition("@")
    if at:
        tail = tail.strip()
        if re.fullmatch(r"[+-]?\d+", tail):
            frame, body = int(tail), head
        elif kind in ("box", "point") or not tail:
            # for paths, an '@' not followed by a number is part of the file name
            raise RegionError(f"region {spec!r}: frame {tail!r} after '@' is not an integer")
    if frame < 0:
        raise RegionError(f"region {spec!r}: frame {frame} is negative (frames count from 0)")
    body = body.strip()

    if kind == "box":
        vals = _numbers(body, spec)
        if len(vals) != 4:
            raise RegionError(f"region {spec!r}: a box needs 4 numbers x1,y1,x2,y2, got {len(vals)}")
        x1, y1, x2, y2 = vals
        if x2 <= x1 or y2 <= y1:
            raise RegionError(f"region {spec!r}: a box needs x2 > x1 and y2 > y1 (x1,y1,x2,y2 in pixels)")
        return RegionPrompt("box", frame, box=(x1, y1, x2, y2))
    if kind == "point":
        pieces = [p for p in body.split(";") if p.strip()]
        if not pieces:
            raise RegionError(f"region {spec!r}: no point given (use point:x,y@F)")
        points = []
        for p in pieces:
            vals = _numbers(p, spec)
            if len(vals) != 2:
                raise RegionError(f"region {spec!r}: a point needs 2 numbers x,y, got {p.strip()!r}")
            points.append((vals[0], vals[1]))
        return RegionPrompt("point", frame, points=points)
    if not body:
        raise RegionError(f"region {spec!r}: no file given (use {kind}:PATH@F)")
    return RegionPrompt(kind, frame, path=body)


def _numbers(text: str, spec: str) -> list[float]:
    vals = []
    for v in text.split(","):
        try:
            x = float(v)
        except ValueError:
            raise RegionError(f"region {spec!r}: {v.strip()!r} is not a number") from None
        if not math.isfinite(x):
            raise RegionError(f"region {spec!r}: {v.strip()!r} is not a finite number")
        vals.append(x)
    return vals


def point_radius(height: int, width: int) -> int:
    """Radius of the disk a point prompt becomes: 2% of the shorter side, at least 2 pixels."""
    return max(2, round(0.02 * min(height, width)))


def prompt_to_mask(prompt: RegionPrompt, height: int, width: int) -> np.ndarray:
    """The bool mask (H, W) of a region prompt on a frame of the given size.

    - box: the filled box, clipped to the frame (a box fully outside is an error).
    - mask: the PNG's non-zero pixels (palette index for palette PNGs; any colour channel otherwise).
    - rle: the JSON file's COCO RLE dict, decoded. PNG and RLE sizes must equal the frame size.
    - point: a disk of radius :func:`point_radius` around each point. A point is only a coarse region; a
      segmenter can refine it later. Points must lie inside the frame.
    An empty result is an error.
    """
    height, width = int(height), int(width)
    if prompt.kind == "box":
        x1, y1, x2, y2 = prompt.box
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise RegionError(f"region {prompt}: the box is outside the {width}x{height} frame")
        mask = box_to_mask(prompt.box, height, width)
    elif prompt.kind == "point":
        yy, xx = np.ogrid[:height, :width]
        mask = np.zeros((height, width), dtype=bool)
        r = point_radius(height, width)
        for x, y in prompt.points:
            if not (0 <= x < width and 0 <= y < height):
                raise RegionError(f"region {prompt}: point ({_fmt_num(x)}, {_fmt_num(y)}) is outside the "
                                  f"{width}x{height} frame")
            mask |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
    elif prompt.kind == "mask":
        mask = _read_mask_png(prompt)
        if mask.shape != (height, width):
            raise RegionError(f"region {prompt}: the mask is {mask.shape[1]}x{mask.shape[0]} but the frame is "
                              f"{width}x{height} (WxH)")
    elif prompt.kind == "rle":
        mask = _read_rle_json(prompt)
        if mask.shape != (height, width):
            raise RegionError(f"region {prompt}: the RLE is {mask.shape[1]}x{mask.shape[0]} but the frame is "
                              f"{width}x{height} (WxH)")
    else:
        raise RegionError(f"region {prompt}: unknown kind {prompt.kind!r}")
    if not mask.any():
        raise RegionError(f"region {prompt}: the region is empty (no pixels inside the frame)")
    return mask


def _read_mask_png(prompt: RegionPrompt) -> np.ndarray:
    from PIL import Image

    path = Path(prompt.path)
    if not path.is_file():
        raise RegionError(f"region {prompt}: mask file {path} not found")
    try:
        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA", "PA"):
                im = im.convert("RGB" if im.mode == "RGBA" else "L")  # alpha ignored
            arr = np.asarray(im)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise RegionError(f"region {prompt}: cannot read mask image {path}: {e}") from None
    return arr.any(axis=-1) if arr.ndim == 3 else arr != 0


def _read_rle_json(prompt: RegionPrompt) -> np.ndarray:
    path = Path(prompt.path)
    if not path.is_file():
        raise RegionError(f"region {prompt}: RLE file {path} not found")
    try:
        rle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RegionError(f"region {prompt}: cannot read JSON file {path}: {e}") from None
    try:
        return rle_to_mask(rle)
    except RegionError as e:
        raise RegionError(f"region {prompt}: {path} does not hold one COCO RLE dict: {e}") from None


def validate_frame(prompt: RegionPrompt, num_frames: int) -> None:
    """Error when the prompt's frame is past the end of a video with ``num_frames`` frames."""
    if prompt.frame >= num_frames:
        raise RegionError(f"region {prompt}: frame {prompt.frame} is past the end (the video has "
                          f"{num_frames} frames, 0..{num_frames - 1})")
