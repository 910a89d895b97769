"""VideoRef45K (Artemis): a caption for one object tracked by pixel boxes over a frame folder.

Record: {video_name, caption, track_list: [[x1, y1, x2, y2] or [] per frame], frame_path: folder,
frame_id: [frame file names, aligned with track_list], key_frame_box: box or empty, key_frame_id: file name}.
`[]` in track_list means the object has no box on that frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from regionlm.data.checks import Check, is_int
from regionlm.data.io import read_records
from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult, collect
from regionlm.errors import DataFormatError


@dataclass
class Ref45kTrack:
    video_name: str
    caption: str
    frame_path: str
    frame_names: list[str]
    boxes: np.ndarray  # (N, 4) float64 pixel xyxy, NaN where the object has no box
    present: np.ndarray  # (N,) bool
    key_frame_id: str | None = None
    key_frame_box: list[float] | None = None
    raw: dict = field(default_factory=dict, repr=False)


def _label(rec: Any, index: int) -> str:
    # video_name is not unique (several captions per video), so keep the position too.
    name = rec.get("video_name") if isinstance(rec, dict) else None
    return f"#{index} {name}" if isinstance(name, (str, int)) and not isinstance(name, bool) else f"#{index}"


def check_ref45k(rec: Any, *, file="<records>", index: int = 0) -> Ref45kTrack:
    chk = Check(file, _label(rec, index))
    rec = chk.record_dict(rec)
    video_name = chk.get(rec, "video_name", (str, int))
    caption = chk.get(rec, "caption", str, nonempty=True)
    frame_path = chk.get(rec, "frame_path", str, nonempty=True)
    names = chk.get(rec, "frame_id", list, nonempty=True)
    for i, name in enumerate(names):
        if not (isinstance(name, str) and name or is_int(name)):
            chk.fail(f"frame_id[{i}]", f"expected a frame file name, got {name!r}")
    tracks = chk.get(rec, "track_list", list)
    if len(tracks) != len(names):
        chk.fail("track_list", f"{len(tracks)} entries for {len(names)} frames in frame_id")

    boxes = np.full((len(tracks), 4), np.nan)
    for i, box in enumerate(tracks):
        if isinstance(box, list) and not box:
            continue  # no box on this frame
        boxes[i] = chk.box_xyxy(box, f"track_list[{i}]")
    present = ~np.isnan(boxes[:, 0])
    if not present.any():
        chk.fail("track_list", "no frame has a box")

    key_box, key_id = rec.get("key_frame_box") or None, rec.get("key_frame_id") or None
    if key_box is not None:
        key_box = chk.box_xyxy(key_box, "key_frame_box")
        if key_id is None:
            chk.fail("key_frame_id", "missing while key_frame_box is given")
    if key_id is not None and not isinstance(key_id, str):
        chk.fail("key_frame_id", f"expected a frame file name, got {key_id!r}")
    return Ref45kTrack(video_name=video_name, caption=caption, frame_path=frame_path, frame_names=names,
                       boxes=boxes, present=present, key_frame_id=key_id, key_frame_box=key_box, raw=rec)


@register_format("videoref45k")
def load_ref45k(path: str | os.PathLike, *, errors: str = "raise") -> LoadResult:
    """Load VideoRef45K records (JSON list or JSONL) as Ref45kTrack objects."""

    def parse(i: int, rec: Any) -> Ref45kTrack:
        if isinstance(rec, DataFormatError):
            raise rec
        return check_ref45k(rec, file=path, index=i)

    return collect(read_records(path), parse, errors)
