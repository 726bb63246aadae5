"""Samples that reach the alarm engine out of time order: repeats are skipped, late ones evaluated.

Samples legitimately arrive out of order at the engine (the leader's own ingest versus other
processes' points over the bus, a queue group splitting one gateway's batches, a backlog after
an outage). The rules, per tenant and tag:

* **Repeat**: a sample whose timestamp is among the tag's last :data:`WINDOW` evaluated ones
  (a redelivered or replayed batch) is skipped, so it never counts twice toward a delay or a
  rate. Older than a full window it cannot be recognised and is evaluated as late.
* **Live**: a sample newer than every one evaluated for its tag drives the alarm as usual.
* **Late**: a sample older than the tag's newest is fed, in time order, to the alarm's *late
  lane*: a separate condition and debouncer. The lane goes on while late samples keep coming in
  time order (a backlog split over several batches counts toward the on-delay); a late sample
  not newer than the lane's last one starts a fresh lane. A rate is always computed from the
  nearest earlier sample evaluated for the tag (live or late); an expression reads its other
  inputs' current values. Stale rules ignore late samples (they are older than the newest).
* A late lane can only **raise** an alarm, never roll a newer state back: when its debounced
  condition turns active while the alarm's live condition is clear, the alarm is activated at
  the late sample's time and cleared at once at the tag's newest time (ISA-18.2 UNACK_RTN: the
  operator still sees and acknowledges the excursion); it is raised once per excursion of the
  lane. A late clear, or a late excursion while the alarm is already active, changes nothing.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Any

from gongyun.alarms.rules import Condition, Debouncer, ExpressionRule, RateRule, StaleRule
from gongyun.alarms.states import AlarmStateMachine, Transition

WINDOW = 256
"""Evaluated timestamps kept per tag to recognise repeats (and find a rate's earlier sample)."""
MAX_TAGS = 200_000
"""Tags with a window at most (the oldest window is forgotten beyond)."""
MAX_LANES = 100_000
"""Late lanes at most (the oldest lane is forgotten beyond)."""


@dataclass
class TagWindow:
    """The last :data:`WINDOW` evaluated samples of one tag, in time order."""

    ts: list[int] = field(default_factory=list)
    values: dict[int, float] = field(default_factory=dict)

    @property
    def newest(self) -> int | None:
        """The newest evaluated timestamp (None before the first sample)."""
        return self.ts[-1] if self.ts else None

    def seen(self, ts: int) -> bool:
        """True when a sample at ``ts`` was evaluated already (within the window)."""
        return ts in self.values

    def add(self, ts: int, value: float) -> None:
        """Record an evaluated sample (forgetting the oldest beyond the window)."""
        insort(self.ts, ts)
        self.values[ts] = value
        while len(self.ts) > WINDOW:
            del self.values[self.ts.pop(0)]

    def before(self, ts: int) -> tuple[int, float] | None:
        """The nearest evaluated sample earlier than ``ts``."""
        i = bisect_left(self.ts, ts)
        if i == 0:
            return None
        prev = self.ts[i - 1]
        return prev, self.values[prev]


@dataclass
class LateLane:
    """One alarm's evaluation of late samples (see the module's rules)."""

    owner: Any  # the LiveAlarm it belongs to (a replaced rule gets a fresh lane)
    condition: Condition
    debounce: Debouncer
    last_ts: int
    raised: bool = False


class RecentSamples:
    """Per-tag windows and per-alarm late lanes, bounded in memory."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], TagWindow] = {}
        self._lanes: dict[tuple[str, str], LateLane] = {}

    def window(self, tenant: str, tag: str) -> TagWindow:
        """The tag's window (created empty)."""
        key = (tenant, tag)
        w = self._windows.get(key)
        if w is None:
            if len(self._windows) >= MAX_TAGS:
                del self._windows[next(iter(self._windows))]
            w = self._windows[key] = TagWindow()
        return w

    def clear(self) -> None:
        """Forget every window and lane."""
        self._windows.clear()
        self._lanes.clear()

    def late(
        self, live: Any, tag: str, ts: int, value: float, window: TagWindow
    ) -> list[tuple[Any, Transition]]:
        """Evaluate a late sample for one alarm; return the transitions of an excursion it raises."""
        spec = live.spec
        if isinstance(spec, StaleRule):
            return []
        key = (live.tenant, live.rule_id)
        lane = self._lanes.get(key)
        if lane is None or lane.owner is not live or ts <= lane.last_ts:
            if len(self._lanes) >= MAX_LANES and key not in self._lanes:
                del self._lanes[next(iter(self._lanes))]
            cond = Condition(spec)
            lane = self._lanes[key] = LateLane(live, cond, Debouncer(spec.on_delay_s, spec.off_delay_s), ts)
        lane.last_ts = ts
        if isinstance(spec, RateRule):
            lane.condition._prev = window.before(ts)  # the nearest earlier sample
        elif isinstance(spec, ExpressionRule):  # the other inputs as they are now
            now = live.condition._values
            lane.condition._values.update(
                {n: now[n] for n, t in spec.inputs.items() if t != tag and n in now}
            )
        raw = lane.condition.observe(tag, ts, value)
        if raw is None:
            return []
        active = lane.debounce.update(raw, ts)
        if not active:
            lane.raised = False
            return []
        m: AlarmStateMachine = live.machine
        if lane.raised or m.condition:
            return []
        lane.raised = True
        out: list[tuple[Any, Transition]] = []
        tr = m.set_condition(True, ts, value)
        if tr:
            out.append((live, tr))
        newest = window.newest
        tr = m.set_condition(False, max(ts, newest or ts), live.condition.last_value)
        if tr:
            out.append((live, tr))
        return out
