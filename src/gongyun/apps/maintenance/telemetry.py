"""Baseline windows from stored telemetry: several tags aligned on the first tag's timestamps."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt


def align(series: Sequence[list[tuple[datetime, float]]]) -> npt.NDArray[np.float64]:
    """Rows at the first series' times, each other series sampled-and-held (rows before any value dropped)."""
    if not series or not series[0]:
        return np.zeros((0, len(series)))
    times = [[t for t, _ in s] for s in series]
    rows = []
    for t, v0 in series[0]:
        row = [v0]
        for k in range(1, len(series)):
            i = bisect.bisect_right(times[k], t) - 1
            if i < 0:
                break
            row.append(series[k][i][1])
        else:
            rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(series))
