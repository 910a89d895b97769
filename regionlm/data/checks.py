"""Validation primitives shared by the format modules.

A `Check` is bound to one file and one record; every failure is a DataFormatError naming both and the field,
written as a path like `annotation[0]["7"].segmentation.counts`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from regionlm.errors import DataFormatError

REGION_TOKEN = "<region>"

# Characters of a compressed COCO RLE string: 6-bit groups stored as chr(48 + value).
_RLE_CHARS = frozenset(chr(c) for c in range(48, 48 + 64))
_DIGITS = re.compile(r"\d+")


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def record_label(rec: Any, index: int, key: str = "id") -> Any:
    """The id used in messages: the record's own id when it has a usable one, else `#index`."""
    if isinstance(rec, dict):
        value = rec.get(key)
        if isinstance(value, str) and value or is_int(value):
            return value
    return f"#{index}"


class Check:
    """Raises DataFormatErrors for one record of one file."""

    def __init__(self, file, record):
        self.file, self.record = str(file), record

    def error(self, field: str | None, reason: str) -> DataFormatError:
        return DataFormatError(self.file, self.record, field, reason)

    def fail(self, field: str | None, reason: str):
        raise self.error(field, reason)

    def record_dict(self, rec: Any) -> dict:
        if not isinstance(rec, dict):
            self.fail(None, f"expected a JSON object, got {type(rec).__name__}")
        return rec

    def get(self, rec: dict, key: str, types, *, field: str | None = None, optional: bool = False,
            nonempty: bool = False):
        """rec[key], checked against `types` (a type, a tuple, or "int" / "number")."""
        field = field or key
        if key not in rec or rec[key] is None:
            if optional:
                return None
            self.fail(field, "missing" if key not in rec else "is null")
        value = rec[key]
        if types == "int":
            ok, name = is_int(value), "an integer"
        elif types == "number":
            ok, name = is_number(value), "a finite number"
        else:
            ok = isinstance(value, types) and not isinstance(value, bool)
            name = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        if not ok:
            self.fail(field, f"expected {name}, got {type(value).__name__} {_short(value)}")
        if nonempty and isinstance(value, (str, list, dict)) and not value:
            self.fail(field, "is empty")
        return value

    def size(self, rec: dict, *, required: bool = False) -> tuple[int | None, int | None]:
        """The record's (height, width): positive integers (integral floats accepted), both or neither."""
        out = []
        for key in ("height", "width"):
            value = rec.get(key)
            if value is None:
                out.append(None)
                continue
            if not (is_number(value) and value > 0 and float(value).is_integer()):
                self.fail(key, f"expected a positive integer, got {_short(value)}")
            out.append(int(value))
        h, w = out
        if (h is None) != (w is None):
            self.fail("width" if w is None else "height", "height and width must be given together")
        if required and h is None:
            self.fail("height", "missing height/width")
        return h, w

    def frame_key(self, key: Any, field: str, num_frames: int | None = None) -> int:
        """A frame index given as a JSON object key: a string of digits, below num_frames when known."""
        if is_int(key) and key >= 0:
            t = key
        elif isinstance(key, str) and _DIGITS.fullmatch(key):
            t = int(key)
        else:
            self.fail(field, f"frame key {key!r} is not a non-negative integer")
        if num_frames is not None and t >= num_frames:
            self.fail(field, f"frame {t} is out of range: the video has {num_frames} frames")
        return t

    def segmentation(self, seg: Any, field: str, height: int | None = None, width: int | None = None):
        """Check a COCO RLE dict or polygon list; returns the RLE (h, w), or None for polygons."""
        if seg is None:
            self.fail(field, "segmentation is null")
        if isinstance(seg, dict):
            return self._rle(seg, field, height, width)
        if isinstance(seg, list):
            self._polygons(seg, field, height, width)
            return None
        self.fail(field, f"expected an RLE object or a list of polygons, got {type(seg).__name__}")

    def _rle(self, seg: dict, field: str, height, width) -> tuple[int, int]:
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) and v > 0 for v in size)):
            self.fail(f"{field}.size", f"expected [height, width] (positive integers), got {_short(size)}")
        h, w = size
        if height is not None and (h, w) != (height, width):
            self.fail(f"{field}.size", f"RLE size [{h}, {w}] differs from the record's [height, width] "
                                       f"[{height}, {width}]")
        if "counts" not in seg:
            self.fail(f"{field}.counts", "missing")
        counts = seg["counts"]
        if counts is None:
            self.fail(f"{field}.counts", "counts is null (no mask)")
        if isinstance(counts, str):
            if not counts or not _RLE_CHARS.issuperset(counts):
                self.fail(f"{field}.counts", "not a compressed COCO RLE string")
        elif isinstance(counts, list):
            if not all(is_int(c) and c >= 0 for c in counts):
                self.fail(f"{field}.counts", "uncompressed RLE counts must be non-negative integers")
            if sum(counts) != h * w:
                self.fail(f"{field}.counts", f"uncompressed RLE counts sum to {sum(counts)}, not {h}*{w}={h * w}")
        else:
            self.fail(f"{field}.counts", f"expected a string or a list, got {type(counts).__name__}")
        return h, w

    def _polygons(self, polys: list, field: str, height, width) -> None:
        if not polys:
            self.fail(field, "empty polygon list")
        for i, poly in enumerate(polys):
            if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0
                    and all(is_number(v) for v in poly)):
                self.fail(f"{field}[{i}]", "a polygon must be a list of at least 3 x,y pairs of numbers")
        if height is None or width is None:
            self.fail(field, "polygon segmentation needs the record's height and width")

    def box_xyxy(self, box: Any, field: str, height: int | None = None, width: int | None = None,
                 *, normalised: bool = False) -> list[float]:
        """Check [x1, y1, x2, y2] with x2 >= x1, y2 >= y1, inside the frame (or inside [0, 1] if normalised)."""
        if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(is_number(v) for v in box)):
            self.fail(field, f"expected [x1, y1, x2, y2] (4 finite numbers), got {_short(box)}")
        x1, y1, x2, y2 = box
        if x2 < x1 or y2 < y1:
            self.fail(field, f"box {_short(box)} has x2 < x1 or y2 < y1")
        if normalised:
            height = width = 1
        eps = 1e-6
        if width is not None and not (-eps <= x1 and x2 <= width + eps and -eps <= y1 and y2 <= height + eps):
            where = "[0, 1]" if normalised else f"the {width}x{height} frame"
            self.fail(field, f"box {_short(box)} lies outside {where}")
        return [float(v) for v in box]

    def region_count(self, text: str, num_regions: int, field: str) -> None:
        n = text.count(REGION_TOKEN)
        if n != num_regions:
            self.fail(field, f"{n} {REGION_TOKEN} placeholder(s) in the text but {num_regions} region(s) "
                             f"in annotation")

    def annotation(self, annotation: Any, field: str = "annotation", *, height=None, width=None,
                   num_frames=None, allow_empty=False) -> list[dict[int, Any]]:
        """Check a list of regions, each {frame_key: {"segmentation": RLE|polygon}}.

        Returns one {frame_index: segmentation} dict per region. Without a record height/width, all RLE
        masks of the record must at least agree on their size.
        """
        if not isinstance(annotation, list):
            self.fail(field, f"expected a list of regions, got {type(annotation).__name__}")
        regions, seen_size = [], None
        for r, region in enumerate(annotation):
            rf = f"{field}[{r}]"
            if not isinstance(region, dict):
                self.fail(rf, f"expected an object mapping frame index to mask, got {type(region).__name__}")
            if not region and not allow_empty:
                self.fail(rf, "region has no annotated frame")
            frames = {}
            for key, entry in region.items():
                ff = f'{rf}["{key}"]'
                t = self.frame_key(key, ff, num_frames)
                if t in frames:
                    self.fail(ff, f"frame {t} is given twice")
                if not isinstance(entry, dict):
                    self.fail(ff, f"expected an object with a segmentation, got {type(entry).__name__}")
                if "segmentation" not in entry:
                    self.fail(f"{ff}.segmentation", "missing segmentation")
                size = self.segmentation(entry["segmentation"], f"{ff}.segmentation", height, width)
                if size is not None and height is None:
                    if seen_size is not None and size != seen_size:
                        self.fail(f"{ff}.segmentation.size", f"RLE size {list(size)} differs from "
                                                             f"{list(seen_size)} used elsewhere in the record")
                    seen_size = size
                frames[t] = entry["segmentation"]
            regions.append(frames)
        return regions


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
