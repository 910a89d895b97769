"""Running a benchmark: ask a system every sample, cache as it goes, resume after an interruption, score.

The cache is ``OUT/predictions.jsonl``: one line per answered sample, ``{"id", "key", <value>}`` where the value
key is the one a ``--predictions`` file uses (``prediction``, ``boxes`` or ``masks``), so the cache is itself a
valid predictions file. ``key`` hashes everything the system was shown (the Sample), so a prediction is reused
only for the very same question; ``OUT/run.json`` names the benchmark and system the cache belongs to, and a
different system writing into the same OUT is refused. Lines are appended and flushed one at a time (a
kill loses at most the line being written; a torn last line is ignored on reading); at the end the file is
rewritten atomically, one line per id. Same inputs, same predictions, same numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..data.io import atomic_write_json, atomic_write_text, dumps_json
from ..errors import RegionLMError
from .benchmarks.base import METHOD_OF_TASK, Benchmark, Sample

CACHE_NAME = "predictions.jsonl"
RUN_NAME = "run.json"
VALUE_KEY = {"choice": "prediction", "caption": "prediction", "track": "boxes", "segment": "masks"}


# ----------------------------------------------------------------------------------------------- JSONL helpers
def read_jsonl_tolerant(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file; lines that do not parse (a write cut short) are left out."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def append_jsonl(path: Path, record: Any) -> None:
    """Append one JSON line with a single write, flushed to disk before returning."""
    line = dumps_json(record) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        if f.tell() > 0 and not _ends_with_newline(path):
            line = "\n" + line  # the previous run was cut mid-line: start a fresh one
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def sample_key(sample: Sample) -> str:
    """A short hash of everything the system is shown."""
    return hashlib.sha256(dumps_json(asdict(sample)).encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- outputs
def normalise_output(task: str, value: Any, sample: Sample) -> Any:
    """A system's output as plain JSON: text, ``[[x, y, w, h] | None, ...]`` or ``{obj: [RLE | None, ...]}``.
    Box and mask counts are checked against the sequence here, so a wrong one fails before anything is scored."""
    sid = sample.id
    if task in ("choice", "caption"):
        if value is None:
            return ""
        if not isinstance(value, str):
            raise RegionLMError(f"sample {sid}: expected a text answer, got {type(value).__name__}")
        return value
    if task == "track":
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            raise RegionLMError(f"sample {sid}: expected a list of [x, y, w, h] boxes, got {type(value).__name__}")
        return [_box(b, sid, i) for i, b in enumerate(_fit_length(value, sample))]
    if task == "segment":
        if not isinstance(value, dict):
            raise RegionLMError(f"sample {sid}: expected {{object id: [mask per frame]}}, got {type(value).__name__}")
        out = {}
        for k, frames in value.items():
            if sample.num_frames is not None and len(frames) != sample.num_frames:
                raise RegionLMError(f"sample {sid}, object {k}: {len(frames)} predicted masks but the sequence has "
                                    f"{sample.num_frames} frames")
            out[str(k)] = [_mask(m, sid, k, t) for t, m in enumerate(frames)]
        return out
    raise ValueError(f"unknown task {task!r}")


def _fit_length(boxes: list, sample: Sample) -> list:
    """One box per frame of the sequence; a sequence that starts inside a video (world-sot) also accepts one box
    per video frame up to its end, and drops those before its start."""
    n = sample.num_frames
    if n is None or len(boxes) == n:
        return list(boxes)
    start = sample.frame_indices[0] if sample.frame_indices else 0
    if start and len(boxes) == start + n:
        return list(boxes[start:])
    also = f" (or {start + n}, one per video frame)" if start else ""
    raise RegionLMError(f"sequence {sample.id}: {len(boxes)} predicted boxes but the sequence has {n} frames; give "
                        f"one [x, y, w, h] box (or null) per frame{also}")


def _box(b, sid: str, i: int):
    if b is None:
        return None
    try:
        vals = [float(v) for v in b]
    except (TypeError, ValueError):
        vals = []
    if len(vals) != 4:
        raise RegionLMError(f"sample {sid}, frame {i}: expected [x, y, w, h] or null, got {b!r:.60}")
    return vals if all(math.isfinite(v) for v in vals) else None  # JSON has no NaN: a bad box is "no box"


def _mask(m, sid: str, obj, t: int):
    from ..regions import mask_to_rle

    if m is None:
        return None
    if isinstance(m, np.ndarray):
        return mask_to_rle(m)
    if isinstance(m, dict) and "size" in m and "counts" in m:
        return m
    raise RegionLMError(f"sample {sid}, object {obj}, frame {t}: expected a COCO RLE, a mask array or null")


# ----------------------------------------------------------------------------------------------- asking
def check_inputs_exist(samples: list) -> None:
    """For systems that read pixels: every video / frame must exist (one-line error with the fix)."""
    for s in samples:
        paths = list(s.frames[:1]) if s.frames else ([s.video] if s.video else [])
        for p in paths:
            if not Path(p).exists():
                raise RegionLMError(f"sample {s.id}: video {p} not found; give --video-root DIR (the folder the "
                                    f"data's video paths are relative to)")


def _check_run(out: Path, benchmark: str, system_config: dict) -> None:
    run = {"benchmark": benchmark, "system": system_config}
    path = out / RUN_NAME
    if (out / CACHE_NAME).is_file() and path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = None
        if old != json.loads(dumps_json(run)):
            raise RegionLMError(f"{out / CACHE_NAME} holds predictions of another run ({dumps_json(old)}); use "
                                f"another --out or delete that file")
    atomic_write_json(path, run)


def ask_all(benchmark: Benchmark, system, samples: list, out: Path, progress: bool = True) -> tuple[dict, int]:
    """Predictions for every sample (``{id: normalised output}``) and how many were asked now (not cached)."""
    from tqdm import tqdm

    task = benchmark.task
    method = getattr(system, METHOD_OF_TASK[task], None)
    if method is None:
        raise RegionLMError(f"{getattr(system, 'name', 'the system')} cannot answer {benchmark.name}: it has no "
                            f"{METHOD_OF_TASK[task]}() for {task} samples")
    if getattr(system, "needs_video", False):
        check_inputs_exist(samples)
    bar = dict(total=len(samples), desc=benchmark.name, unit="sample", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    if not getattr(system, "cacheable", True):
        bar["disable"] = True  # reading a file of predictions: instant, and its errors stay one line
        with tqdm(**bar) as pbar:
            preds = {}
            for s in samples:
                preds[s.id] = normalise_output(task, method(s), s)
                pbar.update()
        return preds, len(samples)

    out.mkdir(parents=True, exist_ok=True)
    _check_run(out, benchmark.name, getattr(system, "config", {}))
    cache = out / CACHE_NAME
    vkey = VALUE_KEY[task]
    cached = {}
    if cache.is_file():
        for rec in read_jsonl_tolerant(cache):
            if "id" in rec and "key" in rec and vkey in rec:
                cached[str(rec["id"])] = rec  # the last line of an id wins
    preds, todo = {}, []
    for s in samples:
        key = sample_key(s)
        rec = cached.get(s.id)
        if rec is not None and rec["key"] == key:
            preds[s.id] = rec[vkey]
        else:
            todo.append((s, key))
    if todo and len(todo) < len(samples) and progress:
        print(f"resuming: {len(samples) - len(todo)} of {len(samples)} predictions from {cache}", file=sys.stderr)
    # A system with answer_many() / track_many() answers in batches (each batch is cached as it completes).
    many = getattr(system, {"answer": "answer_many", "track": "track_many"}.get(METHOD_OF_TASK[task], ""), None)
    step = max(1, int(getattr(system, "batch_size", 1))) if many else 1
    with tqdm(initial=len(samples) - len(todo), **bar) as pbar:
        for i in range(0, len(todo), step):
            chunk = todo[i:i + step]
            outputs = many([s for s, _ in chunk]) if many else [method(chunk[0][0])]
            for (s, key), output in zip(chunk, outputs):
                value = normalise_output(task, output, s)
                append_jsonl(cache, {"id": s.id, "key": key, vkey: value})
                preds[s.id] = value
                cached[s.id] = {"id": s.id, "key": key, vkey: value}
            pbar.update(len(chunk))
    # Compact: one line per id, this run's samples first, then what other runs (--limit) left.
    ordered = [cached[s.id] for s in samples] + [r for sid, r in cached.items() if sid not in preds]
    atomic_write_text(cache, "".join(dumps_json(r) + "\n" for r in ordered))
    return preds, len(todo)


# ----------------------------------------------------------------------------------------------- the whole run
def versions() -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = {"regionlm": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "pycocoevalcap", "pycocotools", "opencv-contrib-python-headless"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def evaluate(benchmark: Benchmark, system, out_dir, *, limit: Optional[int] = None, progress: bool = True,
             config: Optional[dict] = None) -> dict:
    """Load, ask (with cache and resume), score, write ``results.json``, ``report.md`` and plots to ``out_dir``.
    Returns the results (what results.json holds)."""
    from .baselines import describe_system
    from .report import write_outputs

    out = Path(out_dir)
    items = benchmark.load()
    if limit is not None:
        items = items[:limit]
    if not items:
        raise RegionLMError(f"{benchmark.name}: no samples to evaluate in {benchmark.options.data}")
    samples = benchmark.samples(items)
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise RegionLMError(f"{benchmark.name}: sample ids must be unique; repeated: {', '.join(dup)}")
    extra = system.check(samples) if hasattr(system, "check") else []
    predictions, _ = ask_all(benchmark, system, samples, out, progress=progress)
    scores = benchmark.score(items, predictions)
    if extra:
        scores.notes.append(f"{len(extra)} prediction id(s) are not samples of this run and were ignored: "
                            f"{', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
    results = {
        "benchmark": benchmark.name,
        "task": benchmark.task,
        "metrics": scores.metrics,
        "headline": [k for k in benchmark.headline if k in scores.metrics],
        "num_samples": len(items),
        "system": describe_system(system),
        "config": config if config is not None else {"benchmark": benchmark.name, "limit": limit,
                                                     "system": getattr(system, "config", {})},
        "versions": versions(),
        "details": scores.details,
        "notes": scores.notes,
        "extra_prediction_ids": extra,
        "curves": scores.curves,
        "per_sample": scores.per_sample,
    }
    results = to_json(results)
    write_outputs(out, results)
    return results


def to_json(obj: Any) -> Any:
    """Plain JSON values: numpy -> Python, tuples -> lists, NaN / inf -> None (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
