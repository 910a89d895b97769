"""The error policy shared by every loader, and what a loader returns.

`errors="raise"` (the default) raises the first bad record's DataFormatError. `errors="skip"` goes on and
records every bad record in `LoadResult.skipped`, so nothing is dropped silently. Problems that make a whole
file unusable (missing file, invalid JSON, wrong top-level type) always raise: there is no record to skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from regionlm.errors import DataFormatError

ERROR_MODES = ("raise", "skip")


def check_errors_mode(errors: str) -> str:
    if errors not in ERROR_MODES:
        raise ValueError(f"errors must be one of {ERROR_MODES}, got {errors!r}")
    return errors


@dataclass(frozen=True)
class SkippedRecord:
    """One record left out in skip mode, with the reason."""

    file: str
    record: Any
    field: str | None
    reason: str

    @classmethod
    def from_error(cls, err: DataFormatError) -> SkippedRecord:
        return cls(err.file, err.record, err.field, err.reason)

    def to_dict(self) -> dict:
        return {"file": self.file, "record": self.record, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        # Same wording as DataFormatError, so raise and skip modes read alike.
        return str(DataFormatError(self.file, self.record, self.field, self.reason))


@dataclass
class LoadResult:
    """The good records of one or more files plus a report of every skipped record."""

    records: list = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator:
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]

    @property
    def report(self) -> list[dict]:
        """Every skipped record as a JSON-ready dict (file, record, field, reason)."""
        return [s.to_dict() for s in self.skipped]

    def extend(self, other: LoadResult) -> None:
        self.records.extend(other.records)
        self.skipped.extend(other.skipped)

    def fail(self, err: DataFormatError, errors: str) -> None:
        """Apply the policy to one bad record: raise it, or note it as skipped."""
        if errors == "raise":
            raise err
        self.skipped.append(SkippedRecord.from_error(err))

    def summary(self) -> str:
        lines = [f"{len(self.records)} records ok, {len(self.skipped)} skipped"]
        lines += [f"  skipped: {s}" for s in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"ok": len(self.records), "skipped": len(self.skipped), "report": self.report}


def collect(items: Iterable, parse: Callable[[int, Any], Any], errors: str = "raise") -> LoadResult:
    """Parse `items` one by one with `parse(index, item)`, applying the error policy to DataFormatErrors."""
    check_errors_mode(errors)
    result = LoadResult()
    for i, item in enumerate(items):
        try:
            result.records.append(parse(i, item))
        except DataFormatError as err:
            result.fail(err, errors)
    return result
