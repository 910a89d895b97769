"""SA-V masklet annotations (`sav_XXXXXX_manual.json` / `_auto.json`).

`masklet` is a list over annotated frames, each a list of COCO RLEs, one per object (in `masklet_id` order).
The files carry no frame numbers: SA-V annotates every 4th frame of its 24 fps videos (6 fps), so the
i-th annotated frame is video frame `i * frame_step` with `frame_step=4` (`masklet_first_appeared_frame`
counts annotated frames, not video frames). Heights and widths are stored as floats; RLE sizes are
[height, width] (SA-V videos are often portrait: 848 high, 480 wide).

Each loaded record is one object (a SavMasklet); a bad object is skipped alone in skip mode, while a problem
with the video-level fields makes the whole file fail.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from regionlm.data.checks import Check, is_int, is_number
from regionlm.data.io import read_json
from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult, check_errors_mode
from regionlm.errors import DataFormatError

SAV_FRAME_STEP = 4


@dataclass
class SavMasklet:
    """One SA-V object: its RLE masks keyed by video frame index, decoded on demand."""

    video_id: str
    masklet_id: int
    height: int
    width: int
    num_frames: int  # frames of the video (not only the annotated ones)
    rles: dict[int, dict]  # video frame index -> COCO RLE
    meta: dict = field(default_factory=dict)  # the per-masklet fields, e.g. size_bucket, first_appeared_frame

    @property
    def frames(self) -> list[int]:
        return sorted(self.rles)

    def mask(self, frame: int) -> np.ndarray:
        """(H, W) bool mask on an annotated frame."""
        from regionlm.regions import rle_to_mask

        if frame not in self.rles:
            raise KeyError(f"frame {frame} is not annotated (annotated: every {SAV_FRAME_STEP}th from 0)")
        return rle_to_mask(self.rles[frame])

    def masks(self) -> dict[int, np.ndarray]:
        return {t: self.mask(t) for t in self.frames}

    def visible_frames(self) -> list[int]:
        """Annotated frames where the object's mask is not empty."""
        return [t for t in self.frames if self.mask(t).any()]


def _positive_int(chk: Check, data: dict, key: str) -> int:
    value = data.get(key)
    if not (is_number(value) and value > 0 and float(value).is_integer()):
        chk.fail(key, f"expected a positive integer, got {value!r}")
    return int(value)


def load_sav_file(path: str | os.PathLike, *, errors: str = "raise", frame_step: int = SAV_FRAME_STEP) -> LoadResult:
    """Load one SA-V annotation file: one SavMasklet record per object."""
    check_errors_mode(errors)
    path = Path(path)
    data = read_json(path)
    video_id = data.get("video_id") if isinstance(data, dict) else None
    chk = Check(path, video_id if isinstance(video_id, str) else path.stem)
    data = chk.record_dict(data)
    height, width = _positive_int(chk, data, "video_height"), _positive_int(chk, data, "video_width")
    num_frames = _positive_int(chk, data, "video_frame_count")
    ids = chk.get(data, "masklet_id", list)
    if not all(is_int(i) for i in ids) or len(set(ids)) != len(ids):
        chk.fail("masklet_id", "expected a list of distinct integers")
    if "masklet_num" in data and data["masklet_num"] != len(ids):
        chk.fail("masklet_num", f"{data['masklet_num']} but masklet_id lists {len(ids)} objects")
    masklet = chk.get(data, "masklet", list)
    for i, per_frame in enumerate(masklet):
        if not (isinstance(per_frame, list) and len(per_frame) == len(ids)):
            got = len(per_frame) if isinstance(per_frame, list) else type(per_frame).__name__
            chk.fail(f"masklet[{i}]", f"expected a list of {len(ids)} RLEs (one per object), got {got}")
    if masklet and (len(masklet) - 1) * frame_step >= num_frames:
        chk.fail("masklet", f"{len(masklet)} annotated frames every {frame_step} frames do not fit in "
                            f"{num_frames} video frames")

    # Per-object fields are lists aligned with masklet_id (masklet_size_bucket, masklet_type, ...).
    per_object = {k[len("masklet_"):]: v for k, v in data.items()
                  if k.startswith("masklet_") and k != "masklet_id" and isinstance(v, list) and len(v) == len(ids)}
    result = LoadResult()
    for j, mid in enumerate(ids):
        obj = Check(path, f"{chk.record}/masklet {mid}")
        try:
            rles = {}
            for i, per_frame in enumerate(masklet):
                if not isinstance(per_frame[j], dict):
                    obj.fail(f"masklet[{i}][{j}]", f"expected an RLE object, got {type(per_frame[j]).__name__}")
                obj.segmentation(per_frame[j], f"masklet[{i}][{j}]", height, width)
                rles[i * frame_step] = per_frame[j]
            meta = {k: v[j] for k, v in per_object.items()}
            result.records.append(SavMasklet(video_id=str(chk.record), masklet_id=mid, height=height, width=width,
                                             num_frames=num_frames, rles=rles, meta=meta))
        except DataFormatError as err:
            result.fail(err, errors)
    return result


@register_format("sav")
def load_sav(path: str | os.PathLike, *, errors: str = "raise", frame_step: int = SAV_FRAME_STEP) -> LoadResult:
    """Load an SA-V annotation JSON, or every *.json in a folder, as SavMasklet records."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise DataFormatError(path, None, None, "no SA-V *.json files in the folder")
    result = LoadResult()
    for f in files:
        result.extend(load_sav_file(f, errors=errors, frame_step=frame_step))
    return result

