"""The project's canonical sample format (the VideoRefer-700K training format, extended): reader, validator, writer.

A file is a JSON list of samples (see /work/shared/DATA.md). Besides the field types, a sample is checked for
the defects known in the published VideoRefer-700K files: a frame without `segmentation`, `counts: null`,
a `<region>` count that differs from the number of regions, and polygons without height/width.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from regionlm.data.checks import Check, record_label
from regionlm.data.io import atomic_write_json, read_records
from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult, collect
from regionlm.errors import DataFormatError


@dataclass(frozen=True)
class RegionTrack:
    """One region of a sample: segmentations and/or boxes keyed by original frame index."""

    masks: dict[int, Any] = field(default_factory=dict)  # frame -> RLE dict or polygon list
    boxes: dict[int, list[float]] = field(default_factory=dict)  # frame -> [x1, y1, x2, y2] pixels

    @property
    def frames(self) -> list[int]:
        return sorted(self.masks.keys() | self.boxes.keys())


def check_sample(rec: Any, *, file: str | os.PathLike = "<samples>", index: int = 0,
                 num_frames: int | None = None, require_size: bool = False) -> list[RegionTrack]:
    """Validate one canonical sample; returns its regions. Raises DataFormatError naming file/record/field."""
    chk = Check(file, record_label(rec, index))
    rec = chk.record_dict(rec)
    chk.get(rec, "id", (str, int), nonempty=True)
    chk.get(rec, "video", str, nonempty=True)
    chk.get(rec, "task", str, optional=True)
    height, width = chk.size(rec, required=require_size)

    conversations = chk.get(rec, "conversations", list, nonempty=True)
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            chk.fail(f"conversations[{i}]", f"expected an object {{from, value}}, got {type(turn).__name__}")
        chk.get(turn, "from", str, field=f"conversations[{i}].from", nonempty=True)
        chk.get(turn, "value", str, field=f"conversations[{i}].value")

    if "annotation" not in rec:
        chk.fail("annotation", "missing")
    masks = chk.annotation(rec["annotation"], height=height, width=width, num_frames=num_frames, allow_empty=True)

    boxes: list[dict[int, list[float]]] = [{} for _ in masks]
    if rec.get("boxes") is not None:
        raw = chk.get(rec, "boxes", list)
        if len(raw) != len(masks):
            chk.fail("boxes", f"{len(raw)} box tracks but {len(masks)} regions in annotation")
        for r, track in enumerate(raw):
            if not isinstance(track, dict):
                chk.fail(f"boxes[{r}]", f"expected an object mapping frame index to a box, got {type(track).__name__}")
            for key, box in track.items():
                bf = f'boxes[{r}]["{key}"]'
                t = chk.frame_key(key, bf, num_frames)
                if t in boxes[r]:
                    chk.fail(bf, f"frame {t} is given twice")
                boxes[r][t] = chk.box_xyxy(box, bf, height, width)

    regions = [RegionTrack(m, b) for m, b in zip(masks, boxes)]
    for r, region in enumerate(regions):
        if not region.frames:
            chk.fail(f"annotation[{r}]", "region has neither a mask nor a box on any frame")

    text = "\n".join(turn["value"] for turn in conversations)
    chk.region_count(text, len(regions), "conversations")
    return regions


def validate_canonical(samples: list, *, file: str | os.PathLike = "<samples>", errors: str = "raise",
                       num_frames: int | None = None, require_size: bool = False) -> LoadResult:
    """Validate a list of canonical samples under the error policy; also rejects duplicate ids."""
    first_at: dict[Any, int] = {}

    def parse(i: int, rec: Any) -> dict:
        if isinstance(rec, DataFormatError):  # a JSONL line that is not JSON
            raise rec
        check_sample(rec, file=file, index=i, num_frames=num_frames, require_size=require_size)
        if rec["id"] in first_at:
            raise DataFormatError(file, rec["id"], "id", f"duplicate id (first used by record #{first_at[rec['id']]})")
        first_at[rec["id"]] = i
        return rec

    return collect(samples, parse, errors)


@register_format("canonical", "videorefer-700k")
def load_canonical(path: str | os.PathLike, *, errors: str = "raise", num_frames: int | None = None,
                   require_size: bool = False) -> LoadResult:
    """Load a canonical (VideoRefer-700K style) JSON list or JSONL file; records are the sample dicts."""
    return validate_canonical(read_records(path), file=path, errors=errors, num_frames=num_frames,
                              require_size=require_size)


def write_canonical(path: str | os.PathLike, samples: list[dict], *, validate: bool = True) -> None:
    """Write samples as one compact JSON list, atomically; validates first so no bad file is ever written."""
    samples = list(samples)
    if validate:
        validate_canonical(samples, file=path, errors="raise")
    atomic_write_json(path, samples)
