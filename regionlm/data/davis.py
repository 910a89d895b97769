"""DAVIS video object segmentation: frames + one PNG label map per annotated frame.

Layouts: a DAVIS root (`JPEGImages/480p/<seq>/*.jpg` + `Annotations/480p/<seq>/*.png`) or a plain pair of
folders (`<seq>/frames/` + `<seq>/masks/`). PNG values (palette index or grey level):

- mode "2017": value = object id, 0 = background, 255 = void (unlabelled border pixels);
- mode "2016": single object, stored as 255 (remapped to object id 1; no void);
- mode "auto" (default): "2016" when the sequence's only values are {0, 255}, else "2017". The decision is
  made over the whole sequence, not per frame, so a 2017 frame showing only void is not misread.

Masks are matched to frames by file stem; frames without a PNG are marked not annotated (DAVIS test sets
annotate the first frame only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from regionlm.data.registry import register_format
from regionlm.data.result import LoadResult, check_errors_mode
from regionlm.data.sot import list_frames
from regionlm.errors import DataFormatError

MODES = ("auto", "2016", "2017")
VOID = 255


@dataclass
class DavisSequence:
    name: str
    frames: list[Path]
    masks: dict[int, np.ndarray]  # object id -> (T, H, W) bool, all False on frames without annotation
    void: np.ndarray  # (T, H, W) bool
    annotated: np.ndarray  # (T,) bool: the frame has a PNG
    mode: str  # "2016" or "2017", as applied

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.masks)


def _read_label_map(path: Path, seq: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode == "1":
                im = im.convert("L")  # 1-bit PNGs come back as 0/255
            if im.mode not in ("P", "L"):
                raise DataFormatError(path, seq, "mode", f"{im.mode} PNG; expected a palette (P) or greyscale (L) "
                                                         f"PNG whose values are object ids")
            return np.asarray(im, dtype=np.uint8)
    except OSError as err:
        raise DataFormatError(path, seq, None, f"cannot read the PNG: {err}") from None


def load_davis_sequence(frames_dir: str | os.PathLike, masks_dir: str | os.PathLike, *, name: str | None = None,
                        mode: str = "auto") -> DavisSequence:
    """Load one sequence from a frames folder and a masks folder. Raises DataFormatError."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    frames_dir, masks_dir = Path(frames_dir), Path(masks_dir)
    name = name or frames_dir.name
    for d in (frames_dir, masks_dir):
        if not d.is_dir():
            raise DataFormatError(d, name, None, "no such folder")
    frames = list_frames(frames_dir)
    if not frames:
        raise DataFormatError(frames_dir, name, None, "no frames")
    mask_files = sorted(masks_dir.glob("*.png"))
    if not mask_files:
        raise DataFormatError(masks_dir, name, None, "no PNG masks")
    index = {f.stem: t for t, f in enumerate(frames)}
    for m in mask_files:
        if m.stem not in index:
            raise DataFormatError(m, name, None, f"mask has no matching frame {m.stem}.* in {frames_dir}")

    with Image.open(frames[0]) as im:
        width, height = im.size
    labels = np.zeros((len(frames), height, width), dtype=np.uint8)
    annotated = np.zeros(len(frames), dtype=bool)
    for m in mask_files:
        lab = _read_label_map(m, name)
        if lab.shape != (height, width):
            raise DataFormatError(m, name, None, f"mask is {lab.shape[1]}x{lab.shape[0]} but the frames are "
                                                 f"{width}x{height}")
        labels[index[m.stem]] = lab
        annotated[index[m.stem]] = True

    values = set(np.unique(labels[annotated]).tolist())
    if mode == "auto":
        mode = "2016" if values == {0, VOID} else "2017"
    if mode == "2016":
        if not values <= {0, VOID}:
            raise DataFormatError(masks_dir, name, None, f"values {sorted(values - {0, VOID})} found: not "
                                                         f"DAVIS-2016 binary masks (0/255); use mode='2017'")
        masks = {1: labels == VOID} if VOID in values else {}
        void = np.zeros_like(labels, dtype=bool)
    else:
        masks = {int(v): labels == v for v in sorted(values - {0, VOID})}
        void = labels == VOID
    return DavisSequence(name=name, frames=frames, masks=masks, void=void, annotated=annotated, mode=mode)


@register_format("davis")
def load_davis(path: str | os.PathLike, *, errors: str = "raise", mode: str = "auto", resolution: str = "480p",
               sequences: list[str] | None = None) -> LoadResult:
    """Load a DAVIS root (all sequences, or `sequences`) or one `frames/` + `masks/` pair as DavisSequences."""
    check_errors_mode(errors)
    path = Path(path)
    if (path / "frames").is_dir() and (path / "masks").is_dir():
        pairs = [(path.name, path / "frames", path / "masks")]
    elif (path / "JPEGImages").is_dir():
        ann_root = path / "Annotations" / resolution
        if not ann_root.is_dir():
            raise DataFormatError(path, None, None, f"no Annotations/{resolution} folder")
        names = sequences or sorted(p.name for p in ann_root.iterdir() if p.is_dir())
        pairs = [(n, path / "JPEGImages" / resolution / n, ann_root / n) for n in names]
    else:
        raise DataFormatError(path, None, None, f"neither a DAVIS root (JPEGImages/{resolution}/, "
                                                f"Annotations/{resolution}/) nor a frames/ + masks/ pair")
    result = LoadResult()
    for name, frames_dir, masks_dir in pairs:
        try:
            result.records.append(load_davis_sequence(frames_dir, masks_dir, name=name, mode=mode))
        except DataFormatError as err:
            result.fail(err, errors)
    return result
