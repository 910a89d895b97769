"""Single-object tracking sequence folders: LaSOT, GOT-10k, OTB.

A sequence folder holds its frames (in `img/`, or the folder itself) and `groundtruth.txt` (OTB:
`groundtruth_rect.txt`) with one `x,y,w,h` box per frame, separated by commas, spaces or tabs.
Target-absent flags, one 0/1 per frame: LaSOT `full_occlusion.txt` and `out_of_view.txt` (comma separated),
GOT-10k `absence.label` (one per line). A box with NaN or zero width/height also marks the target absent
(the pytracking convention).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult, check_errors_mode
from regionlm.errors import DataFormatError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
GROUNDTRUTH_NAMES = ("groundtruth.txt", "groundtruth_rect.txt")
FRAME_SUBDIRS = ("img", "color", "frames")  # LaSOT/OTB, VOT >= 2020, the copies in shared/data
_SEP = re.compile(r"[,\s]+")


@dataclass
class Sequence:
    """A tracking sequence: N frames, one box per frame (NaN where unknown), and target-absent flags."""

    name: str
    frames_dir: Path
    frames: list[Path]
    boxes_xywh: np.ndarray  # (N, 4) float64
    absent: np.ndarray  # (N,) bool
    polygons: np.ndarray | None = None  # VOT only: (N, 2k) the original polygon coordinates

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def boxes_xyxy(self) -> np.ndarray:
        b = self.boxes_xywh
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def list_frames(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def find_frames(seq_dir: Path) -> tuple[Path, list[Path]]:
    """The frames of a sequence: in a known subfolder (img/, color/, frames/) or the folder itself."""
    for sub in FRAME_SUBDIRS:
        if (seq_dir / sub).is_dir():
            frames = list_frames(seq_dir / sub)
            if frames:
                return seq_dir / sub, frames
    frames = list_frames(seq_dir)
    if not frames:
        raise DataFormatError(seq_dir, seq_dir.name, None,
                              f"no frames (jpg/png/bmp) in the folder or in {'/, '.join(FRAME_SUBDIRS)}/")
    return seq_dir, frames


def find_groundtruth(seq_dir: Path) -> Path | None:
    return next((seq_dir / n for n in GROUNDTRUTH_NAMES if (seq_dir / n).is_file()), None)


def read_number_lines(path: Path, seq: str, accept: Callable[[int], bool], expect: str) -> list[np.ndarray]:
    """One array of numbers per line; `accept(count)` says which counts are allowed. Trailing blank lines
    are ignored, any other bad line raises naming its line number."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        try:
            values = np.array([float(v) for v in _SEP.split(text)], dtype=np.float64) if text else None
        except ValueError:
            raise DataFormatError(path, seq, f"line {n}", f"cannot parse {text[:80]!r} as numbers") from None
        if values is None or not accept(len(values)):
            got = 0 if values is None else len(values)
            raise DataFormatError(path, seq, f"line {n}", f"expected {expect}, got {got} value(s): {text[:80]!r}")
        if np.isinf(values).any():
            raise DataFormatError(path, seq, f"line {n}", f"infinite value in {text[:80]!r}")
        rows.append(values)
    return rows


def read_flags(path: Path, seq: str, num: int) -> np.ndarray:
    """0/1 flags separated by commas, spaces or newlines; exactly `num` of them."""
    tokens = [t for t in _SEP.split(path.read_text(encoding="utf-8", errors="replace").strip()) if t]
    bad = next((i for i, t in enumerate(tokens) if t not in ("0", "1")), None)
    if bad is not None:
        raise DataFormatError(path, seq, f"value {bad + 1}", f"expected 0 or 1, got {tokens[bad][:20]!r}")
    if len(tokens) != num:
        raise DataFormatError(path, seq, None, f"{len(tokens)} flags in {path.name} but {num} frames")
    return np.array(tokens) == "1"


def check_counts(gt: Path, seq: str, num_boxes: int, frames_dir: Path, num_frames: int) -> None:
    if num_boxes != num_frames:
        raise DataFormatError(gt, seq, None, f"{num_boxes} lines in {gt.name} but {num_frames} frames in "
                                             f"{frames_dir}")


def load_sot_sequence(seq_dir: str | os.PathLike, *, name: str | None = None) -> Sequence:
    """Load one LaSOT / GOT-10k / OTB sequence folder. Raises DataFormatError on any problem."""
    seq_dir = Path(seq_dir)
    name = name or seq_dir.name
    gt = find_groundtruth(seq_dir)
    if gt is None:
        raise DataFormatError(seq_dir, name, None, f"no {' or '.join(GROUNDTRUTH_NAMES)}")
    frames_dir, frames = find_frames(seq_dir)
    rows = read_number_lines(gt, name, lambda k: k == 4, "4 numbers x,y,w,h")
    check_counts(gt, name, len(rows), frames_dir, len(frames))
    boxes = np.stack(rows) if rows else np.zeros((0, 4))
    for n, (w, h) in enumerate(boxes[:, 2:], start=1):
        if w < 0 or h < 0:
            raise DataFormatError(gt, name, f"line {n}", f"negative width or height ({w:g}, {h:g})")
    absent = np.isnan(boxes).any(axis=1) | (boxes[:, 2] == 0) | (boxes[:, 3] == 0)
    for flag_file in ("full_occlusion.txt", "out_of_view.txt", "absence.label"):
        if (seq_dir / flag_file).is_file():
            absent |= read_flags(seq_dir / flag_file, name, len(frames))
    return Sequence(name=name, frames_dir=frames_dir, frames=frames, boxes_xywh=boxes, absent=absent)


def sequence_dirs(root: Path) -> list[Path]:
    """Folders below `root` holding a ground-truth file, one or two levels down (LaSOT nests by class)."""
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if find_groundtruth(sub):
            found.append(sub)
        else:
            found.extend(sorted(p for p in sub.iterdir() if p.is_dir() and find_groundtruth(p)))
    return found


def load_sequences(path: str | os.PathLike, load_one: Callable[[Path], Sequence], errors: str) -> LoadResult:
    """One sequence folder, or a folder of them; in skip mode a bad sequence is skipped and reported."""
    check_errors_mode(errors)
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, None, None, "not a folder")
    dirs = [path] if find_groundtruth(path) else sequence_dirs(path)
    if not dirs:
        raise DataFormatError(path, None, None, f"no sequence folder with {' or '.join(GROUNDTRUTH_NAMES)} found")
    result = LoadResult()
    for d in dirs:
        try:
            result.records.append(load_one(d))
        except DataFormatError as err:
            result.fail(err, errors)
    return result


@register_format("sot", "lasot", "got10k", "otb")
def load_sot(path: str | os.PathLike, *, errors: str = "raise") -> LoadResult:
    """Load a LaSOT / GOT-10k / OTB sequence folder, or a folder of sequence folders, as Sequence records."""
    return load_sequences(path, load_sot_sequence, errors)
