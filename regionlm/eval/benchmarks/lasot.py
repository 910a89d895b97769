"""lasot: any folder of LaSOT / GOT-10k / OTB-style sequence folders (or one sequence folder).

Each sequence folder has ``groundtruth.txt`` (``groundtruth_rect.txt`` for OTB: one ``x,y,w,h`` per line) and its
frames in ``img/`` (needed only to run a tracker: scoring ``--predictions`` reads the ground truth alone);
``full_occlusion.txt`` / ``out_of_view.txt`` (LaSOT) or ``absence.label`` (GOT-10k) mark the target absent.
Prediction ids are the sequence folder names. Metrics: ``auc``, ``precision``, ``norm_precision``, ``op50``,
``op75`` (percent, first frame overwritten by the GT, absent frames count as failures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.result import LoadResult
from ...data.sot import (FRAME_SUBDIRS, GROUNDTRUTH_NAMES, Sequence, find_frames, find_groundtruth, load_sequences,
                         load_sot_sequence, read_flags, read_number_lines)
from ...errors import DataFormatError
from .base import Sample
from .registry import register_benchmark
from .tracking import Track, TrackingBenchmark

ABSENCE_FILES = ("full_occlusion.txt", "out_of_view.txt", "absence.label")


def load_groundtruth_only(seq_dir: Path) -> Sequence:
    """A sequence without frames: ground truth and absence flags only (enough to score predictions)."""
    name = seq_dir.name
    gt = find_groundtruth(seq_dir)
    if gt is None:
        raise DataFormatError(seq_dir, name, None, f"no {' or '.join(GROUNDTRUTH_NAMES)}")
    rows = read_number_lines(gt, name, lambda k: k == 4, "4 numbers x,y,w,h")
    boxes = np.stack(rows) if rows else np.zeros((0, 4))
    absent = np.isnan(boxes).any(axis=1) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    for flag_file in ABSENCE_FILES:
        if (seq_dir / flag_file).is_file():
            absent |= read_flags(seq_dir / flag_file, name, len(boxes))
    return Sequence(name=name, frames_dir=seq_dir, frames=[], boxes_xywh=boxes, absent=absent)


def sequence_or_groundtruth(seq_dir: Path) -> Sequence:
    """The full sequence when its frames are there, else its ground truth alone."""
    try:
        find_frames(seq_dir)
    except DataFormatError:
        return load_groundtruth_only(seq_dir)
    return load_sot_sequence(seq_dir)


def tracks_of(bench: TrackingBenchmark, result: LoadResult) -> list[Track]:
    tracks, seen = [], set()
    for seq in result.records:
        if seq.name in seen:
            raise DataFormatError(bench.data, seq.name, None, "two sequence folders share this name (prediction ids "
                                                              "are folder names)")
        seen.add(seq.name)
        if len(seq.boxes_xywh) == 0:
            raise DataFormatError(bench.data, seq.name, None, "empty ground truth")
        gt = np.nan_to_num(seq.boxes_xywh, nan=0.0)
        sample = Sample(id=seq.name, task=bench.task, video=str(seq.frames_dir) if seq.frames else None,
                        frames=tuple(str(f) for f in seq.frames), num_frames=len(gt),
                        init_box=tuple(float(v) for v in gt[0]))
        tracks.append(Track(seq.name, gt, np.asarray(seq.absent, dtype=bool), sample))
    return tracks


@register_benchmark("lasot")
class LaSOT(TrackingBenchmark):
    summary = "LaSOT / GOT-10k / OTB-style sequence folders (LaSOT protocol)"
    data_help = f"a folder of sequence folders with groundtruth.txt (+ {'/, '.join(FRAME_SUBDIRS)}/ frames)"

    def load(self) -> list:
        return tracks_of(self, load_sequences(self.data, sequence_or_groundtruth, "raise"))
