"""A machine's OEE per shift, day or week; a line's (at its bottleneck) and a site's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np

from gongyun.apps.oee.domain.calendar import ShiftInstance
from gongyun.apps.oee.domain.kpi import Kpis, Quantities, TimeElements, kpis
from gongyun.apps.oee.domain.losses import StopEvent, six_big_losses, stop_events
from gongyun.apps.oee.domain.states import MachineState, Timeline
from gongyun.apps.oee.errors import OeeInputInvalid

US = 1_000_000
Grouping = Literal["shift", "day", "week"]


@dataclass(frozen=True)
class Counter:
    """Increments of a counter (good or scrap parts) at times (µs)."""

    ts: np.ndarray
    inc: np.ndarray

    @classmethod
    def empty(cls) -> Counter:
        """No counts."""
        return cls(np.empty(0, np.int64), np.empty(0))

    @classmethod
    def from_totals(cls, ts_us: np.ndarray, totals: np.ndarray) -> Counter:
        """From a cumulative counter's readings: rises count, a drop is a reset (counts from 0)."""
        ts, v = np.asarray(ts_us, dtype=np.int64), np.asarray(totals, dtype=np.float64)
        if v.size < 2:
            return cls.empty()
        d = np.diff(v)
        inc = np.where(d >= 0, d, v[1:])
        return cls(ts[1:], inc)

    def minus(self, other: Counter) -> Counter:
        """This counter less another (good parts from all parts less rejects)."""
        ts = np.concatenate([self.ts, other.ts])
        order = np.argsort(ts, kind="stable")
        return Counter(ts[order], np.concatenate([self.inc, -other.inc])[order])

    def total(self, a: int, b: int) -> float:
        """Counts with a ≤ ts < b."""
        lo, hi = np.searchsorted(self.ts, [a, b], side="left")
        return float(self.inc[lo:hi].sum())


@dataclass(frozen=True)
class MachineSpec:
    """What the computation needs to know of a machine besides its data."""

    name: str
    ideal_cycle_s: float
    micro_stop_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.ideal_cycle_s > 0:
            raise OeeInputInvalid(
                f"machine {self.name!r}: ideal cycle time must be positive", reason="ideal_cycle"
            )


@dataclass(frozen=True)
class PeriodResult:
    """One machine (or line) over one period."""

    key: str
    start: int
    end: int
    te: TimeElements
    q: Quantities
    kpi: Kpis
    losses: dict[str, float]
    events: list[StopEvent] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (events left out)."""
        return {
            "key": self.key,
            "start": self.start,
            "end": self.end,
            "time": self.te.as_dict(),
            "good": self.q.good,
            "scrap": self.q.scrap,
            **self.kpi.as_dict(),
            "losses": self.losses,
        }


def period_key(inst: ShiftInstance, grouping: Grouping) -> str:
    """The period an instance belongs to: ``2026-01-05/A``, ``2026-01-05`` or ``2026-W02``."""
    if grouping == "shift":
        return f"{inst.day.isoformat()}/{inst.shift}"
    if grouping == "day":
        return inst.day.isoformat()
    y, w, _ = date.isocalendar(inst.day)
    return f"{y}-W{w:02d}"


def machine_periods(
    spec: MachineSpec,
    timeline: Timeline,
    good: Counter,
    scrap: Counter,
    instances: Sequence[ShiftInstance],
    grouping: Grouping = "shift",
    startup_scrap: Callable[[int, int], float] | None = None,
) -> list[PeriodResult]:
    """A/P/Q/OEE, the ISO KPIs and losses of one machine for each period of the instances."""
    groups: dict[str, list[ShiftInstance]] = {}
    for inst in instances:
        groups.setdefault(period_key(inst, grouping), []).append(inst)
    out = []
    for key, insts in groups.items():
        windows = [(a, b, i.shift) for i in insts for a, b in i.busy_windows()]
        by_state = timeline.durations([(a, b) for a, b, _ in windows])
        pot = sum(i.pot_s for i in insts)
        pdt = sum(i.pdt_s for i in insts)
        te = TimeElements.from_durations(pot, pdt, list(by_state))
        q = Quantities(
            sum(good.total(a, b) for a, b, _ in windows), sum(scrap.total(a, b) for a, b, _ in windows)
        )
        events = stop_events(spec.name, timeline, windows)
        failures = sum(
            1 for e in events if e.state == MachineState.down_unplanned and not e.micro(spec.micro_stop_s)
        )
        start, end = min(i.start for i in insts), max(i.end for i in insts)
        su = startup_scrap(start, end) if startup_scrap else 0.0
        out.append(
            PeriodResult(
                key,
                start,
                end,
                te,
                q,
                kpis(te, q, spec.ideal_cycle_s, failures),
                six_big_losses(te, q, spec.ideal_cycle_s, events, spec.micro_stop_s, su),
                events,
            )
        )
    return out


@dataclass(frozen=True)
class LineResult:
    """A line over one period: its bottleneck machine's KPIs stand for the line."""

    key: str
    bottleneck: str
    kpi: Kpis
    pbt_s: float
    machines: dict[str, Kpis]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "key": self.key,
            "bottleneck": self.bottleneck,
            "pbt_s": self.pbt_s,
            **self.kpi.as_dict(),
            "machines": {k: v.as_dict() for k, v in self.machines.items()},
        }


def line_periods(specs: Sequence[MachineSpec], results: dict[str, list[PeriodResult]]) -> list[LineResult]:
    """Per period, the line's KPIs are its bottleneck's: of the machines in that period (a retired
    machine is in the periods before its retirement), the one with the longest ideal cycle."""
    if not specs:
        raise OeeInputInvalid("a line needs at least one machine", reason="line")
    keys: list[str] = []
    for rs in results.values():
        for r in rs:
            if r.key not in keys:
                keys.append(r.key)
    out = []
    for key in keys:
        per = {name: r for name, rs in results.items() for r in rs if r.key == key}
        present = [s for s in specs if s.name in per]
        if not present:
            continue
        bottleneck = max(present, key=lambda s: (s.ideal_cycle_s, s.name)).name
        b = per[bottleneck]
        out.append(LineResult(key, bottleneck, b.kpi, b.te.pbt, {n: r.kpi for n, r in per.items()}))
    return out


def _weighted(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    num = den = 0.0
    for v, w in pairs:
        if v is not None and w > 0:
            num += v * w
            den += w
    return num / den if den else None


def site_summary(lines: dict[str, LineResult]) -> dict[str, float | None]:
    """A site's A, P, Q and OEE: its lines' values weighted by their planned busy time."""
    vals = list(lines.values())
    return {
        k: _weighted((getattr(r.kpi, k), r.pbt_s) for r in vals)
        for k in ("availability", "performance", "quality", "oee")
    }
