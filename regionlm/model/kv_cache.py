"""The language model's key/value cache across transformers versions: 5.24 renamed `past_key_values` to
`cache` (in model outputs and forward keywords), and regionlm supports transformers 5.x on both sides of that."""

from __future__ import annotations

import functools
import inspect


def output_cache(out):
    """The key/value cache of a language model's output, under either name transformers has used for it."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def cache_kwargs(lm, cache) -> dict:
    """``cache`` as the keyword ``lm``'s forward takes: ``cache`` from transformers 5.24, ``past_key_values``
    before (the old name still works there but warns)."""
    return {_cache_keyword(type(lm)): cache}


@functools.lru_cache(maxsize=None)
def _cache_keyword(lm_class) -> str:
    # once per class: every forward of a training step asks, and reading a signature is not free
    return "cache" if "cache" in inspect.signature(lm_class.forward).parameters else "past_key_values"
