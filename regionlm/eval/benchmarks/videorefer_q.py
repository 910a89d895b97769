"""videorefer-q: VideoRefer-Bench-Q (1,000 region multiple-choice questions on DAVIS / MeViS videos).

--data is the benchmark's JSON file; videos (frame folders such as ``DAVIS/JPEGImages/480p/aerobatics``) are
resolved next to it or under --video-root (not needed when scoring --predictions). Metrics: ``overall`` and one
key per question type (percent), with the official prompt and letter extraction.
"""

from __future__ import annotations

from ...data.videorefer import load_bench_q
from .choice import MultipleChoiceBenchmark
from .registry import register_benchmark


@register_benchmark("videorefer-q")
class VideoReferQ(MultipleChoiceBenchmark):
    summary = "VideoRefer-Bench-Q region multiple choice"
    data_help = "the VideoRefer-Bench-Q JSON file"

    def load(self) -> list:
        return load_bench_q(self.data).records
