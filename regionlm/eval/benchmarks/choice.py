"""Shared by the multiple-choice benchmarks (world-q, world-vqa, videorefer-q): VideoRefer-Bench-Q records
(Question, options, Answer "(X) ...", type, annotation, frame_idx) asked with the official prompt and scored with
the official letter extraction (quirks included, see metrics.multiple_choice)."""

from __future__ import annotations

from pathlib import Path

from ...errors import RegionLMError
from ..metrics.multiple_choice import build_mc_prompt, extract_choice, gt_letter, score_multiple_choice
from .base import Benchmark, Sample, Scores, resolve_path


def int_frame(value) -> int | None:
    return None if value is None or value == "" else int(value)


class MultipleChoiceBenchmark(Benchmark):
    task = "choice"
    headline = ("overall",)

    def base_dir(self) -> Path:
        """Where relative video paths of the records are resolved (unless --video-root is given)."""
        return self.data.parent if self.data.is_file() else self.data

    def make_sample(self, rec: dict, sid: str | None = None, regions=None, frame_idx=None) -> Sample:
        """A Sample for one question record; ``regions`` / ``frame_idx`` replace the record's (region swap)."""
        return Sample(
            id=sid or str(rec["id"]),
            task=self.task,
            video=resolve_path(rec["video"], self.base_dir(), self.options.video_root) if rec.get("video") else None,
            prompt=build_mc_prompt(rec["Question"], rec["options"]),
            options=tuple(rec["options"]),
            regions=tuple(rec.get("annotation") or ()) if regions is None else tuple(regions),
            frame_idx=int_frame(rec.get("frame_idx") if frame_idx is None else frame_idx),
            height=rec.get("height"),
            width=rec.get("width"),
        )

    def samples(self, items: list) -> list:
        return [self.make_sample(rec) for rec in items]

    def score(self, items: list, predictions: dict) -> Scores:
        return score_choice(items, predictions)


def score_choice(items: list, predictions: dict) -> Scores:
    """Per-type and overall accuracy (percent, micro average) plus one row per question."""
    records, per_sample = [], []
    for rec in items:
        sid = str(rec["id"])
        pred = predictions[sid]
        try:
            answer = gt_letter(rec["Answer"])
        except ValueError as err:
            raise RegionLMError(f"question {sid}: {err}") from None
        choice = extract_choice(pred)
        records.append({"Answer": rec["Answer"], "pred": pred, "type": rec["type"]})
        per_sample.append({"id": sid, "type": rec["type"], "answer": answer, "prediction": pred, "choice": choice,
                           "correct": choice is not None and choice.lower() == answer.lower()})
    metrics = score_multiple_choice(records)
    metrics = {"overall": metrics.pop("overall"), **metrics}
    counts: dict = {}
    for row in per_sample:
        right, total = counts.get(row["type"], (0, 0))
        counts[row["type"]] = (right + int(row["correct"]), total + 1)
    return Scores(metrics=metrics, per_sample=per_sample,
                  details={"counts": {t: {"right": r, "total": n} for t, (r, n) in counts.items()}})
