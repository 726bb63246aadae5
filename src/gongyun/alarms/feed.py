"""Stored samples to the alarm engine, wherever it runs.

Every process ingests (a share of the ``telemetry-ingest`` queue group) but only one runs the
alarm engine (``gongyun.alarms.leader``). :class:`AlarmFeed` is the ingest hook of every process.
In the embedded profile (one process, no election) it calls the engine directly. In the server
profile every process, the leader's own included, publishes the stored points of the tags that
enabled rules read (:class:`ReferencedTags`) on the ``ALARM_POINTS`` stream
(``alarms.points.<tenant>``), columnar and batched, by a background sender that the ingest hook
never waits for (:class:`AlarmFeed`: a bounded queue, retries with backoff). The engine's
process consumes that stream with one shared durable consumer (:func:`consume`) and acknowledges
a message only once the transitions of its points are saved under the engine's fencing term. A
leader deposed before that (its lock connection cut, a newer term started) saves nothing and
acknowledges nothing: the message goes back to the stream and the new leader, which loaded the
states every earlier term saved, evaluates it again. So an excursion evaluated during a
handover is neither lost nor raised twice, and points published while no process leads wait in
the stream for the next leader (at least once: the engine skips a replayed sample).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import socket
import uuid
from collections import deque
from collections.abc import Callable

import orjson
from sqlalchemy import select

from gongyun.alarms import commands, repo
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.models import AlarmRuleRow
from gongyun.alarms.rules import Condition
from gongyun.bus import Bus, Envelope, Message, Subscription
from gongyun.bus.base import MAX_PAYLOAD
from gongyun.core.tasks import cancel_and_wait
from gongyun.db import Database
from gongyun.errors import GongyunError, ServiceUnavailable
from gongyun.telemetry.store.base import Point

_log = logging.getLogger("gongyun.alarms.feed")

STREAM = "ALARM_POINTS"
SUBJECTS = ["alarms.points.>"]
SUBJECT = "alarms.points"
DURABLE = "alarm-points"
MAX_AGE_S = 86400.0
"""How long points wait in the stream for a leader."""
MAX_POINTS_PER_MESSAGE = 10_000
"""Points per message (about 40 bytes each: well under the bus's 1 MiB)."""
REFRESH_S = 5.0
"""The referenced tags are read again at least this often (and whenever a command rings)."""
QUEUE_POINTS = 200_000
"""Points a process keeps for the bus while it cannot take them (about 30 MB); then the oldest go."""
SEND_POINTS = 50_000
"""Points per publish attempt (taken from the queue, merged per tenant, split in messages)."""
PAYLOAD_HEADROOM = 1024
"""Bytes left under the bus's message size for the headers."""
RETRY_MIN_S = 0.2
"""First delay before a failed batch is sent again (doubling, jittered, up to ``RETRY_MAX_S``)."""
RETRY_MAX_S = 10.0
ATTEMPT_TIMEOUT_S = 30.0
"""A publish attempt that has not finished by then counts as failed."""
STOP_TIMEOUT_S = 2.0
"""How long :meth:`AlarmFeed.stop` lets the sender publish what is queued."""


def encode(points: list[Point]) -> bytes:
    """Points as one compact columnar document: tag names once, then index, time, value columns."""
    names: dict[str, int] = {}
    idx = [names.setdefault(p.tag, len(names)) for p in points]
    values = [None if math.isnan(p.value) else p.value for p in points]
    return orjson.dumps({"tags": list(names), "i": idx, "ts": [p.ts for p in points], "v": values})


def decode(data: bytes) -> list[Point]:
    """The points of an :func:`encode` document (ValueError when malformed)."""
    try:
        body = orjson.loads(data)
        tags, idx, ts, values = body["tags"], body["i"], body["ts"], body["v"]
        if not (len(idx) == len(ts) == len(values)):
            raise ValueError("columns of different lengths")
        return [
            Point(str(tags[i]), int(t), math.nan if v is None else float(v))
            for i, t, v in zip(idx, ts, values, strict=True)
        ]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"malformed alarm points message: {exc}") from exc


async def ensure_stream(bus: Bus) -> None:
    """Create (or keep) the stream the points wait in."""
    with contextlib.suppress(GongyunError):  # it may exist with other limits
        await bus.ensure_stream(STREAM, SUBJECTS, max_age_s=MAX_AGE_S)


async def consume(bus: Bus, engine: AlarmEngine, durable: str = DURABLE) -> Subscription:
    """In the engine's process: feed every published point to the engine (one shared consumer).

    The consumer is forgotten after ``MAX_AGE_S`` without a leader; a new one starts at the
    oldest point the stream still holds.
    """
    await ensure_stream(bus)

    async def handle(msg: Message) -> None:
        tenant = msg.subject.removeprefix(SUBJECT + ".")
        try:
            points = decode(msg.data)
        except ValueError as exc:
            _log.warning("dropping %s seq=%d: %s", msg.subject, msg.seq, exc)
            await msg.ack()
            return
        if not engine.accepting:
            raise ServiceUnavailable("the alarm engine stopped here")  # nak'ed: the next leader takes it
        await engine.on_points(tenant, points)
        await engine.flush()  # saved before the stream forgets them
        if not engine.accepting:
            raise ServiceUnavailable("the alarm engine stopped here")
        await msg.ack()

    return await bus.subscribe(
        SUBJECTS[0], durable=durable, handler=handle, ack_wait_s=30, forget_after_s=MAX_AGE_S
    )


class ReferencedTags:
    """Per tenant, the tags that enabled alarm rules read (read from the database, kept fresh)."""

    def __init__(self, db: Database, bus: Bus | None, *, refresh_s: float = REFRESH_S) -> None:
        self.db = db
        self.bus = bus
        self.refresh_s = refresh_s
        self.loads = 0
        self._tags: dict[str, frozenset[str]] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._durable = _durable_name()

    def get(self, tenant: str) -> frozenset[str]:
        """The tenant's referenced tags."""
        return self._tags.get(tenant, frozenset())

    async def refresh(self) -> None:
        """Read the enabled rules again."""
        async with self.db.session() as s:
            q = select(AlarmRuleRow.tenant_id, AlarmRuleRow.spec_json).execution_options(all_tenants=True)
            rows = (await s.execute(q)).all()
        found: dict[str, set[str]] = {}
        for tenant, spec_json in rows:
            try:
                spec = repo.RULE.validate_json(spec_json)
            except ValueError:
                _log.warning("skipping an alarm rule of tenant %s that does not parse", tenant)
                continue
            if spec.enabled:
                found.setdefault(tenant, set()).update(Condition(spec).tags)
        self._tags = {t: frozenset(tags) for t, tags in found.items()}
        self.loads += 1

    def changed(self) -> None:
        """Rules may have changed: read them again soon."""
        self._dirty.set()

    async def start(self) -> None:
        """Load now, then refresh every ``refresh_s`` and whenever an alarm command rings."""
        await self.refresh()
        if self.bus is not None:
            with contextlib.suppress(GongyunError):
                await self.bus.ensure_stream(
                    commands.STREAM, commands.SUBJECTS, max_age_s=commands.KEEP_DONE.total_seconds()
                )

            async def ring(msg: Message) -> None:
                self._dirty.set()
                await msg.ack()

            self._subscription = await self.bus.subscribe(
                commands.SUBJECTS[0], durable=self._durable, handler=ring, forget_after_s=60
            )
        self._task = asyncio.create_task(self._loop(), name="alarm-tags-refresh")

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.refresh_s)
            self._dirty.clear()
            try:
                await self.refresh()
            except Exception:
                _log.exception("reading the alarm rules' tags failed")


class AlarmFeed:
    """The ingest hook of every process: to the engine directly without a bus, else queued for it.

    With a bus (the server profile) the points go over it even when the engine runs in this
    process: only a bus message is acknowledged after its transitions are saved under a valid
    term, and so handed to the next leader when this one is deposed first (a direct call would
    lose what a deposed engine evaluated but could not save).

    Alarm forwarding must never slow ingest: the hook only appends the referenced points to a
    bounded in-memory queue and returns; a background sender (started with the first points, or
    by :meth:`start`; ended by :meth:`stop`) publishes them in order, retrying a failed batch with
    the same message ids (the stream drops what it already stored) after a growing, jittered
    delay. While the bus fails the sender is the only one trying, once per delay: points that
    arrive meanwhile wait in the queue and do not wake it (a simple circuit breaker).
    """

    def __init__(
        self,
        local: Callable[[], AlarmEngine | None],
        tags: ReferencedTags | None,
        bus: Bus | None,
        *,
        max_points: int = MAX_POINTS_PER_MESSAGE,
        max_queued_points: int = QUEUE_POINTS,
        retry_min_s: float = RETRY_MIN_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.local = local
        self.tags = tags
        self.bus = bus
        self.max_points = max_points
        self.max_queued_points = max_queued_points
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.published = 0
        """Points the bus has stored."""
        self.messages = 0
        """Messages the bus has stored."""
        self.dropped = 0
        """Points dropped unsent (the queue was full, or at stop)."""
        self.failures = 0
        """Failed publish attempts."""
        self._origin = uuid.uuid4().hex[:12]
        self._seq = 0
        self._queue: deque[tuple[str, list[Point]]] = deque()
        self._queued = 0
        self._held: list[Envelope] = []  # the batch being sent: retried as is (same msg ids)
        self._held_points = 0
        self._delay = 0.0  # the breaker is open (the bus failing) while this is not 0
        self._dropped_reported = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Points waiting to be published (queued, or in the batch being sent)."""
        return self._queued + self._held_points

    @property
    def bus_failing(self) -> bool:
        """True while the last publish attempt failed (the sender waits before the next one)."""
        return self._delay > 0

    @property
    def running(self) -> bool:
        """True while the background sender runs."""
        return self._task is not None and not self._task.done()

    async def on_points(self, tenant: str, points: list[Point]) -> None:
        """Ingest hook: queue stored points for the bus, or without one hand them to the engine."""
        if self.bus is None:
            engine = self.local()
            if engine is not None:
                await engine.on_points(tenant, points)
            return
        if self.tags is None:
            return
        wanted = self.tags.get(tenant)
        chosen = [p for p in points if p.tag in wanted] if wanted else []
        if chosen:
            self.enqueue(tenant, chosen)

    def enqueue(self, tenant: str, points: list[Point]) -> None:
        """Queue points for the bus without waiting; when the queue is full the oldest are dropped."""
        self._queue.append((tenant, points))
        self._queued += len(points)
        # Full: drop the OLDEST queued points, never wait for room and never refuse the new ones.
        # Waiting (or back-pressure) would let a bus outage stall ingest and the Sparkplug
        # confirmations behind it; and when something must go, the newest samples are the ones
        # the engine needs to show the plant's current state, while the oldest only replay
        # transitions that are long over. Every dropped point is counted (``dropped``) and logged.
        excess = self._queued - self.max_queued_points
        if excess > 0:
            if self.dropped == self._dropped_reported:
                _log.error("the alarm point queue is full (bus down?): dropping the oldest points")
            while excess > 0:
                old_tenant, old = self._queue[0]
                if len(old) <= excess:
                    self._queue.popleft()
                    n = len(old)
                else:
                    self._queue[0] = (old_tenant, old[excess:])
                    n = excess
                excess -= n
                self._queued -= n
                self.dropped += n
        self.start_nowait()
        self._wake.set()  # an idle sender starts at once; one waiting out a failure does not care

    async def start(self) -> None:
        """Start the background sender (idempotent; the first queued points start it too)."""
        self.start_nowait()

    def start_nowait(self) -> None:
        """Start the background sender unless it runs or is stopping (needs a running loop)."""
        if self.bus is not None and not self.running and not self._stopping.is_set():
            self._task = asyncio.create_task(self._run(), name="alarm-feed-sender")

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Publish what is queued while the bus takes it (up to ``timeout_s``), then end the sender."""
        task = self._task
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait({task}, timeout=timeout_s)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
            self._task = None
            self._stopping.clear()
        if not task.cancelled() and task.exception() is not None:
            _log.error("the alarm point sender failed", exc_info=task.exception())
        if self.queued:
            _log.warning("%d alarm points were not published before the feed stopped", self.queued)
            self.dropped += self.queued
            self._queue.clear()
            self._queued = 0
            self._held, self._held_points = [], 0

    async def _run(self) -> None:
        bus = self.bus
        assert bus is not None
        while True:
            if not self._held:
                if not self._queue:
                    if self._stopping.is_set():
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self._take()
                if not self._held:
                    continue
            try:
                async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                    await bus.publish_many(self._held)
            except Exception as exc:  # the bus's errors, a timeout: all worth a later retry
                self._failed(exc)
                if self._stopping.is_set():
                    return  # do not hold the stop up on a failing bus
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._delay * random.uniform(0.5, 1.0))
                continue
            self._sent()

    def _take(self) -> None:
        """Move up to ``SEND_POINTS`` queued points into the batch to send, merged per tenant."""
        taken: dict[str, list[Point]] = {}
        n = 0
        while self._queue and n < SEND_POINTS:
            tenant, points = self._queue[0]
            room = SEND_POINTS - n
            if len(points) > room:
                self._queue[0] = (tenant, points[room:])
                points = points[:room]
            else:
                self._queue.popleft()
            taken.setdefault(tenant, []).extend(points)
            n += len(points)
        self._queued -= n
        held: list[Envelope] = []
        sent = 0
        for tenant, points in taken.items():
            for i in range(0, len(points), self.max_points):
                for data, count in self._encoded(points[i : i + self.max_points]):
                    self._seq += 1
                    msg_id = f"{self._origin}-{self._seq}"
                    held.append(Envelope(f"{SUBJECT}.{tenant}", data, msg_id=msg_id))
                    sent += count
        self.dropped += n - sent
        self._held, self._held_points = held, sent

    def _encoded(self, points: list[Point]) -> list[tuple[bytes, int]]:
        """``points`` as messages the bus takes (halved until each fits)."""
        data = encode(points)
        if len(data) <= MAX_PAYLOAD - PAYLOAD_HEADROOM:
            return [(data, len(points))]
        if len(points) == 1:
            _log.error("dropping an alarm point too large for the bus (tag %.64r)", points[0].tag)
            return []
        half = len(points) // 2
        return self._encoded(points[:half]) + self._encoded(points[half:])

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self._delay == 0:
            _log.warning("alarm points not published yet (kept, retried in the background): %s", exc)
            self._delay = self.retry_min_s
        else:
            self._delay = min(self._delay * 2, self.retry_max_s)

    def _sent(self) -> None:
        self.messages += len(self._held)
        self.published += self._held_points
        self._held, self._held_points = [], 0
        if self._delay:
            _log.info("alarm points published again after %d failed attempts", self.failures)
            self._delay = 0.0
        if self.dropped != self._dropped_reported:
            _log.error("%d alarm points were dropped unsent", self.dropped - self._dropped_reported)
            self._dropped_reported = self.dropped


def _durable_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:24]
    return f"alarm-tags-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
