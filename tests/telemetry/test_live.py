"""The live publisher and hub over a real (in-process) bus: coalescing, chunking, origin, backlog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gongyun.bus import Bus, open_bus
from gongyun.telemetry.live import ORIGIN_HEADER, LiveHub, LivePublisher, PointsQueue, new_origin
from gongyun.telemetry.store.base import Point


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = open_bus("memory://")
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


async def _drain(q: PointsQueue, count: int) -> list[tuple[str, list[Point]]]:
    async with asyncio.timeout(5):
        return [await q.get() for _ in range(count)]


async def test_latest_point_per_tag_in_bounded_messages(bus: Bus) -> None:
    publisher = LivePublisher(bus, new_origin(), flush_s=3600, max_points=2000)
    await publisher.start()
    hub = LiveHub(bus, new_origin())
    await hub.start()
    q = hub.listen_points()
    try:
        many = [Point(f"d/t{i}", 10, float(i)) for i in range(5000)]
        await publisher.on_points("t1", many)
        await publisher.on_points("t1", [Point("d/t0", 20, -1.0), Point("d/t1", 5, -2.0)])  # t1 older: kept
        await publisher.on_points("t2", [Point("d/t0", 1, 7.0), Point("d/t0", 2, 8.0)])
        assert await publisher.flush() == 4  # 5000 tags in chunks of 2000, and one for t2
        assert await publisher.flush() == 0  # nothing new
        got = await _drain(q, 4)
        assert [(t, len(pts)) for t, pts in got] == [("t1", 2000), ("t1", 2000), ("t1", 1000), ("t2", 1)]
        latest = {(t, p.tag): p.value for t, pts in got for p in pts}
        assert latest[("t1", "d/t0")] == -1.0 and latest[("t1", "d/t1")] == 1.0
        assert latest[("t2", "d/t0")] == 8.0 and len(latest) == 5001
        assert publisher.point_messages == 4
    finally:
        await hub.stop()
        await publisher.stop()


async def test_hub_skips_its_own_origin_the_backlog_and_bad_messages(bus: Bus) -> None:
    origin = new_origin()
    publisher = LivePublisher(bus, origin, flush_s=3600)
    await publisher.start()
    await publisher.on_points("t1", [Point("d/x", 1, 1.0)])
    await publisher.flush()
    other = LivePublisher(bus, new_origin(), flush_s=3600)
    await other.start()
    await other.on_points("t1", [Point("d/old", 1, 1.0)])
    await other.flush()  # published before the hubs start: backlog nobody sees

    own, foreign = LiveHub(bus, origin), LiveHub(bus, new_origin())
    await own.start()
    await foreign.start()
    own_q, foreign_q, alarms_q = own.listen_points(), foreign.listen_points(), foreign.listen_alarms()
    try:
        await bus.publish("live.points.t1", b"not json", headers={ORIGIN_HEADER: "x"})
        await bus.publish("live.alarms.t2", b'{"tenant": "t1"}', headers={ORIGIN_HEADER: "x"})  # wrong tenant
        await bus.publish(
            "live.alarms.t1", b'{"tenant": "t1", "state": "normal"}', headers={ORIGIN_HEADER: "x"}
        )
        await other.on_points("t1", [Point("d/new", 2, 2.0)])
        await other.flush()
        await publisher.on_points("t1", [Point("d/mine", 3, 3.0)])
        await publisher.flush()
        await other.on_points("t1", [Point("d/last", 4, 4.0)])
        await other.flush()
        async with asyncio.timeout(5):
            assert await alarms_q.get() == {"tenant": "t1", "state": "normal"}
        [(tenant, points)] = await _drain(foreign_q, 1)
        assert (tenant, [p.tag for p in points]) == ("t1", ["d/new"])
        [(_, mine)] = await _drain(foreign_q, 1)
        assert [p.tag for p in mine] == ["d/mine"]
        # the own hub gets the other process's points only (stream order: d/mine came in between)
        seen = await _drain(own_q, 2)
        assert [[p.tag for p in pts] for _, pts in seen] == [["d/new"], ["d/last"]]
        assert foreign.rejected == 2 and alarms_q.empty()
    finally:
        await own.stop()
        await foreign.stop()
        await other.stop()
        await publisher.stop()


async def test_no_bus_means_local_delivery_only() -> None:
    hub = LiveHub(None, new_origin())
    await hub.start()
    assert hub.subscription is None
    q = hub.listen_alarms()
    assert hub.alarms == {q}
    hub.unlisten_alarms(q)
    assert not hub.alarms
