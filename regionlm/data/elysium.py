"""ElysiumTrack-1M (JSONL or JSON list): one tracked object per record, boxes normalised to [0, 1].

Record: {source, id, vid, metadata, frames: [paths], object_class, box: [[x1, y1, x2, y2] per frame],
object_description, frame_size: [w, h]}. Loaded records carry pixel boxes as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from regionlm.data.checks import Check, is_number, record_label
from regionlm.data.io import read_records
from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult, collect
from regionlm.errors import DataFormatError


@dataclass
class ElysiumTrack:
    id: Any
    vid: Any
    frames: list[str]
    boxes_norm: np.ndarray  # (N, 4) float64, x1 y1 x2 y2 in [0, 1]
    boxes: np.ndarray  # (N, 4) float64, the same in pixels
    frame_size: tuple[int, int]  # (width, height), as in the file
    object_class: str | None = None
    object_description: str | None = None
    source: str | None = None
    metadata: Any = None
    raw: dict = field(default_factory=dict, repr=False)


def check_elysium(rec: Any, *, file="<records>", index: int = 0) -> ElysiumTrack:
    chk = Check(file, record_label(rec, index))
    rec = chk.record_dict(rec)
    rid = chk.get(rec, "id", (str, int))
    frames = chk.get(rec, "frames", list, nonempty=True)
    for i, f in enumerate(frames):
        if not isinstance(f, str) or not f:
            chk.fail(f"frames[{i}]", f"expected a frame path, got {f!r}")
    boxes = chk.get(rec, "box", list)
    if len(boxes) != len(frames):
        chk.fail("box", f"{len(boxes)} boxes for {len(frames)} frames (one box per frame expected)")
    norm = np.array([chk.box_xyxy(b, f"box[{i}]", normalised=True) for i, b in enumerate(boxes)], dtype=np.float64)

    size = rec.get("frame_size")
    if not (isinstance(size, list) and len(size) == 2 and all(is_number(v) and v > 0 for v in size)):
        chk.fail("frame_size", f"expected [width, height] (positive numbers), got {size!r}")
    w, h = (int(round(v)) for v in size)
    for key in ("object_class", "object_description", "source"):
        chk.get(rec, key, str, optional=True)
    return ElysiumTrack(
        id=rid, vid=rec.get("vid"), frames=frames, boxes_norm=norm,
        boxes=norm.reshape(-1, 4) * np.array([w, h, w, h], dtype=np.float64), frame_size=(w, h),
        object_class=rec.get("object_class"), object_description=rec.get("object_description"),
        source=rec.get("source"), metadata=rec.get("metadata"), raw=rec,
    )


@register_format("elysium")
def load_elysium(path: str | os.PathLike, *, errors: str = "raise") -> LoadResult:
    """Load ElysiumTrack-1M records as ElysiumTrack objects (normalised and pixel boxes)."""

    def parse(i: int, rec: Any) -> ElysiumTrack:
        if isinstance(rec, DataFormatError):
            raise rec
        return check_elysium(rec, file=path, index=i)

    return collect(read_records(path), parse, errors)
