"""Shared by the text-generation benchmarks (world-d, world-reg, videorefer-d, elysium-reg): caption metrics
(``bleu1``..``bleu4``, ``meteor``, ``rouge_l``, ``cider``, x100 as the papers print them) and judge scores
(``judge_overall`` and one key per dimension, named exactly as the dimension, 0-5)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from ...errors import RegionLMError
from ..metrics.captions import evaluate_captions
from ..metrics.judge import DIMENSIONS, aggregate_judge_scores, parse_judge_reply
from .base import Benchmark, Scores

CAPTION_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")


class CaptionBenchmark(Benchmark):
    task = "caption"
    headline = ("bleu4", "meteor", "rouge_l", "cider")

    def caption_scores(self, references: dict, predictions: dict) -> Scores:
        """Caption metrics of ``{id: prediction}`` against ``{id: [reference, ...]}``, one row per id."""
        res = caption_metrics(references, predictions, self.options.use_java)
        per_sample = [{"id": sid, "reference": refs[0] if len(refs) == 1 else refs, "prediction": predictions[sid],
                       "cider": 100.0 * res["per_sample"][sid]["CIDEr"],
                       "rouge_l": 100.0 * res["per_sample"][sid]["ROUGE_L"]}
                      for sid, refs in references.items()]
        notes = list(res["notices"])
        if res["meteor"] is None:
            notes.append("METEOR unavailable (it needs Java): reported as null, not 0")
        return Scores(metrics={k: res[k] for k in CAPTION_KEYS}, per_sample=per_sample,
                      details={"tokenizer": res["tokenizer"], "meteor_available": res["meteor_available"]},
                      notes=notes)

    def add_judge(self, scores: Scores, judged: list, judge, name: str) -> None:
        """Judge ``(id, reference, prediction, meta)`` items and add the judge metrics to ``scores``."""
        cache = JudgeCache(self.options.judge_cache, name) if getattr(judge, "cache_replies", True) else None
        replies = {}
        for sid, reference, prediction, meta in judged:
            reply = cache.get(reference, prediction) if cache else None
            if reply is None:
                try:
                    reply = judge.score(reference, prediction, meta)
                except ConnectionError as err:
                    raise RegionLMError(str(err)) from None
                if cache:
                    cache.put(reference, prediction, reply)
            replies[sid] = reply
        parsed = [parse_judge_reply(replies[sid]) for sid, *_ in judged]
        agg = aggregate_judge_scores(parsed)
        scores.metrics["judge_overall"] = agg["overall"]
        for dim in DIMENSIONS:
            scores.metrics[dim] = agg[dim]
        rows = {row["id"]: row for row in scores.per_sample}
        for (sid, *_), p in zip(judged, parsed):
            rows[sid]["judge_reply"] = replies[sid]
            rows[sid]["judge_scores"] = p
        scores.details["judge"] = {"name": name, "n_items": agg["n_items"], "n_unparseable": agg["n_unparseable"],
                                   "unparseable_ids": [judged[i][0] for i in agg["unparseable"]]}
        if agg["n_unparseable"]:
            scores.notes.append(f"judge: {agg['n_unparseable']} of {agg['n_items']} replies could not be parsed "
                                f"(left out of the dimension means)")


def caption_metrics(references: dict, predictions: dict, use_java: Optional[bool]) -> dict:
    try:
        return evaluate_captions(references, predictions, use_java=use_java)
    except ValueError as err:
        if len(predictions) < 2:
            raise RegionLMError(f"caption metrics need at least 2 samples (CIDEr is undefined for one); got "
                                f"{len(predictions)}: raise --limit") from None
        raise RegionLMError(f"caption metrics: {err}") from None


class JudgeCache:
    """Judge replies kept in a JSONL file keyed by (judge, reference, prediction), so a rerun does not ask a slow
    or paid judge again. Appended one line at a time; a torn last line is ignored."""

    def __init__(self, path: Optional[Path], judge_name: str):
        from ..runner import read_jsonl_tolerant

        self.judge_name = judge_name
        self.path = Path(path) if path else None
        self.replies = {}
        if self.path is not None and self.path.is_file():
            for rec in read_jsonl_tolerant(self.path):
                if isinstance(rec.get("key"), str) and isinstance(rec.get("reply"), str):
                    self.replies[rec["key"]] = rec["reply"]

    def key(self, reference: str, prediction: str) -> str:
        return hashlib.sha256(f"{self.judge_name}\x00{reference}\x00{prediction}".encode()).hexdigest()[:32]

    def get(self, reference: str, prediction: str) -> Optional[str]:
        return self.replies.get(self.key(reference, prediction))

    def put(self, reference: str, prediction: str, reply: str) -> None:
        from ..runner import append_jsonl

        k = self.key(reference, prediction)
        self.replies[k] = reply
        if self.path is not None:
            append_jsonl(self.path, {"key": k, "reply": reply})
