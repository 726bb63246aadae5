"""Small synthetic data for the maintenance app's tests, and the shared reference data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_REPO = Path(__file__).resolve().parents[3]
# ``../shared/data`` beside the checkout; a clone elsewhere finds it through GONGYUN_SHARED_DATA
# or at the workplace's /work/shared/data (as the IDS and scheduling tests do).
_CANDIDATES = [os.environ.get("GONGYUN_SHARED_DATA"), _REPO.parent / "shared" / "data", "/work/shared/data"]
SHARED = next((Path(c) for c in _CANDIDATES if c and Path(c).is_dir()), _REPO.parent / "shared" / "data")


def shared(rel: str) -> Path:
    """A file of ``../shared/data``; skip when absent (fail under CI=true)."""
    p = SHARED / rel
    if not p.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{p} is missing (CI needs ../shared/data)")
        pytest.skip(f"{p} is absent (a fresh checkout has no ../shared/data)")
    return p


def cmapss_rows(units: int = 12, seed: int = 0, min_len: int = 60, max_len: int = 120) -> list[list[float]]:
    """Run-to-failure histories in the C-MAPSS layout: sensors drift exponentially toward failure."""
    rng = np.random.default_rng(seed)
    rows: list[list[float]] = []
    drift = np.random.default_rng(12345).normal(0, 1, 21)  # the engine type's: the same for every seed
    drift[[0, 4, 9, 15, 17, 18]] = 0.0  # constant sensors, as in FD001
    for u in range(1, units + 1):
        n = int(rng.integers(min_len, max_len + 1))
        for c in range(1, n + 1):
            wear = np.exp(3.0 * c / n) - 1
            sensors = 100 + drift * wear + rng.normal(0, 0.3, 21) * (drift != 0)
            rows.append([u, c, rng.normal(0, 0.001), rng.normal(0, 0.0003), 100.0, *sensors.round(4)])
    return rows


def cmapss_text(rows: list[list[float]]) -> str:
    """Rows as C-MAPSS text (space separated, integers for unit and cycle)."""
    lines = []
    for r in rows:
        lines.append(" ".join([str(int(r[0])), str(int(r[1])), *(f"{v:.4f}" for v in r[2:])]))
    return "\n".join(lines) + "\n"
