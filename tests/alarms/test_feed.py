"""The alarm feed never holds ingest up: a failing or hanging bus, the backlog, the queue bound, stop.

Real buses only: the in-process bus (a deleted stream, a closed connection) and NATS JetStream
reached through a loopback relay that stops carrying bytes (a hung link with the sockets open).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gongyun.alarms import feed, repo
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.feed import AlarmFeed, ReferencedTags
from gongyun.alarms.rules import ThresholdRule
from gongyun.bus import Bus, Message, Subscription
from gongyun.bus.memory import MemoryBus
from gongyun.bus.nats import NatsBus
from gongyun.db import Database, upgrade
from gongyun.telemetry.store import Point
from tests.services import NATS_URL, require_service

S = 1_000_000
T0 = 1_767_225_600 * S
# a hook that waited for the bus's retry (retry_min_s = 0.05 below) would miss 25 ms; a hook
# that does not wait takes well under 1 ms (25 ms leaves room for a pause on a busy machine)
HOOK_BUDGET_S = 0.025
# through the relay a hook that waited on the bus would take its request timeout (0.5 s); 50 ms
# leaves room for a busy 2-core machine (10 ms was once missed by 0.4 ms in a full test run)
RELAYED_HOOK_BUDGET_S = 0.050
WATCHED, OTHER = "p/t", "p/other"


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
def tenant() -> str:
    return f"feed{uuid.uuid4().hex[:12]}"  # its own subject on the shared NATS server


@pytest.fixture
async def tags(tmp_path: Path, tenant: str) -> AsyncIterator[ReferencedTags]:
    """The tags an enabled rule of ``tenant`` reads (``WATCHED``), read from a real database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}"
    await upgrade(url)
    db = Database(url)
    async with db.session() as s:
        await repo.create_rule(s, tenant, ThresholdRule(name="hot", tag=WATCHED, limit=80))
    found = ReferencedTags(db, None)
    await found.refresh()
    assert found.get(tenant) == {WATCHED}
    yield found
    await db.dispose()


def batch(k: int, n: int = 50) -> list[Point]:
    """A stored batch: ``n`` watched points with values k*n.. and as many of a tag no rule reads."""
    watched = [Point(WATCHED, T0 + (k * n + i) * S, float(k * n + i)) for i in range(n)]
    return watched + [Point(OTHER, T0 + i * S, -1.0) for i in range(n)]


async def timed_hook(hook: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await hook()
    return time.perf_counter() - start


class Received:
    """Every alarm point the bus stored for one tenant, read by a durable of its own."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.tags: set[str] = set()
        self.sub: Subscription | None = None

    async def start(self, bus: Bus, tenant: str) -> None:
        async def handle(msg: Message) -> None:
            points = feed.decode(msg.data)
            self.values += [p.value for p in points]
            self.tags |= {p.tag for p in points}
            await msg.ack()

        durable = f"feedtest-{uuid.uuid4().hex[:10]}"
        self.sub = await bus.subscribe(
            f"{feed.SUBJECT}.{tenant}", durable=durable, handler=handle, forget_after_s=30
        )

    async def close(self) -> None:
        if self.sub is not None:
            await self.sub.close()


def sender_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "alarm-feed-sender" and not t.done()]


# -- the in-process bus -------------------------------------------------------------------------
@pytest.fixture
async def memory_bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus(f"feed-{uuid.uuid4().hex[:8]}")
    await bus.connect()
    await feed.ensure_stream(bus)
    yield bus
    await bus.close()


@pytest.mark.parametrize("failure", ["stream_deleted", "bus_closed"])
async def test_a_failing_bus_never_holds_the_hook_and_the_backlog_follows_on_its_own(
    memory_bus: MemoryBus, tags: ReferencedTags, tenant: str, failure: str
) -> None:
    fed = AlarmFeed(lambda: None, tags, memory_bus, retry_min_s=0.05, retry_max_s=0.2)
    if failure == "stream_deleted":
        assert await memory_bus.delete_stream(feed.STREAM)
    else:
        await memory_bus.close()
    batches = 20
    for k in range(batches):
        assert await timed_hook(lambda: fed.on_points(tenant, batch(k))) < HOOK_BUDGET_S  # noqa: B023
        await asyncio.sleep(0.01)  # the sender gets its turns
    assert fed.running and fed.bus_failing and fed.published == 0
    assert fed.queued == batches * 50  # only the watched tag's points are kept
    assert 1 <= fed.failures <= 8, fed.failures  # backing off: not an attempt per batch

    # the bus comes back; no new points arrive, the backlog goes anyway
    if failure == "stream_deleted":
        await feed.ensure_stream(memory_bus)
    else:
        await memory_bus.connect()
    received = Received()
    await received.start(memory_bus, tenant)
    await until(lambda: fed.published == batches * 50)
    await until(lambda: len(received.values) == batches * 50)
    assert received.values == [float(v) for v in range(batches * 50)]  # in order, once
    assert received.tags == {WATCHED}
    assert not fed.bus_failing and fed.queued == 0 and fed.dropped == 0
    assert fed.messages == 2  # the batch held for its retry, then the rest of the backlog merged
    await fed.stop()
    await received.close()
    assert not fed.running and sender_tasks() == []


async def test_the_queue_bound_drops_the_oldest_points_and_counts_them(
    memory_bus: MemoryBus, tags: ReferencedTags, tenant: str
) -> None:
    fed = AlarmFeed(lambda: None, tags, memory_bus, max_queued_points=120, retry_min_s=0.05)
    assert await memory_bus.delete_stream(feed.STREAM)
    for k in range(5):  # 250 watched points into room for 120
        assert await timed_hook(lambda: fed.on_points(tenant, batch(k))) < HOOK_BUDGET_S  # noqa: B023
    assert fed.queued == 120 and fed.dropped == 130
    await until(lambda: fed.failures >= 2)
    for k in range(5, 7):  # the batch held for its retry stays; the queue keeps its bound
        await fed.on_points(tenant, batch(k))
    assert fed.queued == 120 + 100 and fed.dropped == 130
    for k in range(7, 10):
        await fed.on_points(tenant, batch(k))
    assert fed.queued == 120 + 120 and fed.dropped == 130 + 130

    await feed.ensure_stream(memory_bus)
    received = Received()
    await received.start(memory_bus, tenant)
    await until(lambda: fed.queued == 0)
    await until(lambda: len(received.values) == 240)
    # the oldest went: the first held 120 (130..249), then the newest 120 of the rest (380..499)
    assert received.values == [float(v) for v in [*range(130, 250), *range(380, 500)]]
    assert fed.published == 240 and fed.dropped == 260
    await fed.stop()
    await received.close()


async def test_stop_publishes_what_is_queued_then_ends_the_sender(
    memory_bus: MemoryBus, tags: ReferencedTags, tenant: str
) -> None:
    fed = AlarmFeed(lambda: None, tags, memory_bus)
    await fed.start()
    assert fed.running and len(sender_tasks()) == 1
    for k in range(3):
        await fed.on_points(tenant, batch(k))
    await fed.stop()
    assert fed.published == 150 and fed.queued == 0
    assert not fed.running and sender_tasks() == []
    await fed.stop()  # idempotent
    await fed.on_points(tenant, batch(3))  # a later batch starts it again
    assert fed.running
    await fed.stop()
    assert fed.published == 200 and sender_tasks() == []


async def test_without_a_bus_the_local_engine_gets_the_points_directly(
    tags: ReferencedTags, tenant: str
) -> None:
    engine = AlarmEngine(tags.db)
    await engine.load()
    fed = AlarmFeed(lambda: engine, tags, None)  # the embedded profile: one process, no election
    await fed.on_points(tenant, [Point(WATCHED, T0, 95.0)])
    assert [a["state"] for a in engine.alarms(tenant)] == ["unack_active"]
    assert fed.queued == 0 and not fed.running  # nothing for the bus


async def test_with_a_bus_the_local_engine_gets_its_own_points_over_it(
    memory_bus: MemoryBus, tags: ReferencedTags, tenant: str
) -> None:
    # elected: only a bus message is acknowledged after its transitions are saved under the term
    engine = AlarmEngine(tags.db)
    await engine.load()
    consumer = await feed.consume(memory_bus, engine)
    try:
        fed = AlarmFeed(lambda: engine, tags, memory_bus)
        await fed.on_points(tenant, [Point(WATCHED, T0, 95.0), Point(OTHER, T0, 1.0)])
        assert [a["state"] for a in engine.alarms(tenant)] == ["normal"]  # not evaluated in the hook
        await until(lambda: [a["state"] for a in engine.alarms(tenant)] == ["unack_active"])
        assert fed.published == 1 and fed.messages == 1  # the referenced point only
        await fed.stop()
    finally:
        await consumer.close()
        await engine.stop()


# -- NATS JetStream behind a link that hangs ------------------------------------------------------
class Relay:
    """A loopback TCP relay to a real server that can stop carrying bytes, the sockets kept open."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            self._pumps.add(asyncio.create_task(self._pump(src, dst)))

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        for t in self._pumps:
            t.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture
async def relayed_nats() -> AsyncIterator[tuple[Relay, NatsBus, NatsBus]]:
    """A relay to the NATS server, a bus through it (0.5 s request timeout) and a direct one."""
    require_service("nats")
    parts = urlsplit(NATS_URL)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 4222)
    await relay.start()
    through = NatsBus([relay.url], request_timeout_s=0.5)
    direct = NatsBus([NATS_URL])
    await through.connect()
    await direct.connect()
    await feed.ensure_stream(direct)
    yield relay, through, direct
    relay.flowing.set()
    await through.close()
    await direct.close()
    await relay.close()


@pytest.mark.nats
async def test_a_hanging_nats_link_never_holds_the_hook_and_nothing_is_stored_twice(
    relayed_nats: tuple[Relay, NatsBus, NatsBus], tags: ReferencedTags, tenant: str
) -> None:
    relay, through, direct = relayed_nats
    received = Received()
    await received.start(direct, tenant)
    fed = AlarmFeed(lambda: None, tags, through, retry_min_s=0.1, retry_max_s=0.4)
    await fed.on_points(tenant, batch(0))
    await until(lambda: fed.published == 50)

    relay.flowing.clear()  # publishes now wait for acks that do not come
    batches = 40
    for k in range(1, batches + 1):
        assert await timed_hook(lambda: fed.on_points(tenant, batch(k))) < RELAYED_HOOK_BUDGET_S  # noqa: B023
        await asyncio.sleep(0.03)
    assert fed.bus_failing and fed.published == 50 and fed.queued == batches * 50
    assert 1 <= fed.failures <= 5, fed.failures  # each attempt times out (0.5 s), then waits

    relay.flowing.set()  # the link carries again: the attempts stuck in it land, then the retry
    await until(lambda: fed.published == (batches + 1) * 50)
    await until(lambda: len(received.values) >= (batches + 1) * 50)
    await asyncio.sleep(0.5)  # room for a duplicate to show up
    assert received.values == [float(v) for v in range((batches + 1) * 50)]  # once each, in order
    assert not fed.bus_failing and fed.dropped == 0
    await fed.stop()
    await received.close()
    assert sender_tasks() == []


@pytest.mark.nats
async def test_stop_does_not_wait_for_a_hanging_bus(
    relayed_nats: tuple[Relay, NatsBus, NatsBus], tags: ReferencedTags, tenant: str
) -> None:
    relay, through, _ = relayed_nats
    fed = AlarmFeed(lambda: None, tags, through)
    relay.flowing.clear()
    await fed.on_points(tenant, batch(0))
    await asyncio.sleep(0.1)  # the sender is inside its publish attempt
    assert fed.running and fed.failures == 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fed.stop(timeout_s=0.2)
    assert loop.time() - start < 0.5
    assert not fed.running and sender_tasks() == []
    assert fed.queued == 0 and fed.dropped == 50 and fed.published == 0  # counted as lost
