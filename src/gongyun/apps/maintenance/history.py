"""Run-to-failure histories from stored telemetry between recorded failures (no database here).

A failure of an equipment is recorded when an operator closes its work order as done with a label
naming a fault (``bearing_wear``, not ``normal``); it happened at the end of the order's evidence
window (the last scores the app saw before opening it), or when the order was closed if it has
none. The telemetry between two failures (or from a chosen start to the first) is one run to
failure: the tags are sampled-and-held on a regular grid of ``step_s`` seconds, one row per step,
and become one unit of :class:`~gongyun.apps.maintenance.cmapss.Histories`, with the steps as
cycles, so the same features, models and registry serve C-MAPSS files and a plant's own data.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from gongyun.apps.maintenance.cmapss import Array, Histories
from gongyun.apps.maintenance.errors import DataInvalid

NOT_FAULTS = frozenset({"", "normal", "none", "no_fault", "ok"})


@dataclass(frozen=True)
class Failure:
    """One recorded failure of an equipment."""

    at: datetime
    fault: str
    order: int | None = None


@dataclass(frozen=True)
class Run:
    """The telemetry window of one run to failure: [start, end], ``end`` being the failure."""

    start: datetime
    end: datetime
    failure: Failure


def _when(value: Any) -> datetime | None:
    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite keeps UTC, naive


def failures_from_orders(orders: Iterable[dict[str, Any]]) -> list[Failure]:
    """Failures recorded by closed work orders (done, labelled with a fault), oldest first."""
    out = []
    for o in orders:
        label = (o.get("label") or "").strip()
        if o.get("state") != "done" or label.lower() in NOT_FAULTS:
            continue
        window = (o.get("evidence") or {}).get("window") or {}
        at = _when(window.get("end")) or _when(o.get("closed_at"))
        if at is not None:
            out.append(Failure(at, label, o.get("id")))
    return sorted(out, key=lambda f: f.at)


def runs_between(failures: Sequence[Failure], start: datetime) -> list[Run]:
    """The runs to failure after ``start``: from ``start`` or just after the previous failure to each."""
    runs = []
    begin = start
    for f in failures:
        if f.at > begin:
            runs.append(Run(begin, f.at, f))
        begin = max(begin, after(f))
    return runs


def after(failure: Failure) -> datetime:
    """The first instant of the run that follows a failure (the failure's own sample is not in it)."""
    return failure.at + timedelta(microseconds=1)


def resample(
    series: Sequence[list[tuple[datetime, float]]], start: datetime, end: datetime, step_s: float
) -> Array:
    """Rows on the grid start, start + step ... up to ``end``: each tag's last value at or before the
    grid time; grid times before every tag has a value are dropped."""
    step = timedelta(seconds=step_s)
    grid = []
    t = start
    while t <= end:
        grid.append(t)
        t += step
    times = [[ts for ts, _ in s] for s in series]
    rows = []
    for g in grid:
        row = []
        for k, s in enumerate(series):
            i = bisect.bisect_right(times[k], g) - 1
            if i < 0:
                break
            row.append(s[i][1])
        else:
            rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(series))


def to_histories(units: Sequence[Array], names: Sequence[str], source: str) -> Histories:
    """Units (rows of sensor values, one per step) as histories: cycles 1..n, no operating settings."""
    sizes = [len(u) for u in units]
    return Histories(
        units=np.concatenate([np.full(n, k + 1, dtype=np.int64) for k, n in enumerate(sizes)]),
        cycles=np.concatenate([np.arange(1, n + 1, dtype=np.int64) for n in sizes]),
        settings=np.zeros((sum(sizes), 3)),
        sensors=np.concatenate(list(units)) if units else np.zeros((0, len(names))),
        sensor_names=tuple(names),
        source=source,
    )


def check_runs(runs: Sequence[Run], rows: Sequence[Array], window: int, equipment: str) -> None:
    """Refuse too few runs, or runs with fewer steps than the feature window, naming each failure."""
    if len(runs) < 2:
        found = ", ".join(f"{r.failure.fault} at {r.end.isoformat()}" for r in runs) or "none"
        raise DataInvalid(
            f"{equipment}: {len(runs)} recorded failure(s) after the start ({found}); training needs "
            "at least 2 runs to failure (close work orders as done with the fault found as label)"
        )
    short = [
        f"run {k + 1} ({r.start.isoformat()} to the {r.failure.fault} failure at {r.end.isoformat()}): "
        f"{len(x)} steps"
        for k, (r, x) in enumerate(zip(runs, rows, strict=True))
        if len(x) < window
    ]
    if short:
        raise DataInvalid(
            f"{equipment}: run(s) with fewer stored steps than the window of {window}: " + "; ".join(short)
        )
