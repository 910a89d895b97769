"""RegionLM: the model (config, connectors, region encoders, modeling) and its processor.

Names are imported on first use: `regionlm --help` and every other command import this package to register their
parsers, and loading torch + transformers there would add seconds to each of them.
"""

import importlib

_EXPORTS = {
    "RegionLMConfig": ".config",
    "RegionLMForConditionalGeneration": ".modeling",
    "RegionLMSystem": ".inference",
    "load_eval_system": ".inference",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
