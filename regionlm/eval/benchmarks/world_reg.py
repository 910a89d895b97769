"""world-reg: RegionWorld video referring expression generation (reg.jsonl, Elysium's Video-REG task).

The system sees the object's mask and box on one frame and names it with a referring expression; metrics are the
caption metrics of the predicted expressions against the reference expression (``bleu4``, ``meteor``,
``rouge_l``, ``cider``, x100).
"""

from __future__ import annotations

from ...world.language import DIRECTIONS
from ...world.spec import COLOURS, SHAPES
from .base import Sample, Scores, resolve_path
from .captions import CaptionBenchmark
from .registry import register_benchmark
from .world import read_world_records, require_keys

REG_PROMPT = ("Give a short referring expression for [<region>] that tells it apart from every other object in "
              "the video.")


@register_benchmark("world-reg")
class WorldREG(CaptionBenchmark):
    summary = "RegionWorld referring expression generation (Video-REG): caption metrics"
    data_help = "a RegionWorld folder (regionlm world generate OUT --split test)"

    def load(self) -> list:
        recs = read_world_records(self.data, "reg.jsonl")
        return [require_keys(r, ("id", "video", "frame", "box", "expression", "annotation"), "reg.jsonl", i)
                for i, r in enumerate(recs)]

    def samples(self, items: list) -> list[Sample]:
        return [Sample(id=str(r["id"]), task=self.task, video=resolve_path(r["video"], self.data,
                                                                          self.options.video_root),
                       prompt=REG_PROMPT, regions=tuple(r["annotation"]), frame_idx=int(r["frame"]),
                       height=r.get("height"), width=r.get("width")) for r in items]

    def score(self, items: list, predictions: dict) -> Scores:
        refs = {str(r["id"]): [r["expression"]] for r in items}
        return self.caption_scores(refs, {sid: predictions[sid] for sid in refs})

    def random_answer(self, sample: Sample, rng) -> str:
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        return f"the {colour} {shape} that starts moving {DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]}"
