"""Stored samples to the alarm engine, wherever it runs.

Every process ingests (a share of the ``telemetry-ingest`` queue group) but only one runs the
alarm engine (``gongyun.alarms.leader``). :class:`AlarmFeed` is the ingest hook of every process:
where the engine runs locally it is called directly; otherwise the stored points of the tags that
enabled rules read (:class:`ReferencedTags`) are published on the ``ALARM_POINTS`` stream
(``alarms.points.<tenant>``), columnar and batched. The engine's process consumes that stream
with one shared durable consumer (:func:`consume`), so points published while no process leads
wait in the stream for the next leader (at least once: the engine skips a replayed sample).
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
from collections import deque
from collections.abc import Callable

import orjson
from sqlalchemy import select

from gongyun.alarms import commands, repo
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.models import AlarmRuleRow
from gongyun.alarms.rules import Condition
from gongyun.bus import Bus, Envelope, Message, Subscription
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
BACKLOG_MESSAGES = 1000
"""Messages kept for a retry while the bus cannot take them; older ones are dropped (logged)."""


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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
    """The ingest hook of every process: to the local engine, else onto the bus."""

    def __init__(
        self,
        local: Callable[[], AlarmEngine | None],
        tags: ReferencedTags | None,
        bus: Bus | None,
        *,
        max_points: int = MAX_POINTS_PER_MESSAGE,
    ) -> None:
        self.local = local
        self.tags = tags
        self.bus = bus
        self.max_points = max_points
        self.published = 0
        self.messages = 0
        self._origin = uuid.uuid4().hex[:12]
        self._seq = 0
        self._backlog: deque[Envelope] = deque()
        self._failing = False
        self._lock = asyncio.Lock()

    async def on_points(self, tenant: str, points: list[Point]) -> None:
        """Ingest hook: hand stored points to the engine, directly or over the bus."""
        engine = self.local()
        if engine is not None:
            await engine.on_points(tenant, points)
            return
        if self.bus is None or self.tags is None:
            return
        wanted = self.tags.get(tenant)
        chosen = [p for p in points if p.tag in wanted] if wanted else []
        envelopes = []
        for i in range(0, len(chosen), self.max_points):
            self._seq += 1
            envelopes.append(
                Envelope(
                    f"{SUBJECT}.{tenant}",
                    encode(chosen[i : i + self.max_points]),
                    msg_id=f"{self._origin}-{self._seq}",
                )
            )
        if envelopes or self._backlog:
            await self._send(envelopes, len(chosen))

    async def _send(self, envelopes: list[Envelope], count: int) -> None:
        async with self._lock:  # in order, the backlog first
            self._backlog.extend(envelopes)
            overflow = len(self._backlog) - BACKLOG_MESSAGES
            if overflow > 0:
                for _ in range(overflow):
                    self._backlog.popleft()
                _log.error("the bus is down: %d alarm point messages dropped", overflow)
            batch = list(self._backlog)
            try:
                await self.bus.publish_many(batch) if self.bus is not None else None
            except GongyunError as exc:
                if not self._failing:
                    _log.warning("alarm points not published yet (kept for a retry): %s", exc)
                self._failing = True
                return
            self._backlog.clear()
            if self._failing:
                _log.info("alarm points published again")
                self._failing = False
            self.messages += len(batch)
            self.published += count


def _durable_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:24]
    return f"alarm-tags-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
