"""VideoRefer-Bench-D description scoring with a pluggable judge.

Mirrors the official VideoRefer scripts ``videorefer/eval/videorefer_bench_d/``:
``1.eval_gpt.py`` (user message ``'##Correct answer: ' + ref + '\\n' + '##Predicted answer: ' +
pred + '\\n'``; sampling temperature 0.7, top_p 0.95, max_tokens 800), ``2.extract_re.py``
(``re.findall(r'\\d+\\.\\s+(.*?):\\s+([\\d.]+)', reply)`` -> ``{name: float(score)}``; a reply
whose score does not convert is an error) and ``3.analyze_score.py`` (per-dimension mean over
the items that have the dimension; overall = mean of the four dimension means).

The official system prompt file (``system.txt``) is not public in the code we could read;
``JUDGE_SYSTEM_PROMPT`` is our own wording of the four published dimension definitions and of
the reply format the parser expects, so judge numbers are comparable in protocol, not bit-exact.

A judge is anything with ``score(reference, prediction, meta) -> reply text``
(:class:`Judge`). Two are provided: :class:`OpenAICompatibleJudge` (HTTP, urllib only) and
:class:`HFCausalLMJudge` (a local transformers causal LM, loaded lazily).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Mapping, Optional, Protocol, Sequence, runtime_checkable

__all__ = [
    "DIMENSIONS",
    "JUDGE_SYSTEM_PROMPT",
    "REPLY_PATTERN",
    "Judge",
    "build_judge_messages",
    "parse_judge_reply",
    "aggregate_judge_scores",
    "evaluate_descriptions",
    "OpenAICompatibleJudge",
    "HFCausalLMJudge",
]

DIMENSIONS = (
    "Subject Correspondence",
    "Appearance Description",
    "Temporal Description",
    "Hallucination Detection",
)
REPLY_PATTERN = re.compile(r"\d+\.\s+(.*?):\s+([\d.]+)")

JUDGE_SYSTEM_PROMPT = """\
You are an expert evaluator of object-level video descriptions. You are given the correct \
description of one object in a video and a predicted description of the same object. Score the \
predicted description against the correct one on four dimensions, each an integer from 0 (worst) \
to 5 (best):
1. Subject Correspondence: does the subject of the prediction correspond to the subject of the \
correct description (same category and identity)?
2. Appearance Description: are the appearance details (colour, shape, texture, clothing and other \
visual attributes) accurate?
3. Temporal Description: are the object's actions and motion over time consistent with the \
correct description?
4. Hallucination Detection: is the prediction free of facts, actions or elements that are not in \
the correct description (imagined content, wrong inferences)? 5 means no hallucination.
Reply in exactly this format, nothing else:
1. Subject Correspondence: <score>
Explanation: <one sentence>
2. Appearance Description: <score>
Explanation: <one sentence>
3. Temporal Description: <score>
Explanation: <one sentence>
4. Hallucination Detection: <score>
Explanation: <one sentence>"""


@runtime_checkable
class Judge(Protocol):
    """Anything that reads a reference and a prediction and replies in the format above."""

    def score(self, reference: str, prediction: str, meta: Optional[Mapping] = None) -> str:
        ...


def build_judge_messages(reference: str, prediction: str, system_prompt: str = JUDGE_SYSTEM_PROMPT) -> list:
    """Chat messages ``[system, user]`` as the official ``1.eval_gpt.py`` builds them."""
    user = "##Correct answer: " + reference + "\n" + "##Predicted answer: " + prediction + "\n"
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def parse_judge_reply(reply: Optional[str]) -> Optional[dict]:
    """``{name: score}`` for every ``N. Name: score`` in the reply (official ``2.extract_re.py``).

    Returns None when the reply is missing or a score does not convert to float (the official
    script counts those as errors). Names are kept as written; only exact dimension names count.
    """
    if not isinstance(reply, str):
        return None
    try:
        return {name: float(score) for name, score in REPLY_PATTERN.findall(reply)}
    except ValueError:
        return None


def aggregate_judge_scores(parsed: Sequence[Optional[Mapping]]) -> dict:
    """Per-dimension mean over items that have the dimension, overall = mean of the four.

    ``parsed`` holds the outputs of :func:`parse_judge_reply`. An item is *unparseable* when it
    is None or has none of the four dimensions (the official script keeps the latter silently;
    we report both). A dimension no item has gets None, and then overall is None.
    """
    scores = {}
    counts = {}
    for dim in DIMENSIONS:
        vals = [float(p[dim]) for p in parsed if p is not None and dim in p]
        counts[dim] = len(vals)
        scores[dim] = sum(vals) / len(vals) if vals else None
    unparseable = [i for i, p in enumerate(parsed) if p is None or not any(d in p for d in DIMENSIONS)]
    overall = None if any(v is None for v in scores.values()) else sum(scores.values()) / len(DIMENSIONS)
    return {
        **scores,
        "overall": overall,
        "counts": counts,
        "n_items": len(parsed),
        "n_unparseable": len(unparseable),
        "unparseable": unparseable,
    }


def evaluate_descriptions(items: Iterable, judge: Judge) -> dict:
    """Score ``(reference, prediction)`` or ``(reference, prediction, meta)`` items with a judge.

    Returns :func:`aggregate_judge_scores` plus ``replies`` (the raw judge texts, in order).
    """
    replies, parsed = [], []
    for item in items:
        reference, prediction = item[0], item[1]
        meta = item[2] if len(item) > 2 else None
        reply = judge.score(reference, prediction, meta)
        replies.append(reply)
        parsed.append(parse_judge_reply(reply))
    if not replies:
        raise ValueError("no items to score")
    out = aggregate_judge_scores(parsed)
    out["replies"] = replies
    return out


class OpenAICompatibleJudge:
    """A judge behind an OpenAI-compatible ``POST {url}/chat/completions`` endpoint (vLLM, TGI,
    llama.cpp server, OpenAI, ...). urllib only. Sampling defaults are the official script's."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: Optional[str] = None,
        *,
        temperature: float = 0.7,
        top_p: float = 0.95,
        max_tokens: int = 800,
        timeout: float = 120.0,
        system_prompt: str = JUDGE_SYSTEM_PROMPT,
    ):
        self.url = url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, max_tokens
        self.timeout = timeout
        self.system_prompt = system_prompt

    def score(self, reference: str, prediction: str, meta: Optional[Mapping] = None) -> str:
        body = {
            "model": self.model,
            "messages": build_judge_messages(reference, prediction, self.system_prompt),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        endpoint = self.url + "/chat/completions"
        req = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300]
            raise ConnectionError(f"judge at {endpoint} answered HTTP {err.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ConnectionError(
                f"cannot reach the judge at {endpoint}: {reason} (is the server running and the URL right?)"
            ) from None
        except json.JSONDecodeError:
            raise ConnectionError(f"judge at {endpoint} did not answer JSON") from None
        try:
            return payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ConnectionError(f"judge at {endpoint} answered without choices[0].message.content") from None


class HFCausalLMJudge:
    """A local Hugging Face causal LM folder as judge (greedy decoding).

    transformers is imported, and the model loaded, on the first :meth:`score` call.
    """

    def __init__(
        self, path, *, device: str = "cpu", max_new_tokens: int = 512, system_prompt: str = JUDGE_SYSTEM_PROMPT
    ):
        self.path = Path(path)
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is not None:
            return
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"judge model folder {self.path} does not exist (give a local transformers model folder)"
            )
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise RuntimeError("HFCausalLMJudge needs transformers: pip install transformers") from None
        self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        self._model = AutoModelForCausalLM.from_pretrained(self.path).to(self.device).eval()

    def score(self, reference: str, prediction: str, meta: Optional[Mapping] = None) -> str:
        self._load()
        import torch

        messages = build_judge_messages(reference, prediction, self.system_prompt)
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            ids = ids["input_ids"]
        else:
            text = "\n\n".join(m["content"] for m in messages) + "\n\n"
            ids = tok(text, return_tensors="pt")["input_ids"]
        ids = ids.to(self.device)
        with torch.no_grad():
            out = self._model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
