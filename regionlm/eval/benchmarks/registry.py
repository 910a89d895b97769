"""One registry of benchmarks: name -> Benchmark class (lmms-eval style: one small file per benchmark)."""

from __future__ import annotations

from collections.abc import Callable

from ...errors import RegionLMError
from .base import TASKS, Benchmark

BENCHMARKS: dict[str, type[Benchmark]] = {}


def register_benchmark(name: str) -> Callable[[type[Benchmark]], type[Benchmark]]:
    """Class decorator: ``@register_benchmark("world-q")`` registers the class under ``name``."""

    def deco(cls: type[Benchmark]) -> type[Benchmark]:
        if name in BENCHMARKS and BENCHMARKS[name] is not cls:
            raise ValueError(f"benchmark {name!r} is registered twice")
        if cls.task not in TASKS:
            raise ValueError(f"benchmark {name!r}: task must be one of {TASKS}, got {cls.task!r}")
        cls.name = name
        BENCHMARKS[name] = cls
        return cls

    return deco


def get_benchmark(name: str) -> type[Benchmark]:
    import regionlm.eval.benchmarks  # noqa: F401  (every benchmark module registers itself on import)

    try:
        return BENCHMARKS[name]
    except KeyError:
        raise RegionLMError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(BENCHMARKS))}") from None
