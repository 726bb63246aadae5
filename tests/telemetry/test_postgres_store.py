"""PostgreSQL specifics: day partitions, dropping expired partitions, two writers at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gongyun.telemetry.store import Point, RetentionPolicy, open_store
from gongyun.telemetry.store.base import DAY_US, HOUR_US, to_us
from gongyun.telemetry.store.postgres import plain_url
from tests.services import scratch_postgres_database

pytestmark = pytest.mark.postgres
T0 = to_us(datetime(2026, 1, 5, tzinfo=UTC))


def partitions(url: str) -> list[str]:
    with psycopg.connect(plain_url(url)) as c:
        rows = c.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ts_raw_points' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


async def test_partitions_by_day_and_expired_ones_are_dropped() -> None:
    with scratch_postgres_database() as url:
        store = open_store(url)
        await store.open()
        try:
            await store.write("t1", [Point("d/a", T0 + h * HOUR_US, float(h)) for h in range(5 * 24)])
            assert len(partitions(url)) == 5
            await store.set_retention(RetentionPolicy("t1", timedelta(days=2), timedelta(days=30)))
            out = await store.apply_retention(T0 + 5 * DAY_US)
            assert out["partitions_dropped"] == 3 and len(partitions(url)) == 2
            assert len(await store.raw("t1", "d/a", 0, T0 + 10 * DAY_US)) == 48
            # rollups outlive the dropped raw partitions
            hourly = await store.downsample("t1", "d/a", T0, T0 + 5 * DAY_US, 5, source="1h")
            assert [b.count for b in hourly.buckets] == [24] * 5
            # writing into a dropped day recreates its partition
            await store.write("t1", [Point("d/a", T0 + 1, 1.0)])
            assert len(partitions(url)) == 3
        finally:
            await store.close()


async def test_two_writers_share_one_database() -> None:
    with scratch_postgres_database() as url:
        a, b = open_store(url), open_store(url)
        await a.open()
        await b.open()
        try:
            pts = [Point(f"d/t{i % 7}", T0 + i * 1000, float(i)) for i in range(3000)]
            await asyncio.gather(a.write("t1", pts[:2000]), b.write("t1", pts[1000:]))
            total = 0
            for k in range(7):
                total += len(await a.raw("t1", f"d/t{k}", 0, T0 + DAY_US))
            assert total == 3000
            assert sorted(await b.tags("t1")) == [f"d/t{k}" for k in range(7)]
        finally:
            await a.close()
            await b.close()


async def test_the_store_reconnects_after_its_connections_were_cut() -> None:
    """A PostgreSQL restart cuts the store's sessions: the next statements reconnect (no process restart)."""
    with scratch_postgres_database() as url:
        store = open_store(url)
        await store.open()
        try:
            await store.write("t1", [Point("d/a", T0, 1.0)])
            with psycopg.connect(plain_url(url), autocommit=True) as c:
                cut = c.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert cut is not None and cut[0] == 2  # the writing and the reading connection
            written, read = None, None
            for _ in range(3):  # the statement that meets the cut connection fails; the next reconnects
                try:
                    written = await store.write("t1", [Point("d/a", T0 + 1, 2.0)])
                    break
                except psycopg.OperationalError:
                    continue
            for _ in range(3):
                try:
                    read = await store.raw("t1", "d/a", 0, T0 + DAY_US)
                    break
                except psycopg.OperationalError:
                    continue
            assert written == 1
            assert read is not None and [p.value for p in read] == [1.0, 2.0]
        finally:
            await store.close()
