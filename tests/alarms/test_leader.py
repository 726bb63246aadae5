"""One alarm engine for two full ``gongyun serve`` runtimes sharing PostgreSQL and NATS JetStream.

Both ingest and answer queries; the elected one runs the engine and gets the other's points over
the bus; acknowledgements stick; the engine moves when its process stops or loses its lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from gongyun.alarms import feed
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.leader import libpq_url
from gongyun.alarms.models import AlarmEventRow, AlarmStateRow
from gongyun.alarms.rules import RateRule, ThresholdRule
from gongyun.alarms.states import State
from gongyun.api.app import create_app
from gongyun.errors import ServiceUnavailable
from gongyun.platform import Platform, prepare_database, start_platform
from gongyun.platform.data import TelemetryService
from gongyun.telemetry.store import Point
from tests.api.test_sse_live import Tenant, _now, ingest, make_tenant
from tests.apphelp import admin_headers, make_settings
from tests.services import NATS_URL, fresh_alarm_streams, require_service, scratch_postgres_database

S = 1_000_000
T0 = 1_767_225_600 * S
LONG = {"wait_s": 25}


async def until(check: Callable[[], bool], timeout: float = 45.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


@dataclass
class Two:
    """Two full runtimes (``a`` started first, so it leads at first) and their in-process clients."""

    url: str
    rts: list[Platform]
    clients: list[httpx.AsyncClient]
    closed: set[int] = field(default_factory=set)

    def svc(self, i: int) -> TelemetryService:
        return self.rts[i].running_telemetry()

    def leaders(self) -> list[int]:
        """Which runtimes run an alarm engine now."""
        out = []
        for i in range(2):
            host = self.svc(i).host if i not in self.closed else None
            if host is not None and host.local is not None:
                out.append(i)
        return out

    async def close(self, i: int) -> None:
        if i not in self.closed:
            self.closed.add(i)
            await self.clients[i].aclose()
            await self.rts[i].close()


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[Two]:
    require_service("nats")
    await fresh_alarm_streams()
    with scratch_postgres_database() as url:
        common = {"bus_url": NATS_URL, "profile": "server"}
        settings = [make_settings(tmp_path / n, url, **common) for n in ("a", "b")]
        await prepare_database(settings[0])
        t = Two(url, [], [])
        try:
            for st in settings:
                rt = await start_platform(st)  # full platforms: nothing started with services=False
                t.rts.append(rt)
                app = create_app(rt.settings, platform=rt)
                t.clients.append(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30
                    )
                )
            yield t
        finally:
            for i in range(len(t.rts)):
                await t.close(i)


async def _rule(c: httpx.AsyncClient, t: Tenant, name: str, tag: str, limit: float) -> str:
    r = await c.post(
        "/api/v1/alarms/rules",
        json={"kind": "threshold", "name": name, "tag": tag, "limit": limit},
        headers=t.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _saved(url: str, rule_id: str) -> tuple[str, int]:
    """The state row of an alarm and its number of history rows, straight from PostgreSQL."""
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn:
        cur = await conn.execute(
            f"SELECT state FROM {AlarmStateRow.__tablename__} WHERE rule_id = %s", (rule_id,)
        )
        row = await cur.fetchone()
        cur = await conn.execute(
            f"SELECT count(*) FROM {AlarmEventRow.__tablename__} WHERE rule_id = %s", (rule_id,)
        )
        count = await cur.fetchone()
    assert row is not None and count is not None
    return str(row[0]), int(count[0])


async def _setup(two: Two) -> tuple[Tenant, str, str, AlarmEngine]:
    """A tenant with two rules (made through the follower); the leader's engine has loaded them."""
    assert two.leaders() == [0]
    b = two.clients[1]
    t = await make_tenant(b, await admin_headers(b), "plant")
    hot = await _rule(b, t, "hot", "pump1/temp", 90)
    fast = await _rule(b, t, "flowing", "pump1/flow", 5)
    engine = two.svc(0).alarms
    await until(lambda: {a["rule_id"] for a in engine.alarms(t.id)} == {hot, fast})
    tags = two.svc(1).tags
    assert tags is not None
    await until(lambda: tags.get(t.id) == {"pump1/temp", "pump1/flow"})
    return t, hot, fast, engine


async def test_one_engine_fed_by_the_follower_and_acks_stick(two: Two) -> None:
    t, hot, fast, engine = await _setup(two)
    follower = two.svc(1)
    with pytest.raises(ServiceUnavailable):
        follower.alarms  # noqa: B018 (no engine in the follower)
    assert follower.commands is None and follower.engine.alarms(t.id) == []
    assert follower.engine is not engine and two.svc(0).commands is not None

    # points stored by the follower fire the alarm in the leader
    now = _now()
    await ingest(two.clients[1], t, [("pump1/temp", 95.0, now), ("pump1/flow", 1.0, now)])
    await until(lambda: engine.state(t.id, hot) is State.unack_active)
    assert follower.feed is not None and follower.feed.published == 2 and follower.feed.messages == 1
    assert two.svc(0).ingestor.stats.stored_points == 0  # nothing went through the leader's ingest

    # an ack sent to the follower reaches the engine and sticks
    r = await two.clients[1].post(f"/api/v1/alarms/{hot}/ack", params=LONG, headers=t.headers)
    assert r.status_code == 200 and r.json()["state"] == "ack_active", r.text
    # several saves and ticks of the engine later (another alarm toggling), it is still acknowledged
    for k in range(1, 7):  # through both processes in turn
        value, expect = (9.0, State.unack_active) if k % 2 else (1.0, State.unack_rtn)
        await ingest(two.clients[k % 2], t, [("pump1/flow", value, now + timedelta(seconds=k))])
        await until(lambda: engine.state(t.id, fast) is expect)  # noqa: B023
    await engine.flush()
    deadline = asyncio.get_running_loop().time() + 30
    while await _saved(two.url, fast) != ("unack_rtn", 6):  # the saves land (slowly under load)
        assert asyncio.get_running_loop().time() < deadline, await _saved(two.url, fast)
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.5)  # a couple of ticks more: nothing overwrites the ack
    assert await _saved(two.url, hot) == ("ack_active", 2)
    assert await _saved(two.url, fast) == ("unack_rtn", 6)
    current = (await two.clients[1].get("/api/v1/alarms", headers=t.headers)).json()
    assert {a["rule_id"]: a["state"] for a in current} == {hot: "ack_active", fast: "unack_rtn"}

    # an ack sent to the leader's own API after the alarm came back
    await ingest(two.clients[1], t, [("pump1/temp", 50.0, now + timedelta(seconds=10))])
    await ingest(two.clients[1], t, [("pump1/temp", 96.0, now + timedelta(seconds=11))])
    await until(lambda: engine.state(t.id, hot) is State.unack_active)
    r = await two.clients[0].post(f"/api/v1/alarms/{hot}/ack", params=LONG, headers=t.headers)
    assert r.status_code == 200 and r.json()["state"] == "ack_active", r.text

    # a replayed points message (older samples, redelivered) changes nothing
    assert two.rts[1].bus is not None
    skipped = engine.skipped
    replay = [Point("pump1/temp", int((now + timedelta(seconds=10)).timestamp() * S), 50.0)]
    for _ in range(2):
        await two.rts[1].bus.publish(f"{feed.SUBJECT}.{t.id}", feed.encode(replay))
    await until(lambda: engine.skipped == skipped + 2)
    await engine.flush()
    assert engine.state(t.id, hot) is State.ack_active
    assert await _saved(two.url, hot) == ("ack_active", 5)


async def test_the_other_process_takes_over_with_the_state(two: Two) -> None:
    t, hot, _, engine = await _setup(two)
    now = _now()
    await ingest(two.clients[1], t, [("pump1/temp", 95.0, now)])
    await until(lambda: engine.state(t.id, hot) is State.unack_active)
    r = await two.clients[1].post(f"/api/v1/alarms/{hot}/ack", params=LONG, headers=t.headers)
    assert r.status_code == 200 and r.json()["state"] == "ack_active", r.text

    loop = asyncio.get_running_loop()
    await two.close(0)
    gone = loop.time()
    survivor = two.svc(1)
    assert survivor.feed is not None and survivor.host is not None
    sent = survivor.feed.messages
    # no leader for a moment: the points wait in the stream for the next one
    await ingest(two.clients[1], t, [("pump1/temp", 10.0, now + timedelta(seconds=1))])
    if survivor.host.local is None:
        feed = survivor.feed
        await until(lambda: feed.messages == sent + 1)  # published by the feed's sender task
    await until(lambda: two.leaders() == [1], timeout=10)
    assert loop.time() - gone < 6
    new = survivor.alarms
    assert new is not engine
    await until(lambda: new.state(t.id, hot) is State.normal)  # ack_active, then cleared
    await new.flush()
    assert await _saved(two.url, hot) == ("normal", 3)
    r = await two.clients[1].post(f"/api/v1/alarms/{hot}/ack", params=LONG, headers=t.headers)
    assert r.status_code == 409 and r.json()["code"] == "alarm_transition_invalid"


async def test_a_leader_that_loses_its_lock_connection_stops_its_engine(two: Two) -> None:
    first = two.svc(0).host
    assert first is not None and first.election is not None
    pid = first.election.backend_pid
    assert pid is not None
    async with await psycopg.AsyncConnection.connect(libpq_url(two.url), autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await until(lambda: first.election is not None and first.election.lost == 1, timeout=30)
    await until(lambda: len(two.leaders()) == 1, timeout=30)  # one of the two runs it again
    await asyncio.sleep(2.5)
    assert len(two.leaders()) == 1


async def test_a_replayed_sample_counts_once() -> None:
    eng = AlarmEngine(None)
    eng.put_rule("t1", "delay", ThresholdRule(name="slow", tag="p/t", limit=80, on_delay_s=2))
    eng.put_rule("t1", "rate", RateRule(name="fast", tag="p/r", max_rate_per_s=2))
    first = [
        Point("p/t", T0, 85.0),
        Point("p/t", T0 + S, 86.0),
        Point("p/r", T0, 0.0),
        Point("p/r", T0 + S, 1.5),
    ]
    for _ in range(3):  # delivered three times
        await eng.on_points("t1", first)
    assert eng.skipped == 8
    await eng.on_points("t1", [Point("p/t", T0 + S + S // 2, 86.0)])
    assert eng.state("t1", "delay") is State.normal  # the on-delay counts from T0, not more
    await eng.on_points("t1", [Point("p/t", T0 + 2 * S, 86.0), Point("p/r", T0 + 2 * S, 4.0)])
    assert eng.state("t1", "delay") is State.unack_active
    assert eng.state("t1", "rate") is State.unack_active  # 2.5/s from the sample before, not 2.0/s from T0


async def test_rules_seeded_by_a_follower_reach_the_leader(two: Two) -> None:
    # what `gongyun demo` does when another process leads the engine
    from gongyun.alarms import repo
    from gongyun.platform.demo import load_alarm_rules

    assert two.leaders() == [0]
    b = two.clients[1]
    t = await make_tenant(b, await admin_headers(b), "seeded")
    async with two.rts[1].db.session() as s:  # written straight to the database, like the seed
        row = await repo.create_rule(s, t.id, ThresholdRule(name="hot", tag="pump1/temp", limit=80))
    with pytest.raises(ServiceUnavailable):
        _ = two.svc(1).alarms
    await load_alarm_rules(two.rts[1], t.id)
    engine = two.svc(0).alarms
    await until(lambda: {a["rule_id"] for a in engine.alarms(t.id)} == {row.id})
