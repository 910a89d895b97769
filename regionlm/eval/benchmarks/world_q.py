"""world-q: RegionWorld region multiple choice (region_qa.json, the VideoRefer-Bench-Q format).

Metrics: ``overall`` and one key per question type (percent), as videorefer-q, plus ``region_swap``: every
question whose look-alike object (same colour, often the same shape) has another correct answer is asked a second
time with the look-alike's region in place of the first region, as sample ``<id>@lookalike``. ``region_swap`` is
the percent of those questions whose swapped answer is the look-alike's answer letter: a system that reads the
region follows it (high), one that guesses from the text alone does not (near chance). With --predictions, give
the swapped answers under the ids ``<id>@lookalike`` too.
"""

from __future__ import annotations

from ...errors import RegionLMError
from ..metrics.multiple_choice import extract_choice, gt_letter
from .base import Sample, Scores
from .choice import MultipleChoiceBenchmark, score_choice
from .registry import register_benchmark
from .world import read_world_records, require_keys

SWAP_SUFFIX = "@lookalike"


@register_benchmark("world-q")
class WorldQ(MultipleChoiceBenchmark):
    summary = "RegionWorld region multiple choice (+ region_swap: does the answer follow the region?)"
    data_help = "a RegionWorld folder (regionlm world generate OUT --split test)"
    headline = ("overall", "region_swap")

    def load(self) -> list:
        recs = read_world_records(self.data, "region_qa.json")
        keys = ("id", "video", "Question", "options", "Answer", "type", "annotation", "frame_idx")
        return [require_keys(r, keys, "region_qa.json", i) for i, r in enumerate(recs)]

    def samples(self, items: list) -> list[Sample]:
        out = []
        for rec in items:
            out.append(self.make_sample(rec))
            look = rec.get("lookalike")
            if look:
                out.append(self.make_sample(rec, sid=f"{rec['id']}{SWAP_SUFFIX}", regions=look["annotation"],
                                            frame_idx=look["frame_idx"]))
        return out

    def score(self, items: list, predictions: dict) -> Scores:
        scores = score_choice(items, predictions)
        rows = {row["id"]: row for row in scores.per_sample}
        followed = asked = 0
        for rec in items:
            look = rec.get("lookalike")
            if not look:
                continue
            sid = str(rec["id"])
            pred = predictions[sid + SWAP_SUFFIX]
            choice = extract_choice(pred)
            try:
                want = gt_letter(look["Answer"])
            except ValueError as err:
                raise RegionLMError(f"question {sid}, lookalike: {err}") from None
            follows = choice is not None and choice.lower() == want.lower()
            rows[sid].update(swap_prediction=pred, swap_choice=choice, swap_answer=want, swap_follows=follows)
            asked += 1
            followed += follows
        scores.metrics["region_swap"] = 100.0 * followed / asked if asked else None
        scores.details["region_swap"] = {"followed": followed, "asked": asked}
        if not asked:
            scores.notes.append("region_swap: no look-alike question among the scored questions")
        return scores
