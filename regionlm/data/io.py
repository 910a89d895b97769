"""Atomic, byte-stable writers and tolerant JSON / JSONL readers.

Writers go through a temporary file in the target folder and `os.replace`, so a reader never sees a half
written file. JSON is written compactly (no spaces, keys in insertion order, UTF-8 kept as is, one trailing
newline) so that the same object always gives the same bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from regionlm.errors import DataFormatError


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays turn up in generated annotations; write them as plain JSON numbers/lists.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def dumps_json(obj: Any) -> str:
    """Compact, byte-stable JSON (no trailing newline). NaN/inf are refused: they are not valid JSON."""
    return json.dumps(obj, sort_keys=False, ensure_ascii=False, indent=None, separators=(",", ":"),
                      allow_nan=False, default=_json_default)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8, "\\n" line ends) to `path` atomically; creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        # Leave no temporary file behind, whatever went wrong (including KeyboardInterrupt).
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as compact JSON plus a trailing newline, atomically."""
    return atomic_write_text(path, dumps_json(obj) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> Path:
    """Write one compact JSON document per line, atomically."""
    return atomic_write_text(path, "".join(dumps_json(r) + "\n" for r in records))


def _json_error(path, err: json.JSONDecodeError) -> DataFormatError:
    return DataFormatError(path, None, None, f"invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})")


def read_text(path: str | os.PathLike) -> str:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, None, "no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_json(path: str | os.PathLike) -> Any:
    """Parse a whole JSON file; a syntax error names the line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(path, err) from None


def iter_jsonl(path: str | os.PathLike):
    """Yield (line_number, parsed_or_error) for each non-blank line of a JSONL file.

    A line that is not valid JSON yields a DataFormatError instead of a value, so a caller in skip mode can
    skip that one line and go on.
    """
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as err:
            yield n, DataFormatError(path, f"line {n}", None, f"invalid JSON: {err.msg} (column {err.colno})")


def read_records(path: str | os.PathLike) -> list:
    """The records of a JSON list file or a JSONL file (by suffix `.jsonl`, or content that is not one JSON doc).

    JSONL lines that fail to parse come back as DataFormatError objects in the list; the loaders pass them
    to the error policy like any other bad record.
    """
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return [value for _, value in iter_jsonl(path)]
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        # Several documents, one per line: a JSONL file with a .json name.
        if text.lstrip().startswith("{") and err.msg == "Extra data":
            return [value for _, value in iter_jsonl(path)]
        raise _json_error(path, err) from None
    if isinstance(data, dict):
        return [data]  # a file holding a single record
    if not isinstance(data, list):
        raise DataFormatError(path, None, None, f"expected a JSON list of records, got {type(data).__name__}")
    return data
