"""Cleaning: signals with known spikes, gaps and stuck periods; exactly those are found."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from gongyun.telemetry.cleaning import FLAG_STUCK, CleaningConfig, Period, clean, clean_range, find_gaps
from gongyun.telemetry.store import Point, TimeSeriesStore
from gongyun.telemetry.store.base import FLAG_INTERPOLATED, US, to_us
from gongyun.telemetry.units import UnitError

T0 = to_us(datetime(2026, 2, 1, tzinfo=UTC))
SPIKES = {100: 15.0, 250: -12.0, 400: 20.0}
STUCK = range(300, 360)
GAPS = [range(450, 480), range(520, 525)]


def signal() -> list[Point]:
    """600 s at 1 Hz: sine + noise, three spikes, a stuck stretch, two holes."""
    rng = np.random.default_rng(7)
    pts = []
    for i in range(600):
        if any(i in g for g in GAPS):
            continue
        v = 50 + 2 * math.sin(2 * math.pi * i / 120) + float(rng.normal(0, 0.1))
        if i in STUCK:
            v = 50.0
        v += SPIKES.get(i, 0.0)
        pts.append(Point("m/t", T0 + i * US, v))
    return pts


CFG = dict(
    hampel_half_window=5,
    hampel_sigmas=3.0,
    hampel_min_deviation=1.0,
    stuck_min_duration_s=30,
    gap_threshold_s=5,
)


def test_finds_exactly_the_spikes_stuck_period_and_gaps() -> None:
    pts = signal()
    out, rep = clean("m/t", pts, CleaningConfig(**CFG))  # type: ignore[arg-type]
    spikes = [c for c in rep.changes if c.reason == "spike"]
    assert [(c.ts - T0) // US for c in spikes] == sorted(SPIKES)
    assert all(c.action == "replaced" and abs(c.new - 50) < 2.5 for c in spikes)  # type: ignore[operator]
    assert rep.stuck == [Period(T0 + 300 * US, T0 + 359 * US, 60, 50.0)]
    assert rep.gaps == [Period(T0 + 449 * US, T0 + 480 * US), Period(T0 + 519 * US, T0 + 525 * US)]
    assert rep.counts == {"spike": 3, "stuck": 60}
    assert rep.input_count == rep.output_count == len(pts)
    stuck_flags = [(p.ts - T0) // US for p in out if p.flags & FLAG_STUCK]
    assert stuck_flags == list(STUCK)
    assert max(p.value for p in out) < 53  # spikes gone
    d = rep.to_dict()
    assert d["counts"]["spike"] == 3 and len(d["gaps"]) == 2 and d["stuck"][0]["count"] == 60


def test_drop_actions() -> None:
    cfg = CleaningConfig(**CFG, spike_action="drop", stuck_action="drop")  # type: ignore[arg-type]
    out, rep = clean("m/t", signal(), cfg)
    assert rep.output_count == len(signal()) - 3 - 60
    kept = {(p.ts - T0) // US for p in out}
    assert not kept & (set(SPIKES) | set(STUCK))


def test_interpolation_only_when_asked_and_flagged() -> None:
    _, plain = clean("m/t", signal(), CleaningConfig(**CFG))  # type: ignore[arg-type]
    assert "gap" not in plain.counts
    cfg = CleaningConfig(**CFG, interpolate="linear", interpolate_period_s=1, interpolate_max_gap_s=10)  # type: ignore[arg-type]
    out, rep = clean("m/t", signal(), cfg)
    filled = [(p.ts - T0) // US for p in out if p.flags & FLAG_INTERPOLATED]
    assert filled == list(GAPS[1])  # the 31 s hole is longer than the 10 s limit
    assert rep.counts["gap"] == 5
    a, b = next(p for p in out if p.ts == T0 + 519 * US), next(p for p in out if p.ts == T0 + 525 * US)
    mid = next(p for p in out if p.ts == T0 + 522 * US)
    assert mid.value == pytest.approx(a.value + (b.value - a.value) * 3 / 6)
    all_cfg = CleaningConfig(**CFG, interpolate="linear", interpolate_period_s=1)  # type: ignore[arg-type]
    out2, _ = clean("m/t", signal(), all_cfg)
    assert sum(1 for p in out2 if p.flags & FLAG_INTERPOLATED) == 35
    assert [p.ts for p in out2] == sorted(p.ts for p in out2)


def test_duplicates_out_of_order_range_and_quality() -> None:
    pts = [
        Point("m/t", T0, 1.0),
        Point("m/t", T0 + 2 * US, 2.0),
        Point("m/t", T0 + US, 3.0),
        Point("m/t", T0 + US, 4.0),  # duplicate ts: the later one wins
        Point("m/t", T0 + 3 * US, 999.0),  # out of range
        Point("m/t", T0 + 4 * US, 5.0, quality=2),  # bad
        Point("m/t", T0 + 5 * US, 6.0, quality=1),  # uncertain: kept by default
    ]
    out, rep = clean("m/t", pts, CleaningConfig(high=100))
    assert [(p.ts - T0) // US for p in out] == [0, 1, 2, 5]
    assert [p.value for p in out] == [1.0, 4.0, 2.0, 6.0]
    assert rep.counts == {"out_of_order": 2, "duplicate": 1, "out_of_range": 1, "bad_quality": 1}
    strict, rep2 = clean("m/t", pts, CleaningConfig(min_quality="good"))
    assert rep2.counts["bad_quality"] == 2 and len(strict) == 4


def test_unit_normalisation() -> None:
    out, rep = clean("m/t", [Point("m/t", T0, 212.0)], CleaningConfig(unit_from="degF", unit_to="degC"))
    assert out[0].value == pytest.approx(100.0) and rep.counts["unit_converted"] == 1
    with pytest.raises((UnitError, ValidationError)):
        CleaningConfig(unit_from="degF", unit_to="metre")
    with pytest.raises(ValidationError):
        CleaningConfig(interpolate="linear")
    with pytest.raises(ValidationError):
        CleaningConfig(bogus=1)  # type: ignore[call-arg]


def test_find_gaps_edges() -> None:
    assert find_gaps([0, 5 * US, 10 * US], 5) == []  # exactly the threshold is not a gap
    assert find_gaps([0, 5 * US + 1], 5) == [Period(0, 5 * US + 1)]
    assert find_gaps([], 5) == []


async def test_raw_and_clean_both_queryable(duck: TimeSeriesStore) -> None:
    await duck.write("t1", signal())
    cfg = CleaningConfig(**CFG, interpolate="linear", interpolate_period_s=1)  # type: ignore[arg-type]
    rep = await clean_range(duck, "t1", "m/t", T0, T0 + 600 * US, cfg=cfg)
    raw = await duck.raw("t1", "m/t", T0, T0 + 600 * US)
    cleaned = await duck.raw("t1", "m/t", T0, T0 + 600 * US, series="clean")
    assert len(raw) == len(signal()) and len(cleaned) == 600 == rep.output_count
    assert raw[100].value > 60 and cleaned[100].value < 53
    # cleaning again with another config replaces the clean series, never the raw one
    await clean_range(duck, "t1", "m/t", T0, T0 + 600 * US, cfg=CleaningConfig(low=45, high=55))
    again = await duck.raw("t1", "m/t", T0, T0 + 600 * US, series="clean")
    assert len(again) == len(signal()) - 3
    assert len(await duck.raw("t1", "m/t", T0, T0 + 600 * US)) == len(signal())
