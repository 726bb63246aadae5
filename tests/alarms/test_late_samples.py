"""Samples out of time order: late ones are evaluated (raise, never roll back), exact repeats count once."""

from __future__ import annotations

import asyncio
from typing import Any

from gongyun.alarms import late
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.rules import ExpressionRule, RateRule, StaleRule, ThresholdRule
from gongyun.alarms.states import State
from gongyun.telemetry.store import Point

S = 1_000_000
T0 = 1_767_225_600 * S


def _events(q: asyncio.Queue[dict[str, Any]]) -> list[tuple[str, str, float | None]]:
    out = []
    while not q.empty():
        ev = q.get_nowait()
        out.append((ev["before"], ev["state"], ev["value"]))
    return out


def _engine(spec: Any) -> tuple[AlarmEngine, asyncio.Queue[dict[str, Any]]]:
    eng = AlarmEngine(None)
    eng.put_rule("t1", "r1", spec)
    return eng, eng.listen()


async def test_a_spike_in_an_older_batch_raises_the_alarm() -> None:
    eng, q = _engine(ThresholdRule(name="hot", tag="p/t", limit=80))
    await eng.on_points("t1", [Point("p/t", T0 + 200 * S, 20.0)])
    await eng.on_points("t1", [Point("p/t", T0 + 100 * S, 95.0)])  # late: evaluated, not dropped
    assert eng.late == 1 and eng.skipped == 0
    # raised at the spike's time, back to clear at the newest sample's: the operator must ack it
    assert _events(q) == [("normal", "unack_active", 95.0), ("unack_active", "unack_rtn", 20.0)]
    assert eng.state("t1", "r1") is State.unack_rtn
    view = eng.alarms("t1")[0]
    assert view["value"] == 20.0 and view["since"].startswith("2026-01-01T00:03:20")
    await eng.on_points("t1", [Point("p/t", T0 + 100 * S, 95.0)])  # the same late batch again
    assert eng.skipped == 1 and _events(q) == []


async def test_a_late_sample_never_rolls_a_newer_state_back() -> None:
    eng, q = _engine(ThresholdRule(name="hot", tag="p/t", limit=80))
    await eng.on_points("t1", [Point("p/t", T0 + 200 * S, 95.0)])
    assert _events(q) == [("normal", "unack_active", 95.0)]
    await eng.on_points("t1", [Point("p/t", T0 + 100 * S, 20.0), Point("p/t", T0 + 150 * S, 99.0)])
    assert eng.late == 2 and _events(q) == []  # a late clear, a late spike while active: nothing
    assert eng.state("t1", "r1") is State.unack_active
    await eng.on_points("t1", [Point("p/t", T0 + 201 * S, 10.0)])  # live samples still drive it
    assert _events(q) == [("unack_active", "unack_rtn", 10.0)]


async def test_a_late_backlog_counts_toward_the_on_delay_across_batches() -> None:
    eng, q = _engine(ThresholdRule(name="hot", tag="p/t", limit=80, on_delay_s=2))
    await eng.on_points("t1", [Point("p/t", T0 + 1000 * S, 10.0)])
    backlog = [Point("p/t", T0 + 100 * S, 90.0), Point("p/t", T0 + 101 * S, 91.0)]
    await eng.on_points("t1", backlog)
    await eng.on_points("t1", backlog)  # an exact replay counts once: no extra delay
    assert eng.skipped == 2 and _events(q) == []
    await eng.on_points("t1", [Point("p/t", T0 + 102 * S, 92.0)])  # held for 2 s now
    assert _events(q) == [("normal", "unack_active", 92.0), ("unack_active", "unack_rtn", 10.0)]
    await eng.on_points("t1", [Point("p/t", T0 + 103 * S, 93.0)])  # the same excursion: raised once
    assert _events(q) == []
    # a short late spike (shorter than the on-delay) raises nothing
    await eng.on_points("t1", [Point("p/t", T0 + 50 * S, 99.0), Point("p/t", T0 + 51 * S, 10.0)])
    assert _events(q) == []


async def test_a_late_rate_uses_the_nearest_earlier_sample() -> None:
    eng, q = _engine(RateRule(name="fast", tag="p/t", max_rate_per_s=5))
    await eng.on_points("t1", [Point("p/t", T0 + k * 10 * S, 0.0) for k in range(4)])  # 0..30 s flat
    assert _events(q) == []
    await eng.on_points("t1", [Point("p/t", T0 + 25 * S, 40.0)])  # 40 in 5 s after the sample at 20 s
    assert _events(q) == [("normal", "unack_active", 40.0), ("unack_active", "unack_rtn", 0.0)]
    await eng.on_points("t1", [Point("p/t", T0 + 5 * S, 1.0)])  # 1 in 5 s: within the limit
    assert _events(q) == []


async def test_an_exact_replay_counts_once_for_delays_and_rates() -> None:
    eng, q = _engine(ThresholdRule(name="hot", tag="p/t", limit=80, on_delay_s=2))
    eng.put_rule("t1", "r2", RateRule(name="fast", tag="p/t", max_rate_per_s=50))
    batch = [Point("p/t", T0, 85.0), Point("p/t", T0 + S, 86.0)]
    await eng.on_points("t1", batch)
    await eng.on_points("t1", batch)
    await eng.on_points("t1", batch[1:] + batch[1:])  # and duplicates inside one batch
    assert eng.skipped == 4 and eng.late == 0 and _events(q) == []
    await eng.on_points("t1", [Point("p/t", T0 + 2 * S, 86.0)])
    assert eng.state("t1", "r1") is State.unack_active and eng.state("t1", "r2") is State.normal
    await eng.on_points("t1", batch)
    assert eng.skipped == 6 and [e[1] for e in _events(q)] == ["unack_active"]


async def test_stale_rules_ignore_late_samples_and_memory_is_bounded() -> None:
    eng, q = _engine(StaleRule(name="quiet", tag="p/t", max_age_s=10))
    await eng.on_points("t1", [Point("p/t", T0 + 100 * S, 1.0)])
    await eng.tick(T0 + 111 * S)
    assert eng.state("t1", "r1") is State.unack_active
    await eng.on_points("t1", [Point("p/t", T0 + 50 * S, 1.0)])  # older than the newest: still stale
    await eng.tick(T0 + 112 * S)
    assert eng.state("t1", "r1") is State.unack_active
    _events(q)
    eng2, _ = _engine(ThresholdRule(name="hot", tag="p/t", limit=80))
    await eng2.on_points("t1", [Point("p/t", T0 + k, 1.0) for k in range(late.WINDOW * 3)])
    window = eng2._seen.window("t1", "p/t")
    assert len(window.ts) == late.WINDOW == len(window.values)
    assert window.ts[0] == 2 * late.WINDOW + T0 and eng2.skipped == 0


async def test_a_late_expression_input_reads_the_other_inputs_as_they_are_now() -> None:
    spec = ExpressionRule(name="both", expression="a > 1 and b > 1", inputs={"a": "p/a", "b": "p/b"})
    eng, q = _engine(spec)
    await eng.on_points("t1", [Point("p/a", T0 + 10 * S, 0.0), Point("p/b", T0 + 10 * S, 5.0)])
    assert _events(q) == []
    await eng.on_points("t1", [Point("p/a", T0 + 5 * S, 2.0)])  # late a, with b as it is now (5)
    assert _events(q) == [("normal", "unack_active", 2.0), ("unack_active", "unack_rtn", 5.0)]
    await eng.on_points("t1", [Point("p/b", T0 + 11 * S, 0.0), Point("p/a", T0 + 6 * S, 3.0)])
    assert eng.late == 2 and _events(q) == []  # b is 0 now: the late a alone is not an alarm
