"""Operator actions from any API process to the one process that runs the alarm engine.

In the server profile that process is the elected leader (``gongyun.alarms.leader``); only it
runs a :class:`CommandWorker`.

The API writes an ``alarm_commands`` row (the durable request) and commits it, then rings
the bus (``alarms.commands.<tenant>``, the row id as body and as de-duplication id). The
engine process applies each row once (:meth:`AlarmEngine.execute`): from the bus as soon as
the message arrives and, as a safety net for a lost message or a bus outage, by sweeping
the table for rows still pending. The API then watches the row until it has an outcome:
the alarm's new view, a rejection (its stable error code), or 202 with where to look.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import timedelta
from typing import Any, NoReturn

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms.engine import (
    APPLIED,
    PENDING,
    REJECTED,
    AlarmEngine,
    AlarmRuleInvalid,
    AlarmTargetInvalid,
    CommandExpired,
)
from gongyun.alarms.models import AlarmCommandRow
from gongyun.alarms.states import InvalidTransition
from gongyun.bus import Bus, Message, Subscription
from gongyun.core.tasks import cancel_and_wait
from gongyun.db.base import utcnow
from gongyun.errors import Conflict, GongyunError, NotFound, ServiceUnavailable

_log = logging.getLogger("gongyun.alarms.commands")

STREAM = "ALARM_COMMANDS"
SUBJECTS = ["alarms.commands.>"]
DURABLE = "alarm-engine"
KEEP_DONE = timedelta(days=1)
"""Commands with an outcome are deleted after this long."""
_STREAM_READY: weakref.WeakSet[Bus] = weakref.WeakSet()  # buses where the stream was ensured
_ERRORS: dict[str, type[GongyunError]] = {
    InvalidTransition.code: InvalidTransition,
    NotFound.code: NotFound,
    CommandExpired.code: CommandExpired,
    AlarmRuleInvalid.code: AlarmRuleInvalid,
    AlarmTargetInvalid.code: AlarmTargetInvalid,
}


async def create(
    session: AsyncSession,
    tenant_id: str,
    action: str,
    rule_id: str | None,
    user: str | None = None,
    duration_s: float | None = None,
) -> AlarmCommandRow:
    """Queue a command (the caller commits, then calls :func:`dispatch`).

    ``requested_at`` is the database server's ``now()`` (PostgreSQL), so the engine's expiry
    check compares two readings of one clock whatever host either process runs on; SQLite is a
    local file, so the local clock is the database's clock.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    row = AlarmCommandRow(
        tenant_id=tenant_id,
        rule_id=rule_id,
        action=action,
        user=user,
        duration_s=duration_s,
        status=PENDING,
        requested_at=func.now() if postgres else utcnow(),
    )
    session.add(row)
    await session.flush()
    if postgres:
        await session.refresh(row, ["requested_at"])
    return row


async def get(session: AsyncSession, tenant_id: str, command_id: str) -> AlarmCommandRow:
    """One command of the tenant, read fresh from the database (NotFound otherwise)."""
    q = select(AlarmCommandRow).where(
        AlarmCommandRow.tenant_id == tenant_id, AlarmCommandRow.id == command_id
    )
    row = (await session.execute(q.execution_options(populate_existing=True))).scalar_one_or_none()
    if row is None:
        raise NotFound("alarm command not found")
    return row


RING_ALL = frozenset({"reload_rule"})
"""Actions every process must hear of, not only the engine (they change which tags rules read)."""
DISPATCH_WAIT_S = 1.0
"""How long :func:`dispatch` waits for an engine running in this process before moving on."""


async def dispatch(
    bus: Bus,
    row: AlarmCommandRow,
    engine: AlarmEngine | None,
    *,
    timeout_s: float = DISPATCH_WAIT_S,
) -> None:
    """Hand a committed command to the engine: directly when it runs here, else over the bus.

    A local engine gets at most ``timeout_s``: when its save queue is busy the command stays
    queued there (it is applied later) and the caller goes on to :func:`wait` and its 202.
    A rule change rings the bus even when the engine took it here: every process's list of
    the tags that rules read (``gongyun.alarms.feed.ReferencedTags``) listens to that bell, and
    the engine's own consumer finds the command applied and skips it.
    """
    handed = engine is not None and await _handed_to_local(engine, row.id, timeout_s)
    if handed and row.action not in RING_ALL:
        return
    try:
        if bus not in _STREAM_READY:
            await bus.ensure_stream(STREAM, SUBJECTS, max_age_s=KEEP_DONE.total_seconds())
            _STREAM_READY.add(bus)
        await bus.publish(f"alarms.commands.{row.tenant_id}", row.id.encode(), msg_id=row.id)
    except GongyunError:
        # The row is committed: the engine's sweep applies it even though the bell did not ring.
        _log.warning("could not publish alarm command %s; the engine sweep will apply it", row.id)


async def _handed_to_local(engine: AlarmEngine, command_id: str, timeout_s: float) -> bool:
    """Give the command to this process's engine; False when it stopped here (ring the bus then)."""
    task = asyncio.ensure_future(engine.execute(command_id))
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        task.add_done_callback(_log_late_failure)  # queued there: applied when its turn comes
    except ServiceUnavailable:
        return False  # leadership moved away meanwhile
    return True


def _log_late_failure(task: asyncio.Future[Any]) -> None:
    """Log a local command that failed after :func:`dispatch` stopped waiting (the sweep retries)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        _log.warning("the alarm engine failed on a queued command (%s); its sweep will apply it", exc)


async def wait(session: AsyncSession, tenant_id: str, command_id: str, timeout_s: float) -> AlarmCommandRow:
    """Watch a command until it has an outcome or ``timeout_s`` passes; return it either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.01
    while True:
        row = await get(session, tenant_id, command_id)
        await session.commit()  # end the read so the next look sees the engine's commit
        left = deadline - loop.time()
        if row.status != PENDING or left <= 0:
            return row
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 0.2)


def raise_rejection(row: AlarmCommandRow) -> NoReturn:
    """Raise the error the engine gave for a rejected command (its stable code kept)."""
    cls = _ERRORS.get(row.error_code or "", Conflict)
    raise cls(row.error_message or cls.title, command_id=row.id)


def command_dict(row: AlarmCommandRow) -> dict[str, Any]:
    """A command as JSON: what was asked, by whom, and its outcome."""
    error = None
    if row.status == REJECTED:
        error = {"code": row.error_code, "message": row.error_message}
    return {
        "id": row.id,
        "rule_id": row.rule_id,
        "action": row.action,
        "user": row.user,
        "duration_s": row.duration_s,
        "status": row.status,
        "requested_at": row.requested_at.isoformat(),
        "applied_at": row.applied_at.isoformat() if row.applied_at else None,
        "alarm": orjson.loads(row.result_json) if row.result_json else None,
        "error": error,
    }


class CommandWorker:
    """In the engine's process: applies commands rung on the bus, and sweeps for missed ones."""

    def __init__(
        self,
        engine: AlarmEngine,
        bus: Bus | None,
        *,
        sweep_s: float = 1.0,
        durable: str = DURABLE,
        forget_after_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.sweep_s = sweep_s
        self.durable = durable
        self.forget_after_s = forget_after_s
        self.subscription: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe to the command stream (when there is a bus) and start sweeping."""
        if self.bus is not None:
            await self.bus.ensure_stream(STREAM, SUBJECTS, max_age_s=KEEP_DONE.total_seconds())
            self.subscription = await self.bus.subscribe(
                SUBJECTS[0],
                durable=self.durable,
                handler=self._on_message,
                ack_wait_s=30,
                forget_after_s=self.forget_after_s,
            )
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="alarm-command-sweep")

    async def stop(self) -> None:
        """Stop consuming and sweeping."""
        if self.subscription is not None:
            await self.subscription.close()
            self.subscription = None
        await cancel_and_wait(self._sweeper)
        self._sweeper = None

    async def _on_message(self, msg: Message) -> None:
        command_id = msg.data.decode(errors="replace").strip()
        if len(command_id) == 32:
            await self.engine.execute(command_id)  # raises: nak'ed and redelivered
        await msg.ack()

    async def sweep(self) -> int:
        """Apply every command still pending; drop old finished ones; return how many ran."""
        db = self.engine.db
        if db is None:
            return 0
        async with db.session() as s:
            q = (
                select(AlarmCommandRow.id)
                .where(AlarmCommandRow.status == PENDING)
                .order_by(AlarmCommandRow.requested_at)
                .limit(500)
            )
            ids = list((await s.execute(q.execution_options(all_tenants=True))).scalars())
            await s.execute(
                delete(AlarmCommandRow)
                .where(AlarmCommandRow.status.in_([APPLIED, REJECTED]))
                .where(AlarmCommandRow.requested_at < utcnow() - KEEP_DONE)
                .execution_options(all_tenants=True)
            )
        for command_id in ids:
            await self.engine.execute(command_id)
        return len(ids)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.sweep()
            except Exception:
                _log.exception("alarm command sweep failed")
