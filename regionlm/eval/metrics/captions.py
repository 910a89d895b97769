"""Caption metrics through pycocoevalcap (tylin/coco-caption): BLEU-1..4, METEOR, ROUGE-L, CIDEr-D.

Mirrors ``pycocoevalcap/eval.py`` (``COCOEvalCap.evaluate``) with the official scorers:
``Bleu(4)`` (corpus level, reference length 'closest'), ``Meteor()`` (METEOR 1.5,
``-l en -norm``), ``Rouge()`` (LCS, beta 1.2, mean over samples) and ``Cider()`` (this class
*is* CIDEr-D: n = 1..4, sigma = 6, document frequencies from the evaluated references, x10).
Refs and candidates are tokenised by pycocoevalcap's ``PTBTokenizer`` (Java, CoreNLP 3.4.1).

Differences from ``COCOEvalCap`` that do not change numbers: refs and candidates are tokenised
in one ``PTBTokenizer`` call (one JVM, lines are tokenised independently); one ``Meteor()`` JVM
scores the whole set and is closed afterwards.

Without Java (``java`` not on PATH, or the JVM fails): a notice is logged, the pure-Python
approximation :func:`~regionlm.eval.metrics.ptb_tokenize.ptb_tokenize_text` tokenises, and
METEOR is reported as unavailable (``None``, never 0). ``result["tokenizer"]`` says which
tokenizer ran (``"ptb-java"`` or ``"ptb-python-approx"``).

CIDEr is undefined for one sample (idf = log(1) = 0): a set of size 1 is refused. SPICE is
optional (``spice=True``) and needs Stanford CoreNLP jars pycocoevalcap would download; we never
download, so it raises a clear error when they are absent.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from typing import Mapping, Optional, Sequence, Union

from .ptb_tokenize import ptb_tokenize_text

__all__ = ["evaluate_captions", "tokenize_captions", "spice_available", "TOKENIZER_JAVA", "TOKENIZER_PYTHON"]

log = logging.getLogger(__name__)

TOKENIZER_JAVA = "ptb-java"
TOKENIZER_PYTHON = "ptb-python-approx"
_SENTINEL = ("__regionlm_sentinel__", "end")
_WS = re.compile(r"\s")

Caption = Union[str, Sequence[str]]


def _java_available() -> bool:
    return shutil.which("java") is not None


def _tokenize_java(captions: Mapping) -> dict:
    """One PTBTokenizer JVM for ``{key: [str, ...]}``; RuntimeError when its output is incomplete."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # Whitespace other than ' ' would break PTBTokenizer's one-line-per-caption alignment (it only
    # replaces '\n'); PTB splits on any whitespace, so mapping it to ' ' keeps the tokens. A final
    # sentinel line guards against a trailing empty caption being lost and checks alignment.
    data = {k: [{"caption": _WS.sub(" ", c)} for c in caps] for k, caps in captions.items()}
    data[_SENTINEL[0]] = [{"caption": _SENTINEL[1]}]
    out = PTBTokenizer().tokenize(data)
    if out.get(_SENTINEL[0]) != [_SENTINEL[1]] or any(len(out.get(k, ())) != len(v) for k, v in captions.items()):
        raise RuntimeError("the PTB tokenizer JVM returned incomplete output")
    return {k: out[k] for k in captions}


def tokenize_captions(captions: Mapping, use_java: Optional[bool] = None) -> tuple:
    """Tokenise ``{key: [caption, ...]}`` like pycocoevalcap. Returns ``(tokenized, tokenizer_name,
    notice)``; ``notice`` is None unless the Java tokenizer was wanted but could not run."""
    notice = None
    if use_java is not False:
        if not _java_available():
            notice = "Java not found on PATH"
        else:
            try:
                return _tokenize_java(captions), TOKENIZER_JAVA, None
            except Exception as err:  # noqa: BLE001 - any JVM failure falls back, and says so
                notice = f"the PTB tokenizer JVM failed ({type(err).__name__}: {err})"
        notice += (
            "; caption metrics use the pure-Python PTB tokenizer approximation (numbers may differ "
            "slightly from the official ones) and METEOR is unavailable"
        )
        log.warning(notice)
    return {k: [ptb_tokenize_text(c) for c in caps] for k, caps in captions.items()}, TOKENIZER_PYTHON, notice


def _meteor(gts: dict, res: dict) -> tuple:
    """(score, per-sample scores) from one Meteor JVM, closed afterwards; (None, None, reason) on failure."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = None
    try:
        meteor = Meteor()
        score, scores = meteor.compute_score(gts, res)
        return float(score), [float(s) for s in scores], None
    except Exception as err:  # noqa: BLE001 - a METEOR failure must not lose the other metrics
        return None, None, f"METEOR failed ({type(err).__name__}: {err})"
    finally:
        if meteor is not None:
            _close_meteor(meteor)


def _close_meteor(meteor) -> None:
    if meteor.lock.locked():  # compute_score leaves the lock held when it raises; __del__ would hang
        meteor.lock.release()
    proc = meteor.meteor_p
    try:
        proc.stdin.close()
    except OSError:
        pass
    proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def spice_available() -> bool:
    """True when the Stanford CoreNLP jars that pycocoevalcap's SPICE needs are installed."""
    try:
        from pycocoevalcap.spice import get_stanford_models as gsm
    except ImportError:
        return False
    lib = os.path.join(os.path.dirname(gsm.__file__), gsm.SPICELIB)
    return all(os.path.exists(os.path.join(lib, f"{gsm.JAR}{s}.jar")) for s in ("", "-models"))


def _check_inputs(references: Mapping, candidates: Mapping) -> tuple:
    if set(references) != set(candidates):
        missing = sorted(map(str, set(references) ^ set(candidates)))[:5]
        raise ValueError(f"references and candidates must have the same ids; differing ids include {missing}")
    if len(candidates) < 2:
        raise ValueError(
            f"caption metrics need at least 2 samples, got {len(candidates)}: CIDEr's document frequencies "
            "come from the evaluated set and are undefined (idf = 0) for a single caption"
        )
    refs, cands = {}, {}
    for k in references:
        r = references[k]
        r = [r] if isinstance(r, str) else list(r)
        if not r or not all(isinstance(x, str) for x in r):
            raise ValueError(f"id {k!r}: references must be a non-empty list of strings")
        c = candidates[k]
        if not isinstance(c, str):
            if len(c) != 1 or not isinstance(c[0], str):
                raise ValueError(f"id {k!r}: the candidate must be one string")
            c = c[0]
        refs[k], cands[k] = r, c
    return refs, cands


def evaluate_captions(
    references: Mapping[object, Caption],
    candidates: Mapping[object, Caption],
    *,
    use_java: Optional[bool] = None,
    meteor: bool = True,
    spice: bool = False,
) -> dict:
    """Score candidate captions against references with pycocoevalcap.

    ``references``: ``{id: [ref, ...]}``; ``candidates``: ``{id: caption}`` (or a one-element
    list). ``use_java`` None or True: the Java PTB tokenizer when Java runs (else the Python
    approximation, with a notice); False: the Python approximation, no notice, no METEOR. Returns the papers' x100 scale as ``bleu1``..``bleu4``, ``meteor``, ``rouge_l``,
    ``cider`` (CIDEr 0.796 -> 79.6; ``meteor`` None when unavailable), ``raw`` (pycocoevalcap's
    names and scale: ``Bleu_1``..``Bleu_4``, ``METEOR``, ``ROUGE_L``, ``CIDEr``, ``SPICE``),
    ``per_sample`` (raw per-id ``ROUGE_L``, ``CIDEr``, ``METEOR``), ``tokenizer``,
    ``meteor_available``, ``notices``, ``n`` and ``tokenized`` (``{"gts": ..., "res": ...}``,
    the exact scorer inputs).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    refs, cands = _check_inputs(references, candidates)
    if spice and not spice_available():
        raise RuntimeError(
            "SPICE needs the Stanford CoreNLP 3.6.0 jars in pycocoevalcap/spice/lib/ (stanford-corenlp-3.6.0.jar "
            "and stanford-corenlp-3.6.0-models.jar); they are not installed and are never downloaded at run "
            "time. Install them by hand or run without spice=True."
        )
    ids = list(refs)
    joint = {("ref", i): refs[i] for i in ids}
    joint.update({("cand", i): [cands[i]] for i in ids})
    tokenized, tokenizer, notice = tokenize_captions(joint, use_java=use_java)
    gts = {i: tokenized[("ref", i)] for i in ids}
    res = {i: tokenized[("cand", i)] for i in ids}
    notices = [notice] if notice else []

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_scores = Rouge().compute_score(gts, res)
    cider, cider_scores = Cider().compute_score(gts, res)
    raw = {f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)}
    raw["ROUGE_L"] = float(rouge)
    raw["CIDEr"] = float(cider)

    met, met_scores = None, None
    if meteor and tokenizer == TOKENIZER_JAVA:
        met, met_scores, reason = _meteor(gts, res)
        if reason:
            notices.append(reason + "; METEOR is unavailable")
            log.warning(notices[-1])
    raw["METEOR"] = met
    if spice:
        if tokenizer != TOKENIZER_JAVA:
            raise RuntimeError("SPICE needs Java, which could not run here")
        from pycocoevalcap.spice.spice import Spice

        raw["SPICE"] = float(Spice().compute_score(gts, res)[0])

    per_sample = {
        i: {"ROUGE_L": float(rouge_scores[n]), "CIDEr": float(cider_scores[n]),
            "METEOR": None if met_scores is None else met_scores[n]}
        for n, i in enumerate(ids)
    }
    out = {f"bleu{n}": 100.0 * raw[f"Bleu_{n}"] for n in range(1, 5)}
    out.update(
        meteor=None if met is None else 100.0 * met,
        rouge_l=100.0 * raw["ROUGE_L"],
        cider=100.0 * raw["CIDEr"],
    )
    if spice:
        out["spice"] = 100.0 * raw["SPICE"]
    out.update(
        raw=raw,
        per_sample=per_sample,
        tokenizer=tokenizer,
        meteor_available=met is not None,
        notices=notices,
        n=len(ids),
        tokenized={"gts": gts, "res": res},
    )
    return out
