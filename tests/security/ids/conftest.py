"""Fixtures of the IDS tests: the reference capture from the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def shared_data() -> Path | None:
    """The shared reference data folder (``../shared/data`` beside the repository), if present."""
    for cand in (os.environ.get("GONGYUN_SHARED_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"):
        if cand and (Path(cand) / "ics").is_dir():
            return Path(cand)
    return None


@pytest.fixture
def ics_dir() -> Path:
    """The folder of the ICS reference captures."""
    data = shared_data()
    if data is None:
        pytest.skip("the shared reference data (../shared/data/ics) is not beside the repository")
    return data / "ics"
