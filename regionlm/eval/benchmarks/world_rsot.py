"""world-rsot: RegionWorld referring single-object tracking (rsot.jsonl, Elysium's RSOT task).

As world-sot, but the system gets a referring expression (``sample.expression``, also in ``sample.prompt``)
instead of the first box, so the first frame is *not* overwritten by the ground truth (the tracker was not given
it). Metrics: ``auc``, ``precision``, ``norm_precision``, ``op50``, ``op75`` (percent).
"""

from __future__ import annotations

from .registry import register_benchmark
from .tracking import TrackingBenchmark
from .world_sot import world_tracks


@register_benchmark("world-rsot")
class WorldRSOT(TrackingBenchmark):
    summary = "RegionWorld referring tracking: follow the object an expression names"
    data_help = "a RegionWorld folder (regionlm world generate OUT --split test)"
    first_frame_gt = False
    gives_init_box = False

    def load(self) -> list:
        return world_tracks(self, "rsot.jsonl", with_init_box=False)
