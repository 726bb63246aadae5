"""Ingest: per-sample validation with reasons, idempotent replay, batching, backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.telemetry.catalog import DataType, StaticCatalog, TagSpec
from gongyun.telemetry.ingest import IngestConfig, Ingestor, Reason
from gongyun.telemetry.store import Point, TimeSeriesStore
from gongyun.telemetry.store.base import DAY_US, to_us

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def catalog() -> StaticCatalog:
    return StaticCatalog(
        {
            "t1": [
                TagSpec("pump/temp", DataType.float, "degC", low=-20, high=150),
                TagSpec("pump/run", DataType.bool),
                TagSpec("pump/count", DataType.int),
                TagSpec("pump/temp_f", DataType.float, "degC", low=0, high=100, source_unit="degF"),
            ]
        }
    )


def s(tag: str, value: Any, ts: datetime = NOW, quality: Quality = Quality.good) -> Sample:
    return Sample(TagRef.parse(tag), value, ts, quality)


@pytest.fixture
async def ingestor(duck: TimeSeriesStore) -> Any:
    ing = Ingestor(duck, catalog(), IngestConfig(max_batch=50), clock=NOW.timestamp)
    await ing.start()
    yield ing
    await ing.stop()


async def test_bad_samples_rejected_with_reasons_rest_stored(
    ingestor: Ingestor, duck: TimeSeriesStore
) -> None:
    batch = [
        s("pump/temp", 20.5),
        s("pump/temp", float("nan"), NOW + timedelta(seconds=1)),
        s("pump/temp", float("inf"), NOW + timedelta(seconds=2)),
        s("pump/temp", -float("inf"), NOW + timedelta(seconds=3)),
        s("pump/temp", 500.0, NOW + timedelta(seconds=4)),
        s("pump/temp", "hot", NOW + timedelta(seconds=5)),
        s("pump/temp", None, NOW + timedelta(seconds=6)),
        s("pump/temp", True, NOW + timedelta(seconds=7)),
        s("pump/temp", 21, NOW + timedelta(seconds=8), Quality.uncertain),
        s("pump/temp", 22.0, NOW + timedelta(days=1)),
        s("pump/temp", 22.0, NOW - timedelta(days=10 * 366)),
        s("pump/temp", 22.0, datetime(2026, 3, 1, 11, 0)),  # naive
        s("nope/x", 1.0),
        s("pump/run", True),
        s("pump/run", 2, NOW + timedelta(seconds=1)),
        s("pump/count", 3.0),
        s("pump/count", 3.5, NOW + timedelta(seconds=1)),
        s("pump/temp_f", 212.0),  # 100 degC: stored converted
        s("pump/temp_f", 300.0, NOW + timedelta(seconds=1)),  # 148.9 degC: out of range
    ]
    res = await ingestor.ingest("t1", batch)
    reasons = [(r.tag, r.reason) for r in res.rejected]
    assert reasons == [
        ("pump/temp", Reason.nan),
        ("pump/temp", Reason.infinite),
        ("pump/temp", Reason.infinite),
        ("pump/temp", Reason.out_of_range),
        ("pump/temp", Reason.wrong_type),
        ("pump/temp", Reason.missing_value),
        ("pump/temp", Reason.wrong_type),
        ("pump/temp", Reason.future),
        ("pump/temp", Reason.past),
        ("pump/temp", Reason.naive_timestamp),
        ("nope/x", Reason.unknown_tag),
        ("pump/run", Reason.wrong_type),
        ("pump/count", Reason.wrong_type),
        ("pump/temp_f", Reason.out_of_range),
    ]
    assert res.accepted == 5
    t = to_us(NOW)
    temps = await duck.raw("t1", "pump/temp", t - DAY_US, t + DAY_US)
    assert [(p.value, p.quality) for p in temps] == [(20.5, 0), (21.0, 1)]
    f = await duck.raw("t1", "pump/temp_f", t - DAY_US, t + DAY_US)
    assert f[0].value == pytest.approx(100.0)
    stats = ingestor.stats.for_tenant("t1")
    assert stats["pump/temp"]["accepted"] == 2
    assert stats["pump/temp"]["rejected"] == {
        "nan": 1,
        "infinite": 2,
        "out_of_range": 1,
        "wrong_type": 2,
        "missing_value": 1,
        "timestamp_in_future": 1,
        "timestamp_too_old": 1,
        "timestamp_without_zone": 1,
    }
    assert stats["nope/x"]["rejected"] == {"unknown_tag": 1}
    assert res.to_dict()["rejected"][0]["reason"] == "nan"


async def test_oversize_batch_rejects_the_excess(ingestor: Ingestor, duck: TimeSeriesStore) -> None:
    batch = [s("pump/temp", float(i), NOW - timedelta(seconds=i)) for i in range(60)]
    res = await ingestor.ingest("t1", batch)
    assert res.accepted == 50
    assert [r.reason for r in res.rejected] == [Reason.oversize_batch] * 10
    t = to_us(NOW)
    assert len(await duck.raw("t1", "pump/temp", t - DAY_US, t + DAY_US)) == 50


async def test_replay_is_idempotent(ingestor: Ingestor, duck: TimeSeriesStore) -> None:
    batch = [s("pump/temp", float(i), NOW - timedelta(seconds=i)) for i in range(30)]
    await ingestor.ingest("t1", batch)
    await ingestor.ingest("t1", batch)
    t = to_us(NOW)
    assert len(await duck.raw("t1", "pump/temp", t - DAY_US, t + DAY_US)) == 30


async def test_tenant_sees_only_its_tags(ingestor: Ingestor) -> None:
    res = await ingestor.ingest("t2", [s("pump/temp", 1.0)])
    assert res.accepted == 0 and res.rejected[0].reason is Reason.unknown_tag


async def test_hooks_see_stored_points_and_batches_merge(duck: TimeSeriesStore) -> None:
    seen: list[tuple[str, int]] = []

    async def hook(tenant: str, points: list[Point]) -> None:
        seen.append((tenant, len(points)))

    ing = Ingestor(duck, catalog(), clock=NOW.timestamp)
    ing.hooks.append(hook)
    await ing.start()
    subs = [await ing.submit("t1", [s("pump/temp", 1.0, NOW - timedelta(seconds=i))]) for i in range(20)]
    await asyncio.gather(*(x.stored for x in subs))
    await ing.stop()
    assert sum(n for _, n in seen) == 20
    assert len(seen) < 20  # queued chunks were group-committed
    assert ing.stats.stored_points == 20


class GatedStore:
    """A real store whose writes wait for a gate (to make the store slow on purpose)."""

    def __init__(self, inner: TimeSeriesStore) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.writes = 0

    async def write(self, tenant: str, points: Sequence[Point], series: str = "raw") -> int:
        await self.gate.wait()
        self.writes += 1
        return await self.inner.write(tenant, points)


async def test_backpressure_blocks_producers_instead_of_buffering(duck: TimeSeriesStore) -> None:
    gated = GatedStore(duck)
    ing = Ingestor(gated, catalog(), IngestConfig(queue_chunks=2, linger_s=0), clock=NOW.timestamp)  # type: ignore[arg-type]
    await ing.start()
    done: list[int] = []

    async def produce(i: int) -> None:
        await ing.submit("t1", [s("pump/temp", float(i), NOW - timedelta(seconds=i))])
        done.append(i)

    tasks = [asyncio.create_task(produce(i)) for i in range(8)]
    await asyncio.sleep(0.2)
    # the (blocked) writer holds what it drained, two chunks fill the queue: the rest must wait
    assert ing.queued == 2 and 3 <= len(done) <= 4
    assert sum(not t.done() for t in tasks) == 8 - len(done)
    gated.gate.set()
    await asyncio.gather(*tasks)
    await ing.stop()
    t = to_us(NOW)
    assert len(await duck.raw("t1", "pump/temp", t - DAY_US, t + DAY_US)) == 8


async def test_write_failure_reaches_the_waiter(tmp_path: Any) -> None:
    from gongyun.errors import ServiceUnavailable
    from gongyun.telemetry.store import open_store

    store = open_store(f"duckdb://{tmp_path / 'x.duckdb'}")
    await store.open()
    ing = Ingestor(store, catalog(), clock=NOW.timestamp)
    await ing.start()
    await store.close()  # the store goes away under the writer
    with pytest.raises(ServiceUnavailable):
        await ing.ingest("t1", [s("pump/temp", 1.0)])
    await ing.stop()
    assert ing.stats.write_errors == 1


async def test_submit_before_start_is_refused(duck: TimeSeriesStore) -> None:
    from gongyun.errors import ServiceUnavailable

    ing = Ingestor(duck, catalog())
    with pytest.raises(ServiceUnavailable):
        await ing.submit("t1", [s("pump/temp", 1.0)])
