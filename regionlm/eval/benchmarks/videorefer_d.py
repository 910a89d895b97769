"""videorefer-d: VideoRefer-Bench-D (400 region descriptions on Panda-70M clips).

--data is the benchmark's JSON file; videos resolve next to it or under --video-root. The official metric is a
judge's four-dimension score (``judge_overall`` and one key per dimension, 0-5): give one with
``--judge-url URL --judge-model NAME`` (an OpenAI-compatible endpoint) or ``--judge-hf DIR`` (a local causal LM).
Caption metrics against the reference (``bleu4``, ``meteor``, ``rouge_l``, ``cider``) are reported too. Judge
replies are cached in OUT/judge_replies.jsonl.
"""

from __future__ import annotations

from ...data.videorefer import load_bench_d
from .base import Sample, Scores, resolve_path
from .captions import CaptionBenchmark
from .choice import int_frame
from .registry import register_benchmark
from .world_d import DESCRIBE_PROMPT


@register_benchmark("videorefer-d")
class VideoReferD(CaptionBenchmark):
    summary = "VideoRefer-Bench-D region descriptions: judge (--judge-url/--judge-hf) + caption metrics"
    data_help = "the VideoRefer-Bench-D JSON file"
    headline = ("judge_overall", "Subject Correspondence", "Appearance Description", "Temporal Description",
                "Hallucination Detection", "bleu4", "meteor", "rouge_l", "cider")

    def load(self) -> list:
        return load_bench_d(self.data).records

    def samples(self, items: list) -> list[Sample]:
        base = self.data.parent
        return [Sample(id=str(r["id"]), task=self.task, video=resolve_path(r["video"], base, self.options.video_root),
                       prompt=DESCRIBE_PROMPT, regions=tuple(r["annotation"]), frame_idx=int_frame(r["frame_idx"]),
                       height=r.get("height"), width=r.get("width")) for r in items]

    def score(self, items: list, predictions: dict) -> Scores:
        refs = {str(r["id"]): [r["caption"]] for r in items}
        scores = self.caption_scores(refs, {sid: predictions[sid] for sid in refs})
        judge = self.options.judge
        if judge is None:
            scores.metrics["judge_overall"] = None
            scores.notes.append("no judge given (--judge-url URL --judge-model NAME, or --judge-hf DIR): the "
                                "official judge scores are not computed")
        else:
            judged = [(str(r["id"]), r["caption"], predictions[str(r["id"])], None) for r in items]
            self.add_judge(scores, judged, judge, getattr(judge, "name", type(judge).__name__))
        return scores
