"""The classical backend: detector, segmenter and trackers that need no weights. Importing this package registers
its parts; each part lives in its own module, and a module not written yet is simply left out."""

import importlib

for _name in ("detect", "segment", "track"):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _err:
        if _err.name != f"{__name__}.{_name}":
            raise
del _name
