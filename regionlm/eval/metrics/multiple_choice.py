"""VideoRefer-Bench-Q multiple-choice prompt and scoring.

Mirrors the official VideoRefer code: the prompt of ``videorefer/eval/inference_videorefer_q_bench.py``
and the scoring of ``videorefer/eval/eval_videorefer_bench_q.py``, quirks included so numbers
compare with published ones:

* GT letter: first ``\\(([A-Z])\\)`` in ``Answer``.
* Predicted letter: first ``\\(([A-Z])\\)`` in the prediction, else first ``([A-Z])\\)``, else the
  first character of ``pred.replace('.', '')``. No stripping (the official script does none; its
  inference code strips the decoded text before saving), so ``"  A."`` scores as ``" "``
  (wrong). The regexes are case-sensitive: ``"(b)"`` scores as ``"("`` (wrong), ``"d"`` as ``"d"``
  (right if the GT is D), ``"The answer is C"`` as ``"T"``. Only the final comparison ignores case.
* Departures: an empty prediction (or ``"."``, empty after removing dots) is wrong instead of
  crashing; a GT without a ``(X)`` letter raises ``ValueError`` (the official script would compare
  with the whole answer text).
* Per-type accuracy and overall = right / all (micro average), in percent.

``lenient=True`` selects a forgiving extractor (never the default, numbers then do not compare
with published ones).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional, Sequence

from regionlm.data.videorefer import QUESTION_TYPES

__all__ = [
    "QUESTION_TYPES",
    "ANSWER_SUFFIX",
    "build_mc_prompt",
    "gt_letter",
    "extract_choice",
    "extract_choice_lenient",
    "count_multiple_choice",
    "score_multiple_choice",
]

ANSWER_SUFFIX = ". Answer with the option's letter from the given choices directly."

_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_LETTER_PAREN = re.compile(r"([A-Z])\)")


def build_mc_prompt(question: str, options: Sequence[str]) -> str:
    """``question`` (each ``<region>`` shown as ``[<region>]``) + ' ' + options joined by ' ' +
    ``". Answer with the option's letter from the given choices directly."``"""
    return question.replace("<region>", "[<region>]") + " " + " ".join(options) + ANSWER_SUFFIX


def gt_letter(answer: str) -> str:
    """The GT letter: first ``(X)`` in the answer text; ValueError if there is none."""
    m = _PAREN_LETTER.search(answer)
    if m is None:
        raise ValueError(f"ground-truth answer {answer!r} has no '(X)' option letter")
    return m.group(1)


def extract_choice(pred: Optional[str]) -> Optional[str]:
    """The official extraction (see module docstring). Returns None for an empty prediction."""
    if not pred:
        return None
    m = _PAREN_LETTER.search(pred) or _LETTER_PAREN.search(pred)
    if m:
        return m.group(1)
    rest = pred.replace(".", "")
    return rest[0] if rest else None


_LENIENT = (
    re.compile(r"\(\s*([A-Za-z])\s*\)"),
    re.compile(r"^\s*(?:option|answer|choice)?\s*:?\s*([A-Za-z])\s*(?:[).:,]|$)", re.IGNORECASE),
    re.compile(r"\b(?i:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Z])\b\)?"),
)


def extract_choice_lenient(pred: Optional[str]) -> Optional[str]:
    """A forgiving extractor: ``(b)``, ``" A."``, ``"B: ..."``, ``"The answer is C"`` -> letter
    (upper-case). Not the official protocol; None when nothing looks like a choice."""
    if not pred:
        return None
    for pattern in _LENIENT:
        m = pattern.search(pred)
        if m:
            return m.group(1).upper()
    return None


def count_multiple_choice(records: Iterable[Mapping], lenient: bool = False) -> dict:
    """``{type: (right, total)}`` over records with keys ``Answer``, ``pred`` and ``type`` (the
    official prediction-file keys). Types in canonical order, then any others as met."""
    extract = extract_choice_lenient if lenient else extract_choice
    right: dict = {}
    total: dict = {}
    for i, rec in enumerate(records):
        try:
            gt, pred, tp = rec["Answer"], rec["pred"], rec["type"]
        except KeyError as err:
            raise ValueError(f"record {i}: missing key {err.args[0]!r} (need 'Answer', 'pred', 'type')") from None
        try:
            letter = gt_letter(gt)
        except ValueError as err:
            raise ValueError(f"record {i}: {err}") from None
        choice = extract(pred or "")
        total[tp] = total.get(tp, 0) + 1
        right[tp] = right.get(tp, 0) + int(choice is not None and choice.lower() == letter.lower())
    order = [t for t in QUESTION_TYPES if t in total] + [t for t in total if t not in QUESTION_TYPES]
    return {t: (right[t], total[t]) for t in order}


def score_multiple_choice(records: Iterable[Mapping], lenient: bool = False) -> dict:
    """Accuracy in percent per question type present (keys = type names) plus ``"overall"``
    (micro average over all records)."""
    counts = count_multiple_choice(records, lenient=lenient)
    if not counts:
        raise ValueError("no records to score")
    out = {t: 100.0 * r / n for t, (r, n) in counts.items()}
    out["overall"] = 100.0 * sum(r for r, _ in counts.values()) / sum(n for _, n in counts.values())
    return out
