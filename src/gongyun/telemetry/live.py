"""Live data across processes: alarm transitions and live points for every process's SSE clients.

The process that runs ingest and the alarm engine delivers to its own listeners directly (the
queues of :meth:`TelemetryService.listen` and the alarm engine's ``listen``) and, when the bus is not
in-process, also publishes on the ``LIVE`` stream (short ``max_age``):

* ``live.alarms.<tenant>`` — every alarm transition, as the event the SSE stream sends;
* ``live.points.<tenant>`` — the latest point per tag, coalesced: at most one flush every
  ``FLUSH_S`` seconds, each tenant's flush split into messages of ``MAX_POINTS_PER_MESSAGE``
  points (never one message per sample).

Every process's :class:`LiveHub` follows that stream with its own consumer (deleted by the bus a
minute after the process has gone) and hands what it reads to its local listeners. It skips what
its own process published (already delivered locally) and the backlog the stream held before the
hub started: it publishes a hello and drops everything until its consumer reads that hello back.
With the in-process bus (embedded profile) there is one process: nothing goes over the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import socket
import uuid
from typing import Any, Protocol

import orjson

from gongyun.bus import Bus, Envelope, Message, Subscription
from gongyun.errors import GongyunError
from gongyun.telemetry.store.base import Point

_log = logging.getLogger("gongyun.telemetry.live")
STREAM = "LIVE"
SUBJECTS = ["live.>"]
ALARMS = "live.alarms"
POINTS = "live.points"
HELLO = "live.hello"
ORIGIN_HEADER = "Gongyun-Origin"
MAX_AGE_S = 30.0
"""How long the bus keeps live messages (a follower only needs them across a short hiccup)."""
FLUSH_S = 0.25
"""Live points are published at most this often per tenant (latest value per tag)."""
MAX_POINTS_PER_MESSAGE = 2000
ALARM_BACKLOG = 10_000
"""Alarm transitions waiting to be published; beyond this they are dropped (and logged)."""

AlarmQueue = asyncio.Queue[dict[str, Any]]


class AlarmSource(Protocol):
    """What publishes alarm transitions as dicts (the alarm engine implements it)."""

    def listen(self, maxsize: int = ...) -> AlarmQueue:
        """A queue receiving every alarm transition."""

    def unlisten(self, q: AlarmQueue) -> None:
        """Stop delivering to a queue."""


PointsQueue = asyncio.Queue[tuple[str, list[Point]]]


def new_origin() -> str:
    """A process-unique id put on every live message this process publishes."""
    return uuid.uuid4().hex


def _durable_for(origin: str) -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:24]
    return f"live-{host}-{os.getpid()}-{origin[:8]}"


class _Sender:
    """Publishes batches, logging a bus outage once rather than on every flush."""

    def __init__(self, bus: Bus, origin: str) -> None:
        self.bus = bus
        self.origin = origin
        self.headers = {ORIGIN_HEADER: origin}
        self._failing = False

    async def send(self, envelopes: list[Envelope]) -> bool:
        if not envelopes:
            return True
        try:
            await self.bus.publish_many(envelopes)
        except GongyunError as exc:
            if not self._failing:
                _log.warning("live data not published (SSE clients of other processes miss it): %s", exc)
            self._failing = True
            return False
        if self._failing:
            _log.info("live data published again")
            self._failing = False
        return True


class LivePublisher:
    """In the ingest and alarm engine process: puts live data on the bus for the other processes."""

    def __init__(
        self,
        bus: Bus,
        origin: str,
        *,
        flush_s: float = FLUSH_S,
        max_points: int = MAX_POINTS_PER_MESSAGE,
    ) -> None:
        self.origin = origin
        self.flush_s = flush_s
        self.max_points = max_points
        self.point_messages = 0
        self.alarm_messages = 0
        self._sender = _Sender(bus, origin)
        self._pending: dict[str, dict[str, Point]] = {}
        self._alarms: AlarmQueue | None = None
        self._engine: AlarmSource | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, engine: AlarmSource | None = None) -> None:
        """Ensure the stream; flush points in the background and forward ``engine``'s transitions."""
        with contextlib.suppress(GongyunError):  # the stream may exist with other limits
            await self._sender.bus.ensure_stream(STREAM, SUBJECTS, max_age_s=MAX_AGE_S)
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="live-points-flush"))
        if engine is not None:
            self._engine = engine
            self._alarms = engine.listen(maxsize=ALARM_BACKLOG)
            self._tasks.append(asyncio.create_task(self._forward_loop(), name="live-alarms-forward"))

    async def stop(self) -> None:
        """Stop, publishing what is still pending first."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._alarms is not None and self._engine is not None:
            await self._send_alarms(self._take_alarms(None))
            self._engine.unlisten(self._alarms)
            self._alarms = None
        await self.flush()

    # -- points ----------------------------------------------------------------------------
    async def on_points(self, tenant: str, points: list[Point]) -> None:
        """Ingest hook: remember the newest point of each tag until the next flush."""
        pending = self._pending.get(tenant)
        if pending is None:
            pending = self._pending[tenant] = {}
        for p in points:
            cur = pending.get(p.tag)
            if cur is None or p.ts >= cur.ts:
                pending[p.tag] = p

    async def flush(self) -> int:
        """Publish the pending points (each tenant's in as few messages as fit); return how many."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        envelopes: list[Envelope] = []
        for tenant, latest in pending.items():
            points = sorted(latest.values(), key=lambda p: p.ts)
            for i in range(0, len(points), self.max_points):
                body = orjson.dumps([[p.tag, p.ts, p.value] for p in points[i : i + self.max_points]])
                envelopes.append(Envelope(f"{POINTS}.{tenant}", body, self._sender.headers))
        if await self._sender.send(envelopes):
            self.point_messages += len(envelopes)
        return len(envelopes)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except Exception:
                _log.exception("live points flush failed")

    # -- alarms ----------------------------------------------------------------------------
    def _take_alarms(self, first: dict[str, Any] | None) -> list[dict[str, Any]]:
        assert self._alarms is not None
        batch = [first] if first is not None else []
        while not self._alarms.empty() and len(batch) < 500:
            batch.append(self._alarms.get_nowait())
        return batch

    async def _send_alarms(self, events: list[dict[str, Any]]) -> None:
        envelopes = [
            Envelope(f"{ALARMS}.{ev['tenant']}", orjson.dumps(ev), self._sender.headers) for ev in events
        ]
        if await self._sender.send(envelopes):
            self.alarm_messages += len(envelopes)

    async def _forward_loop(self) -> None:
        assert self._alarms is not None
        while True:
            first = await self._alarms.get()
            if self._alarms.full():
                _log.warning("alarm transitions arrive faster than the bus takes them; some are dropped")
            try:
                await self._send_alarms(self._take_alarms(first))
            except Exception:
                _log.exception("forwarding alarm transitions failed")


class LiveHub:
    """One per process: the local SSE listeners, fed locally and (server profile) from the bus.

    ``points`` and ``alarms`` may be the listener sets of the process's own telemetry service and
    alarm engine, so their direct deliveries and the bus's reach the same queues.
    """

    def __init__(
        self,
        bus: Bus | None,
        origin: str,
        points: set[PointsQueue] | None = None,
        alarms: set[AlarmQueue] | None = None,
    ) -> None:
        self.bus = bus
        self.origin = origin
        self.durable = _durable_for(origin)
        self.points: set[PointsQueue] = points if points is not None else set()
        self.alarms: set[AlarmQueue] = alarms if alarms is not None else set()
        self.subscription: Subscription | None = None
        self.received = 0
        self.rejected = 0
        self._ready = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Follow the bus (idempotent; nothing to do with an in-process bus)."""
        if self.bus is None or self.subscription is not None:
            return
        async with self._lock:
            if self.subscription is not None:
                return
            with contextlib.suppress(GongyunError):  # the stream may exist with other limits
                await self.bus.ensure_stream(STREAM, SUBJECTS, max_age_s=MAX_AGE_S)
            await self.bus.publish(HELLO, b"", headers={ORIGIN_HEADER: self.origin})
            self.subscription = await self.bus.subscribe(
                SUBJECTS[0], durable=self.durable, handler=self._on_message, forget_after_s=60
            )

    async def stop(self) -> None:
        """Stop following the bus."""
        if self.subscription is not None:
            await self.subscription.close()
            self.subscription = None

    # -- listeners -------------------------------------------------------------------------
    def listen_points(self, maxsize: int = 1000) -> PointsQueue:
        """A queue receiving (tenant, points) of every tenant; drop it with ``unlisten_points``."""
        q: PointsQueue = asyncio.Queue(maxsize=maxsize)
        self.points.add(q)
        return q

    def unlisten_points(self, q: PointsQueue) -> None:
        """Stop delivering points to a queue."""
        self.points.discard(q)

    def listen_alarms(self, maxsize: int = 1000) -> AlarmQueue:
        """A queue receiving every alarm transition event; drop it with ``unlisten_alarms``."""
        q: AlarmQueue = asyncio.Queue(maxsize=maxsize)
        self.alarms.add(q)
        return q

    def unlisten_alarms(self, q: AlarmQueue) -> None:
        """Stop delivering alarm events to a queue."""
        self.alarms.discard(q)

    # -- from the bus ----------------------------------------------------------------------
    async def _on_message(self, msg: Message) -> None:
        try:
            if msg.headers.get(ORIGIN_HEADER) == self.origin:
                if msg.subject == HELLO:
                    self._ready = True  # what follows was published after this hub started
            elif self._ready and msg.subject != HELLO:
                self._deliver(msg.subject, msg.data)
        finally:
            await msg.ack()

    def _deliver(self, subject: str, data: bytes) -> None:
        kind, _, tenant = subject.removeprefix("live.").partition(".")
        try:
            body = orjson.loads(data)
            if kind == "alarms":
                if not isinstance(body, dict) or body.get("tenant") != tenant:
                    raise ValueError("an alarm event must be an object of the subject's tenant")
                self.received += 1
                _put(self.alarms, body)
            elif kind == "points":
                points = [
                    Point(str(tag), int(ts), math.nan if value is None else float(value))
                    for tag, ts, value in body
                ]
                self.received += 1
                _put(self.points, (tenant, points))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            self.rejected += 1
            _log.warning("dropping malformed live message on %s: %s", subject, exc)


def _put(listeners: set[Any], item: Any) -> None:
    for q in list(listeners):
        with contextlib.suppress(asyncio.QueueFull):
            q.put_nowait(item)
