"""world-vqa: RegionWorld video-level multiple choice (video_qa.json; types Counting and Event, no regions).

Metrics: ``overall`` and one key per type (percent), scored like VideoRefer-Bench-Q.
"""

from __future__ import annotations

from .choice import MultipleChoiceBenchmark
from .registry import register_benchmark
from .world import read_world_records, require_keys


@register_benchmark("world-vqa")
class WorldVQA(MultipleChoiceBenchmark):
    summary = "RegionWorld video-level multiple choice (counting, events)"
    data_help = "a RegionWorld folder (regionlm world generate OUT --split test)"

    def load(self) -> list:
        recs = read_world_records(self.data, "video_qa.json")
        keys = ("id", "video", "Question", "options", "Answer", "type")
        return [require_keys(r, keys, "video_qa.json", i) for i, r in enumerate(recs)]
