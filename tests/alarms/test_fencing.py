"""Fencing of the elected alarm engine (PostgreSQL + NATS, two full runtimes).

A deposed leader that has not noticed yet writes nothing once its successor started a term;
a save that fails while the database is unavailable is retried (flush raises meanwhile, so the
points message is not acknowledged) and lands; a leader that cannot save for too long steps down;
a lock connection that is only slow pauses the engine instead of throwing its state away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy.engine import make_url

from gongyun.alarms.leader import LeaderLock, libpq_url
from gongyun.alarms.models import AlarmStateRow
from gongyun.alarms.states import State
from gongyun.db import upgrade
from gongyun.errors import ServiceUnavailable
from gongyun.telemetry.store import Point
from tests.alarms.test_leader import LONG, Two, _saved, _setup, two, until
from tests.api.test_sse_live import _now, ingest
from tests.services import free_port, scratch_postgres_database

__all__ = ["two"]  # the fixture, imported for these tests
S = 1_000_000


async def _term(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn:
        row = await (await conn.execute("SELECT term FROM alarm_leader WHERE id = 1")).fetchone()
    assert row is not None
    return int(row[0])


async def _succeeds(flush: Callable[[], Awaitable[None]], timeout: float = 30.0) -> None:
    """Call ``flush`` until it does not raise."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            await flush()
            return
        except ServiceUnavailable:
            assert loop.time() < end, "flush kept failing"
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _locked(url: str, table: str) -> AsyncIterator[None]:
    """Hold ``LOCK TABLE table IN ACCESS EXCLUSIVE MODE`` from another connection."""
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn:
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await conn.commit()


async def test_a_deposed_leader_writes_nothing_once_the_next_term_started(two: Two) -> None:
    t, hot, _, old = await _setup(two)
    first = two.svc(0).host
    assert first is not None and first.election is not None
    now = _now()
    await ingest(two.clients[1], t, [("pump1/temp", 95.0, now)])
    await until(lambda: old.state(t.id, hot) is State.unack_active)
    await old.flush()
    assert await _term(two.url) == first.election.term == 1

    # the leader does not check its lock any more (a stalled process): it misses the loss
    task = first.election._task
    assert task is not None
    task.cancel()
    pid = first.election.backend_pid
    async with await psycopg.AsyncConnection.connect(libpq_url(two.url), autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    second = two.svc(1).host
    assert second is not None and second.election is not None
    await until(lambda: second.local is not None, timeout=30)  # retries of the election, under load
    new = second.local
    assert new is not None and await _term(two.url) == second.election.term == 2
    assert new.state(t.id, hot) is State.unack_active  # what the old leader saved before

    # the old engine's next save is refused by the term: nothing written, it steps down at once.
    # (Its own command sweep may hit the fence first and depose it before this save: either way
    # it must not write.)
    if first.local is old and old.accepting:
        later = int((now + timedelta(seconds=1)).timestamp() * S)
        await old.on_points(t.id, [Point("pump1/temp", later, 50.0)])
        if old.accepting:
            with pytest.raises(ServiceUnavailable):
                await old.flush()
    await until(lambda: not old.accepting)
    await until(lambda: first.local is None and not first.election.leader)
    assert first.election.lost == 1
    assert await _saved(two.url, hot) == ("unack_active", 1)

    # an ack applied by the new leader sticks: no late write of the old one overwrites it
    r = await two.clients[0].post(f"/api/v1/alarms/{hot}/ack", params=LONG, headers=t.headers)
    assert r.status_code == 200 and r.json()["state"] == "ack_active", r.text
    deadline = asyncio.get_running_loop().time() + 20
    while await _saved(two.url, hot) != ("ack_active", 2):  # the new leader's save (a tick or two)
        assert asyncio.get_running_loop().time() < deadline, await _saved(two.url, hot)
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.5)  # more ticks of both processes: nothing overwrites it
    assert await _saved(two.url, hot) == ("ack_active", 2)
    assert two.leaders() == [1] and await _term(two.url) == 2


async def test_a_save_failing_while_the_table_is_locked_is_retried_and_lands(two: Two) -> None:
    t, hot, fast, engine = await _setup(two)
    now = _now()
    async with _locked(two.url, AlarmStateRow.__tablename__):
        # a transition of the leader's own ingest: its save fails (lock timeout) and is retried
        await ingest(two.clients[0], t, [("pump1/temp", 95.0, now)])
        await until(lambda: engine.state(t.id, hot) is State.unack_active)
        with pytest.raises(ServiceUnavailable):
            await engine.flush()
        assert engine.save_failures >= 1
        with pytest.raises(ServiceUnavailable):  # still failing: raises at once
            await engine.flush()
        # points from the follower over the bus: not acknowledged while the save fails
        await ingest(two.clients[1], t, [("pump1/flow", 9.0, now)])
        await until(lambda: engine.state(t.id, fast) is State.unack_active)
        await asyncio.sleep(1.0)
    await _succeeds(engine.flush)
    assert await _saved(two.url, hot) == ("unack_active", 1)
    assert await _saved(two.url, fast) == ("unack_active", 1)
    assert two.leaders() == [0] and engine.accepting


async def test_a_leader_that_cannot_save_for_too_long_steps_down(two: Two) -> None:
    t, hot, _, engine = await _setup(two)
    first = two.svc(0).host
    assert first is not None and first.election is not None
    engine.save_give_up_s = 1.0
    now = _now()
    async with _locked(two.url, AlarmStateRow.__tablename__):
        await ingest(two.clients[1], t, [("pump1/temp", 95.0, now)])  # over the bus
        await until(lambda: engine.state(t.id, hot) is State.unack_active)
        await until(lambda: first.election is not None and first.election.lost == 1, timeout=15)
        assert first.local is None  # stepped down, its unsaved transition discarded
        await asyncio.sleep(1.0)
    # whoever leads now loaded the states and got the points message again
    await until(lambda: len(two.leaders()) == 1, timeout=15)
    leader = two.svc(two.leaders()[0]).alarms
    await until(lambda: leader.state(t.id, hot) is State.unack_active, timeout=20)
    await _succeeds(leader.flush)
    assert await _saved(two.url, hot) == ("unack_active", 1)
    assert await _term(two.url) >= 2


class _Proxy:
    """A TCP proxy to PostgreSQL that can stall (forward nothing) or cut every connection."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    await self.flowing.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.flowing.set()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_slow_lock_connection_pauses_the_leader_and_a_cut_one_deposes_it() -> None:
    with scratch_postgres_database() as url:
        await upgrade(url)
        target = make_url(url)
        proxy = _Proxy(target.host or "127.0.0.1", target.port or 5432)
        await proxy.start()
        calls: list[str] = []

        def record(name: str) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                calls.append(name)

            return call

        lock = LeaderLock(
            target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
            record("elected"),
            record("deposed"),
            check_s=0.6,
            retry_s=0.3,
            on_paused=record("paused"),
            on_resumed=record("resumed"),
        )
        try:
            await lock.start()
            assert lock.leader and lock.term == 1 and calls == ["elected"]
            proxy.flowing.clear()  # no answer for two checks: paused, not deposed
            await until(lambda: lock.slow == 2, timeout=5)
            assert lock.leader and calls == ["elected", "paused"]
            proxy.flowing.set()
            await until(lambda: lock.slow == 0, timeout=5)
            assert lock.leader and calls == ["elected", "paused", "resumed"] and lock.lost == 0
            proxy.cut()  # a closed connection deposes at the next check
            await until(lambda: not lock.leader, timeout=2)
            assert calls[-1] == "deposed" and lock.lost == 1
            await until(lambda: lock.leader, timeout=5)  # campaigns again: a new term
            assert lock.term == 2 and await _term(url) == 2
        finally:
            await lock.stop()
            await proxy.close()
