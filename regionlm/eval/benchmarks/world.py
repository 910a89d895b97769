"""Shared by the RegionWorld benchmarks: reading a folder written by `regionlm world generate`."""

from __future__ import annotations

from pathlib import Path

from ...data.io import iter_jsonl, read_json
from ...errors import DataFormatError, RegionLMError


def world_file(folder: Path, name: str) -> Path:
    """``folder/name``, with a one-line error when the folder is not a RegionWorld split."""
    folder = Path(folder)
    if not folder.is_dir():
        hint = " (give the folder, not the file)" if folder.is_file() else ""
        raise RegionLMError(f"{folder}: not a folder{hint}; --data must be a RegionWorld folder written by "
                            f"`regionlm world generate OUT --split test`")
    path = folder / name
    if not path.is_file():
        raise RegionLMError(f"{folder}: no {name}; --data must be a RegionWorld folder written by "
                            f"`regionlm world generate OUT --split test`")
    return path


def read_world_records(folder: Path, name: str) -> list:
    """The records of one task file (JSON list or JSONL) of a RegionWorld folder."""
    path = world_file(folder, name)
    if name.endswith(".jsonl"):
        records = []
        for _, value in iter_jsonl(path):
            if isinstance(value, DataFormatError):
                raise value
            records.append(value)
        return records
    data = read_json(path)
    if not isinstance(data, list):
        raise DataFormatError(path, None, None, f"expected a JSON list of records, got {type(data).__name__}")
    return data


def read_ground_truth(folder: Path) -> dict:
    """``{video path: video record}`` of ground_truth.json."""
    data = read_json(world_file(folder, "ground_truth.json"))
    try:
        return {v["video"]: v for v in data["videos"]}
    except (KeyError, TypeError):
        raise DataFormatError(folder / "ground_truth.json", None, "videos",
                              "expected {\"config\": ..., \"videos\": [{\"video\": ..., ...}]}") from None


def require_keys(rec: dict, keys: tuple, file: str, index: int) -> dict:
    """One-line error naming the file, record and field when a task record lacks a field."""
    if not isinstance(rec, dict):
        raise DataFormatError(file, index, None, f"expected a JSON object, got {type(rec).__name__}")
    for k in keys:
        if k not in rec:
            raise DataFormatError(file, rec.get("id", index), k, "missing")
    return rec
