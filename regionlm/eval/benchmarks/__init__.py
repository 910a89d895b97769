"""Benchmarks, one small file each, behind one registry (lmms-eval style).

    from regionlm.eval.benchmarks import BENCHMARKS, get_benchmark, BenchmarkOptions
    bench = get_benchmark("world-q")(BenchmarkOptions(data=Path("world_test")))
    items = bench.load(); samples = bench.samples(items); scores = bench.score(items, predictions)

A benchmark knows its data format (``load``), what a system is asked (``samples``: :class:`Sample`, never the
answer) and which metrics to compute (``score``). Systems implement :class:`System` (``answer`` / ``track`` /
``segment``); :mod:`regionlm.eval.runner` asks them, caches and resumes, :mod:`regionlm.eval.report` writes the
outputs. To add a benchmark: one new file with a ``@register_benchmark("name")`` class, imported below.
"""

from .base import METHOD_OF_TASK, TASKS, Benchmark, BenchmarkOptions, Sample, Scores, System
from .registry import BENCHMARKS, get_benchmark, register_benchmark

# Importing the benchmark modules registers them.
from . import world_q, world_d, world_sot, world_rsot, world_reg, world_vqa  # noqa: E402,F401
from . import videorefer_q, videorefer_d, lasot, elysium_reg, davis, vot  # noqa: E402,F401

__all__ = ["BENCHMARKS", "METHOD_OF_TASK", "TASKS", "Benchmark", "BenchmarkOptions", "Sample", "Scores", "System",
           "get_benchmark", "register_benchmark"]
