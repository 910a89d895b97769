"""The real test data in ../shared/data (read in place, never copied into the repo)."""

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real(name: str) -> Path:
    """The path of a real test file or folder; skips the test where the shared data is not at hand."""
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real test data {path} not available")
    return path
