"""The shift calendar: weekly shifts with breaks, one-off planned downtime, in a local time zone.

Expanded over a range it gives shift instances, each with its planned downtime; the planned
busy time (PBT) of an instance is its length minus its planned downtime. Overlapping shifts
are refused when the calendar is built.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gongyun.apps.oee.errors import OeeInputInvalid

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _hhmm(value: str, where: str) -> time:
    try:
        h, m = value.split(":")
        return time(int(h), int(m))
    except (ValueError, AttributeError):
        raise OeeInputInvalid(f"{where}: {value!r} is not a time of day HH:MM", reason="calendar") from None


@dataclass(frozen=True)
class Break:
    """A planned stop inside a shift, at the same time every day the shift runs."""

    start: time
    end: time
    reason: str = "break"


@dataclass(frozen=True)
class Shift:
    """A shift that runs on some weekdays (0 = Monday) from ``start`` to ``end`` (past midnight when
    ``end`` is not after ``start``; equal times make a 24 h shift)."""

    name: str
    start: time
    end: time
    weekdays: frozenset[int] = frozenset(range(7))
    breaks: tuple[Break, ...] = ()

    @property
    def length(self) -> timedelta:
        """How long one instance lasts."""
        a = datetime.combine(date(2000, 1, 3), self.start)
        b = datetime.combine(date(2000, 1, 3), self.end)
        return b - a if b > a else b + timedelta(days=1) - a


@dataclass(frozen=True)
class PlannedDowntime:
    """A one-off planned stop (maintenance, trials) of some machines (all when empty)."""

    start: datetime
    end: datetime
    reason: str = "maintenance"
    machines: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ShiftInstance:
    """One shift on one day, in µs, with its planned downtime windows (inside the shift)."""

    shift: str
    day: date
    start: int
    end: int
    planned: tuple[tuple[int, int, str], ...]

    @property
    def pot_s(self) -> float:
        """Planned operation time, seconds."""
        return (self.end - self.start) / US

    def busy_windows(self) -> list[tuple[int, int]]:
        """The instance minus its planned downtime: where PBT accrues."""
        out, cur = [], self.start
        for a, b, _ in sorted(self.planned):
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
        if cur < self.end:
            out.append((cur, self.end))
        return out

    @property
    def pdt_s(self) -> float:
        """Planned downtime, seconds."""
        return self.pot_s - sum(b - a for a, b in self.busy_windows()) / US


@dataclass(frozen=True)
class ShiftCalendar:
    """Shifts, breaks and planned downtime in a time zone."""

    shifts: tuple[Shift, ...]
    planned: tuple[PlannedDowntime, ...] = ()
    tz: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise OeeInputInvalid(f"unknown time zone {self.tz!r}", reason="calendar") from None
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise OeeInputInvalid("shift names must be unique", reason="calendar")
        for s in self.shifts:
            if not s.weekdays or not s.weekdays <= set(range(7)):
                raise OeeInputInvalid(f"shift {s.name!r}: weekdays are 0 (Monday) to 6", reason="calendar")
        for p in self.planned:
            if p.start.tzinfo is None or p.end.tzinfo is None or not p.end > p.start:
                raise OeeInputInvalid("planned downtime needs aware start < end", reason="calendar")
        self._check_overlaps()

    def _check_overlaps(self) -> None:
        """Refuse shifts that overlap (checked over two weeks, which covers every weekly pattern)."""
        monday = date(2024, 1, 1)
        two_weeks = self._instances(monday, monday + timedelta(days=14), naive=True)
        spans = sorted((i.start, i.end, i.shift) for i in two_weeks)
        for (_a0, b0, n0), (a1, _b1, n1) in itertools.pairwise(spans):
            if a1 < b0:
                raise OeeInputInvalid(f"shifts {n0!r} and {n1!r} overlap", reason="overlapping_shifts")
        for inst in self._instances(monday, monday + timedelta(days=7), naive=True):
            shift = next(s for s in self.shifts if s.name == inst.shift)
            for br in shift.breaks:
                a, b = self._break_span(inst, shift, br, naive=True)
                if a < inst.start or b > inst.end:
                    raise OeeInputInvalid(
                        f"shift {shift.name!r}: break {br.start:%H:%M}-{br.end:%H:%M} is outside the shift",
                        reason="calendar",
                    )

    def _local(self, d: date, t: time, naive: bool) -> int:
        dt = datetime.combine(d, t)
        return _us(dt.replace(tzinfo=UTC if naive else self._zone))

    def _break_span(self, inst: ShiftInstance, shift: Shift, br: Break, naive: bool) -> tuple[int, int]:
        d = inst.day if br.start >= shift.start else inst.day + timedelta(days=1)
        a = self._local(d, br.start, naive)
        e = d if br.end > br.start else d + timedelta(days=1)
        return a, self._local(e, br.end, naive)

    def _instances(self, first: date, last: date, naive: bool = False) -> list[ShiftInstance]:
        out = []
        d = first
        while d < last:
            for s in self.shifts:
                if d.weekday() not in s.weekdays:
                    continue
                a = self._local(d, s.start, naive)
                end_day = d if s.end > s.start else d + timedelta(days=1)
                b = self._local(end_day, s.end, naive)
                inst = ShiftInstance(s.name, d, a, b, ())
                planned = [(*self._break_span(inst, s, br, naive), br.reason) for br in s.breaks]
                out.append(ShiftInstance(s.name, d, a, b, tuple(planned)))
            d += timedelta(days=1)
        return out

    def instances(self, start_us: int, end_us: int, machine: str | None = None) -> list[ShiftInstance]:
        """Shift instances that overlap [start, end), cut to it, with breaks and planned downtime."""
        first = (_EPOCH + timedelta(microseconds=start_us)).astimezone(self._zone).date() - timedelta(days=1)
        last = (_EPOCH + timedelta(microseconds=end_us)).astimezone(self._zone).date() + timedelta(days=1)
        out = []
        for inst in self._instances(first, last):
            a, b = max(inst.start, start_us), min(inst.end, end_us)
            if b <= a:
                continue
            planned = list(inst.planned)
            for p in self.planned:
                if machine is None or not p.machines or machine in p.machines:
                    planned.append((_us(p.start), _us(p.end), p.reason))
            cut = tuple((max(x, a), min(y, b), r) for x, y, r in planned if min(y, b) > max(x, a))
            out.append(ShiftInstance(inst.shift, inst.day, a, b, cut))
        return sorted(out, key=lambda i: i.start)

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> ShiftCalendar:
        """A calendar from its JSON form (shifts with HH:MM times, breaks, planned downtime)."""
        shifts = []
        for s in spec.get("shifts", ()):
            name = str(s.get("name", ""))
            if not name:
                raise OeeInputInvalid("every shift needs a name", reason="calendar")
            breaks = tuple(
                Break(_hhmm(b["start"], name), _hhmm(b["end"], name), str(b.get("reason", "break")))
                for b in s.get("breaks", ())
            )
            shifts.append(
                Shift(
                    name,
                    _hhmm(s["start"], name),
                    _hhmm(s["end"], name),
                    frozenset(int(w) for w in s.get("weekdays", range(7))),
                    breaks,
                )
            )
        planned = []
        for p in spec.get("planned", ()):
            try:
                a, b = datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"])
            except (KeyError, ValueError, TypeError):
                raise OeeInputInvalid("planned downtime needs ISO start and end", reason="calendar") from None
            planned.append(
                PlannedDowntime(a, b, str(p.get("reason", "maintenance")), frozenset(p.get("machines", ())))
            )
        return cls(tuple(shifts), tuple(planned), str(spec.get("tz", "UTC")))


def shifts_overlap(spec: Sequence[Mapping[str, Any]], tz: str = "UTC") -> bool:
    """True when these shifts would be refused for overlapping."""
    try:
        ShiftCalendar.parse({"shifts": list(spec), "tz": tz})
    except OeeInputInvalid as exc:
        return exc.details.get("reason") == "overlapping_shifts"
    return False
