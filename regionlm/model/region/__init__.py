"""Region encoders, one file each; importing this package registers them all (see base.py)."""

import importlib

from .base import (REGION_ENCODER_REGISTRY, RegionEncoder, RegionEncoding, RegionInputs,  # noqa: F401
                   build_region_encoder, register_region_encoder)

for _name in ("token_mark", "mask_pool", "object_tokens", "roi_box", "text_coords", "visual_marks"):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as err:  # an encoder not written yet; anything else is a real error
        if err.name != f"{__name__}.{_name}":
            raise
