"""One registry of dataset formats: name -> loader.

A loader is called as `loader(path, *, errors="raise", **options)` and returns a LoadResult. Format modules
register themselves with `@register_format("name")`; importing `regionlm.data` imports them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from regionlm.data.result import LoadResult
from regionlm.errors import RegionLMError

Loader = Callable[..., LoadResult]

FORMATS: dict[str, Loader] = {}


def register_format(*names: str) -> Callable[[Loader], Loader]:
    """Decorator registering a loader under one or more format names."""

    def deco(fn: Loader) -> Loader:
        for name in names:
            if name in FORMATS and FORMATS[name] is not fn:
                raise ValueError(f"format {name!r} is registered twice")
            FORMATS[name] = fn
        return fn

    return deco


def get_loader(name: str) -> Loader:
    import regionlm.data  # noqa: F401  (makes sure every format module has registered itself)

    try:
        return FORMATS[name]
    except KeyError:
        raise RegionLMError(f"unknown data format {name!r}; known formats: {', '.join(sorted(FORMATS))}") from None


def load(path: str | os.PathLike, format: str, **options) -> LoadResult:
    """Load `path` with the loader registered as `format` (see FORMATS)."""
    return get_loader(format)(path, **options)
