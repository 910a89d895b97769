"""Dataset readers, validators and writers, one module per format, behind one registry.

    from regionlm.data import load, FORMATS
    result = load("train.json", "canonical", errors="skip")   # LoadResult(records, skipped)
    print(result.summary())

Every loader takes `errors="raise"` (first bad record raises DataFormatError naming file, record and field)
or `errors="skip"` (bad records are left out and listed in `result.skipped`). The torch Dataset
(`RegionVideoDataset`, `collate_regions`) is imported lazily, so reading data does not import torch.
"""

from regionlm.data.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_records
from regionlm.data.registry import FORMATS, Loader, load, register_format
from regionlm.data.result import LoadResult, SkippedRecord

# Importing the format modules registers them in FORMATS.
from regionlm.data.canonical import RegionTrack, check_sample, load_canonical, validate_canonical, write_canonical
from regionlm.data.videorefer import QUESTION_TYPES, load_bench_d, load_bench_q
from regionlm.data.elysium import ElysiumTrack, load_elysium
from regionlm.data.videoref45k import Ref45kTrack, load_ref45k
from regionlm.data.sot import Sequence, load_sot, load_sot_sequence
from regionlm.data.vot import load_vot, load_vot_sequence, polygons_to_xywh
from regionlm.data.davis import DavisSequence, load_davis, load_davis_sequence
from regionlm.data.sav import SavMasklet, load_sav, load_sav_file

_LAZY = {"RegionVideoDataset", "collate_regions"}


def __getattr__(name):
    if name in _LAZY:
        from regionlm.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'regionlm.data' has no attribute {name!r}")


__all__ = [
    "FORMATS", "Loader", "LoadResult", "SkippedRecord", "load", "register_format", "read_records",
    "atomic_write_json", "atomic_write_jsonl", "atomic_write_text",
    "RegionTrack", "check_sample", "load_canonical", "validate_canonical", "write_canonical",
    "QUESTION_TYPES", "load_bench_q", "load_bench_d", "ElysiumTrack", "load_elysium", "Ref45kTrack", "load_ref45k",
    "Sequence", "load_sot", "load_sot_sequence", "load_vot", "load_vot_sequence", "polygons_to_xywh",
    "DavisSequence", "load_davis", "load_davis_sequence", "SavMasklet", "load_sav", "load_sav_file",
    "RegionVideoDataset", "collate_regions",
]
