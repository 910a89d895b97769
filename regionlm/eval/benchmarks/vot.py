"""vot: VOT sequence folders scored one-pass with the LaSOT / OTB protocol.

``groundtruth.txt`` holds rotated rectangles (8 numbers) or axis-aligned boxes (4); rotated ones are converted to
axis-aligned boxes keeping the polygon's centre and area (the VOT toolkit / siamese-fc convention: the bounding
box of the points scaled about its centre by sqrt(A_polygon / A_bbox), see regionlm.data.vot). Predictions are
axis-aligned ``[x, y, w, h]`` boxes, ids the sequence folder names. VOT's own reset-based EAO protocol is not
implemented. Metrics: ``auc``, ``precision``, ``norm_precision``, ``op50``, ``op75`` (percent).
"""

from __future__ import annotations

from ...data.vot import load_vot
from .registry import register_benchmark
from .lasot import tracks_of
from .tracking import TrackingBenchmark


@register_benchmark("vot")
class VOT(TrackingBenchmark):
    summary = "VOT sequences, rotated boxes converted to axis-aligned (preserve centre and area), one-pass"
    data_help = "a VOT sequence folder, or a folder of them (groundtruth.txt + frames)"

    def load(self) -> list:
        return tracks_of(self, load_vot(self.data))
