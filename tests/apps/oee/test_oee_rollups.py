"""Long ranges come from rollups: the same OEE from 1 h / 1 min rollups (refined raw only where a
bucket is mixed) as from the raw points, on a real store (DuckDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from gongyun.apps.oee.domain.machine import Counter, MachineSpec, machine_periods
from gongyun.apps.oee.domain.rollup import ReadStats, counter_from_rollups, timeline_from_rollups
from gongyun.apps.oee.domain.states import MachineState, StateMapping, derive_timeline
from gongyun.apps.oee.storeio import StoreReader
from gongyun.telemetry.store import Point, TimeSeriesStore, open_store
from tests.apps.oee import worked

US = 1_000_000
FLAG = StateMapping.parse({"mode": "running_flag", "tag": "packer/running"})


@pytest.fixture
async def store() -> AsyncIterator[TimeSeriesStore]:
    s = open_store("duckdb://:memory:")
    await s.open()
    ts, running, good, scrap = worked.samples()
    for tag, vals in (("packer/running", running), ("packer/good", good), ("packer/scrap", scrap)):
        await s.write("t1", [Point(tag, int(t), float(v)) for t, v in zip(ts, vals, strict=True)])
    await s.refresh_rollups()
    try:
        yield s
    finally:
        await s.close()


async def test_rollups_give_the_worked_example(store: TimeSeriesStore) -> None:
    reader = StoreReader(store, "t1")
    insts = worked.calendar().instances(worked.T0, worked.T1)
    edges = [x for i in insts for w in i.busy_windows() for x in w]
    stats = ReadStats()
    timeline = await timeline_from_rollups(reader, FLAG, worked.T0, worked.T1, stats)
    good = await counter_from_rollups(reader, "packer/good", worked.T0, worked.T1, edges, stats)
    scrap = await counter_from_rollups(reader, "packer/scrap", worked.T0, worked.T1, edges, stats)
    [r] = machine_periods(MachineSpec("packer", worked.IDEAL_S), timeline, good, scrap, insts)
    for name, exact in worked.EXPECTED.items():
        assert getattr(r.kpi, name) == pytest.approx(exact, rel=1e-4), name
    # 8 hours: the pure hour (06:00-07:00) came from one rollup row; stops and breaks start on the
    # minute, so no minute was mixed and nothing was read raw
    assert stats.hour_rows > 0 and stats.raw_points == 0
    ts, running, _, _ = worked.samples()
    raw = derive_timeline(FLAG, ts, running)
    assert np.array_equal(
        raw.durations([(worked.T0, worked.T1)]), timeline.durations([(worked.T0, worked.T1)])
    )


async def test_a_short_stop_is_exact_in_duration_and_read_raw_only_for_state_codes(
    store: TimeSeriesStore,
) -> None:
    t = worked.T0 + 30 * 60 * US + 17 * US  # 06:30:17 for 5 s
    await store.write("t1", [Point("packer/running", t + i * US, 0.0) for i in range(5)])
    await store.refresh_rollups()
    hour = [(worked.T0, worked.T0 + 3600 * US)]
    stats = ReadStats()
    flag = await timeline_from_rollups(StoreReader(store, "t1"), FLAG, worked.T0, worked.T1, stats)
    assert stats.raw_reads == 0 and stats.minute_rows == 0  # the flag's hour average is exact
    d = flag.durations(hour)
    assert d[MachineState.down_unplanned] == 5 and d[MachineState.running] == 3600 - 5
    codes = StateMapping.parse(
        {"mode": "state_tag", "tag": "packer/running", "codes": {"0": "down_unplanned", "1": "running"}}
    )
    stats = ReadStats()
    exact = await timeline_from_rollups(StoreReader(store, "t1"), codes, worked.T0, worked.T1, stats)
    assert stats.raw_reads > 0 and stats.raw_points < 20 * 60  # only the minutes that are mixed
    s, e, st = exact.clip(*hour[0])
    stops = [(int(a), int(b)) for a, b, x in zip(s, e, st, strict=True) if x == MachineState.down_unplanned]
    assert stops == [(t, t + 5 * US)]


async def test_a_gap_in_the_data_is_unknown_from_rollups(store: TimeSeriesStore) -> None:
    await store.delete("t1", "packer/running", worked.T0 + 3600 * US, worked.T0 + 3600 * US + 150 * US)
    await store.refresh_rollups()
    timeline = await timeline_from_rollups(StoreReader(store, "t1"), FLAG, worked.T0, worked.T1)
    d = timeline.durations([(worked.T0, worked.T1)])
    assert d[MachineState.unknown] == 150
    assert d[MachineState.running] == 373 * 60 - 150


async def test_no_data_is_all_unknown(store: TimeSeriesStore) -> None:
    reader = StoreReader(store, "t1")
    other = StateMapping.parse({"mode": "running_flag", "tag": "nothing/here"})
    timeline = await timeline_from_rollups(reader, other, worked.T0, worked.T1)
    assert len(timeline) == 0
    assert timeline.durations([(worked.T0, worked.T1)])[MachineState.unknown] == 8 * 3600
    c = await counter_from_rollups(reader, "nothing/here", worked.T0, worked.T1)
    assert c.total(worked.T0, worked.T1) == 0 and isinstance(c, Counter)
