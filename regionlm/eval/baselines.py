"""Systems that need no model: the reference baselines that set the floor, and a predictions file.

* ``random`` (text tasks): a random option of a multiple-choice question; for descriptions and referring
  expressions a random text from the benchmark's vocabulary. Seeded per sample (``--seed`` and the sample id), so
  the answers do not depend on the order of asking or on a resumed run.
* ``first-frame`` (tracking, VOS): the first frame's box (mask) repeated on every frame.
* :class:`PredictionsFile` (``--predictions FILE.jsonl``): any other system's outputs, one JSON object per line:
  ``{"id": ..., "prediction": "..."}`` for text tasks (``"pred"`` is read too, as in VideoRefer's output files),
  ``{"id": ..., "boxes": [[x, y, w, h] or null, ...]}`` (pixels, one box per frame) for tracking and
  ``{"id": ..., "masks": {"<object id>": [RLE or null, ...]}}`` for VOS (or a DAVIS results folder of PNGs).
  Ids are the benchmark's sample ids (tracking: the sequence name); world-q also asks every look-alike question
  with the look-alike's region, under the id ``<id>@lookalike``. Missing ids are an error that lists them; extra
  ids are reported.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, RegionLMError
from .benchmarks.base import Benchmark, Sample

VALUE_KEYS = {"choice": ("prediction", "pred"), "caption": ("prediction", "pred"), "track": ("boxes",),
              "segment": ("masks",)}


def sample_rng(seed: int, sample_id: str) -> np.random.Generator:
    """A generator that depends on the seed and the sample only."""
    return np.random.default_rng([int(seed), zlib.crc32(sample_id.encode("utf-8"))])


class RandomBaseline:
    """Random answers (see the module docstring)."""

    name = "random"
    tasks = ("choice", "caption")
    cacheable = True

    def __init__(self, benchmark: Benchmark, seed: int = 0):
        self.benchmark, self.seed = benchmark, seed
        self.config = {"system": "baseline", "baseline": self.name, "seed": seed}

    def answer(self, sample: Sample) -> str:
        return self.benchmark.random_answer(sample, sample_rng(self.seed, sample.id))


class FirstFrameBaseline:
    """The first frame's box (tracking) or masks (VOS) repeated on every frame."""

    name = "first-frame"
    tasks = ("track", "segment")
    cacheable = True

    def __init__(self, benchmark: Benchmark, seed: int = 0):
        self.benchmark = benchmark
        self.config = {"system": "baseline", "baseline": self.name}

    def track(self, sample: Sample) -> list:
        if sample.init_box is None:
            raise RegionLMError(f"the first-frame baseline needs the first box; sample {sample.id} has none")
        return [list(sample.init_box)] * sample.num_frames

    def segment(self, sample: Sample) -> dict:
        return {str(k): [region[0]["segmentation"]] * sample.num_frames
                for k, region in zip(sample.object_ids, sample.regions)}


BASELINES = {"random": RandomBaseline, "first-frame": FirstFrameBaseline}


def make_baseline(name: str, benchmark: Benchmark, seed: int = 0):
    """The named baseline for this benchmark; a one-line error when it does not apply."""
    try:
        cls = BASELINES[name]
    except KeyError:
        raise RegionLMError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}") from None
    if benchmark.task not in cls.tasks:
        fits = [n for n, c in BASELINES.items() if benchmark.task in c.tasks]
        raise RegionLMError(f"baseline {name} does not apply to {benchmark.name} (a {benchmark.task} benchmark); "
                            f"use --baseline {' or '.join(fits)}")
    if cls is FirstFrameBaseline and not getattr(benchmark, "gives_init_box", True):
        raise RegionLMError(f"the first-frame baseline needs the first box, and {benchmark.name} gives none (the "
                            f"object is named by an expression); use --predictions FILE.jsonl")
    return cls(benchmark, seed)


class PredictionsFile:
    """Scores another system's outputs (see the module docstring)."""

    name = "predictions"
    cacheable = False  # already a file of predictions

    def __init__(self, path, benchmark: Benchmark):
        self.path = Path(path)
        self.task = benchmark.task
        self.folder = None
        self.values: dict = {}
        if self.path.is_dir():
            if self.task != "segment":
                raise RegionLMError(f"--predictions {self.path} is a folder; give a JSONL file (a folder of PNG "
                                    f"masks is read for davis only)")
            self.folder = self.path
        else:
            self.values = self._read()
        self.config = {"system": "predictions", "path": str(self.path.resolve())}

    def _read(self) -> dict:
        from ..data.io import read_records

        if not self.path.is_file():
            raise RegionLMError(f"--predictions {self.path}: no such file")
        keys = VALUE_KEYS[self.task]
        values = {}
        for n, rec in enumerate(read_records(self.path), start=1):
            if isinstance(rec, DataFormatError):
                raise rec
            if not isinstance(rec, dict) or "id" not in rec:
                raise DataFormatError(self.path, f"line {n}", "id", 'expected {"id": ..., "%s": ...}' % keys[0])
            sid = str(rec["id"])
            key = next((k for k in keys if k in rec), None)
            if key is None:
                raise DataFormatError(self.path, sid, keys[0], f"missing (a {self.task} benchmark needs "
                                                               f"{{\"id\": ..., \"{keys[0]}\": ...}})")
            if sid in values:
                raise DataFormatError(self.path, sid, "id", "appears twice")
            values[sid] = rec[key]
        return values

    def check(self, samples: list) -> list:
        """Raise when a sample has no prediction (listing the ids); return the extra ids, sorted."""
        if self.folder is not None:
            return []
        wanted = [s.id for s in samples]
        missing = [sid for sid in wanted if sid not in self.values]
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            hint = " (world-q asks each look-alike question twice: add the <id>@lookalike answers)" if any(
                m.endswith("@lookalike") for m in missing) else ""
            raise RegionLMError(f"--predictions {self.path}: {len(missing)} of {len(wanted)} sample ids have no "
                                f"prediction: {shown}{hint}")
        return sorted(set(self.values) - set(wanted))

    def answer(self, sample: Sample):
        return self.values[sample.id]

    def track(self, sample: Sample):
        return self.values[sample.id]

    def segment(self, sample: Sample):
        if self.folder is None:
            return self.values[sample.id]
        from .benchmarks.davis import read_results_folder

        masks = read_results_folder(self.folder, sample)
        if masks is None:
            raise RegionLMError(f"--predictions {self.folder}: no results folder for sequence {sample.id}")
        return masks


def describe_system(system) -> str:
    """A short human-readable name for reports."""
    cfg = getattr(system, "config", {}) or {}
    if cfg.get("system") == "baseline":
        return f"baseline {cfg['baseline']}" + (f" (seed {cfg['seed']})" if "seed" in cfg else "")
    if cfg.get("system") == "predictions":
        return f"predictions {cfg['path']}"
    return json.dumps(cfg, sort_keys=True) if cfg else getattr(system, "name", type(system).__name__)
