"""VideoRefer-Bench-Q (multiple-choice questions) and VideoRefer-Bench-D (descriptions).

Bench-Q: {id, video, Question (with <region>, maybe after <objectN>), type, options ["(A) ...", ...],
Answer "(X) ...", frame_idx, annotation}. Bench-D: {id, video, caption, frame_idx, annotation}.
`frame_idx` picks the one mask used in single-frame mode, so every region must have a mask on that frame.
Records come back as the original dicts.
"""

from __future__ import annotations

import os
import re
from typing import Any

from regionlm.data.checks import Check, record_label
from regionlm.data.io import read_records
from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult, collect
from regionlm.errors import DataFormatError

QUESTION_TYPES = ("Basic Questions", "Sequential Questions", "Relationship Questions", "Reasoning Questions",
                  "Future Predictions")
_OPTION = re.compile(r"\(([A-Z])\)\s*(.*)", re.S)


def _key_frame(chk: Check, rec: dict, regions: list[dict[int, Any]], num_frames: int | None) -> int:
    value = chk.get(rec, "frame_idx", (str, int))
    t = chk.frame_key(value, "frame_idx", num_frames)
    for r, frames in enumerate(regions):
        if t not in frames:
            chk.fail("frame_idx", f"frame {t} has no mask for region {r} (annotated: {sorted(frames)})")
    return t


def check_bench_q(rec: Any, *, file="<records>", index: int = 0, num_frames: int | None = None) -> dict:
    chk = Check(file, record_label(rec, index))
    rec = chk.record_dict(rec)
    chk.get(rec, "id", (str, int))
    chk.get(rec, "video", str, nonempty=True)
    question = chk.get(rec, "Question", str, nonempty=True)
    qtype = chk.get(rec, "type", str)
    if qtype not in QUESTION_TYPES:
        chk.fail("type", f"unknown question type {qtype!r}; expected one of {', '.join(QUESTION_TYPES)}")

    options = chk.get(rec, "options", list)
    if len(options) < 2:
        chk.fail("options", f"expected at least 2 options, got {len(options)}")
    letters = []
    for i, option in enumerate(options):
        m = _OPTION.fullmatch(option.strip()) if isinstance(option, str) else None
        expected = chr(ord("A") + i)
        if m is None or m.group(1) != expected:
            chk.fail(f"options[{i}]", f"expected a string starting with ({expected}), got {option!r}")
        letters.append(m.group(1))
    answer = chk.get(rec, "Answer", str)
    m = _OPTION.fullmatch(answer.strip())
    if m is None:
        chk.fail("Answer", f"expected '(X) ...' with a letter X, got {answer!r}")
    if m.group(1) not in letters:
        chk.fail("Answer", f"answer letter {m.group(1)} is not among the options {', '.join(letters)}")

    if "annotation" not in rec:
        chk.fail("annotation", "missing")
    regions = chk.annotation(rec["annotation"], num_frames=num_frames)
    chk.region_count(question, len(regions), "Question")
    _key_frame(chk, rec, regions, num_frames)
    return rec


def check_bench_d(rec: Any, *, file="<records>", index: int = 0, num_frames: int | None = None) -> dict:
    chk = Check(file, record_label(rec, index))
    rec = chk.record_dict(rec)
    chk.get(rec, "id", (str, int))
    chk.get(rec, "video", str, nonempty=True)
    chk.get(rec, "caption", str, nonempty=True)
    if "annotation" not in rec:
        chk.fail("annotation", "missing")
    regions = chk.annotation(rec["annotation"], num_frames=num_frames)
    if not regions:
        chk.fail("annotation", "no region to describe")
    _key_frame(chk, rec, regions, num_frames)
    return rec


def _load(path, check, errors: str, num_frames: int | None) -> LoadResult:
    def parse(i: int, rec: Any) -> dict:
        if isinstance(rec, DataFormatError):
            raise rec
        return check(rec, file=path, index=i, num_frames=num_frames)

    return collect(read_records(path), parse, errors)


@register_format("videorefer-q")
def load_bench_q(path: str | os.PathLike, *, errors: str = "raise", num_frames: int | None = None) -> LoadResult:
    """Load VideoRefer-Bench-Q questions (JSON list or JSONL)."""
    return _load(path, check_bench_q, errors, num_frames)


@register_format("videorefer-d")
def load_bench_d(path: str | os.PathLike, *, errors: str = "raise", num_frames: int | None = None) -> LoadResult:
    """Load VideoRefer-Bench-D description items (JSON list or JSONL)."""
    return _load(path, check_bench_d, errors, num_frames)
