"""world-sot: RegionWorld single-object tracking (sot.jsonl).

A sequence runs from the record's ``init_frame`` (the first frame where at least half of the whole object is seen)
to the end of the video; the system gets the object's box on that frame (``init_box``, xywh pixels) and gives one
box per frame of the sequence (one per video frame is accepted too: the frames before ``init_frame`` are ignored).
Frames where the object is out of the picture or fully hidden are target-absent (LaSOT protocol). Metrics: ``auc``,
``precision``, ``norm_precision``, ``op50``, ``op75`` (percent).
"""

from __future__ import annotations

import numpy as np

from ...errors import DataFormatError
from .base import Sample, resolve_path
from .registry import register_benchmark
from .tracking import Track, TrackingBenchmark, xyxy_track_to_xywh
from .world import read_world_records, require_keys


def world_tracks(bench: TrackingBenchmark, file: str, with_init_box: bool) -> list[Track]:
    tracks = []
    keys = ("id", "video", "num_frames", "init_frame", "boxes", "absent")
    for i, rec in enumerate(read_world_records(bench.data, file)):
        require_keys(rec, keys, file, i)
        n, init = int(rec["num_frames"]), int(rec["init_frame"])
        if len(rec["boxes"]) != n or len(rec["absent"]) != n or not 0 <= init < n:
            raise DataFormatError(bench.data / file, rec["id"], "boxes",
                                  f"expected {n} boxes and absent flags and 0 <= init_frame < {n}")
        gt, missing = xyxy_track_to_xywh(rec["boxes"])
        absent = np.asarray(rec["absent"], dtype=bool) | missing
        sample = Sample(
            id=str(rec["id"]), task=bench.task,
            video=resolve_path(rec["video"], bench.data, bench.options.video_root),
            frame_indices=tuple(range(init, n)), num_frames=n - init,
            init_box=tuple(float(v) for v in gt[init]) if with_init_box else None,
            expression=rec.get("expression"),
            prompt=rsot_prompt(rec["expression"]) if not with_init_box else "",
            height=rec.get("height"), width=rec.get("width"),
        )
        tracks.append(Track(str(rec["id"]), gt[init:], absent[init:], sample))
    return tracks


def rsot_prompt(expression: str) -> str:
    return f"Track {expression} in the video: give its box on every frame."


@register_benchmark("world-sot")
class WorldSOT(TrackingBenchmark):
    summary = "RegionWorld single-object tracking (LaSOT protocol)"
    data_help = "a RegionWorld folder (regionlm world generate OUT --split test)"

    def load(self) -> list:
        return world_tracks(self, "sot.jsonl", with_init_box=True)
