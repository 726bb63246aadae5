"""What the shop floor reports back: operations started, finished or running late.

Operators report on their dispatch list; each operation of the published schedule has at most one
row in ``scheduling_progress`` (started, finished, the expected end when it runs late). The
dispatch list shows the reported state where there is one and the planned state elsewhere. An
operation runs late when the schedule says it should have ended (or the operator's expected end
has passed) ``late_after`` minutes ago and nobody reported it finished: :func:`late_operations`
finds them for the worker, which proposes a repair with their new expected ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.scheduling.tables import progress
from gongyun.errors import Conflict, NotFound

Event = Literal["start", "finish", "late"]
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Planned:
    """One operation of the published schedule, in absolute time."""

    op: str
    machine: str
    start: datetime
    end: datetime


def planned_ops(view: dict[str, Any]) -> dict[str, Planned]:
    """The operations of a schedule version's view by id."""
    return {
        o["op"]: Planned(
            o["op"], o["machine"], datetime.fromisoformat(o["start_at"]), datetime.fromisoformat(o["end_at"])
        )
        for o in view["operations"]
    }


async def reports(session: AsyncSession, tenant_id: str) -> dict[str, dict[str, Any]]:
    """Every progress report of the tenant by operation id."""
    q = select(progress).where(progress.c.tenant_id == tenant_id)
    return {r["op_id"]: dict(r) for r in (await session.execute(q)).mappings().all()}


def _aware(t: datetime | None) -> datetime | None:
    """A stored time as an aware datetime (SQLite gives naive UTC back)."""
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def state_of(p: Planned, report: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The state an operator sees: reported (done, running) or planned (done, running, queued), and late."""
    started = _aware(report["started_at"]) if report else None
    finished = _aware(report["finished_at"]) if report else None
    expected = (_aware(report["expected_end"]) if report else None) or p.end
    if finished is not None:
        state = "done"
    elif started is not None:
        state = "running"
    else:
        state = "done" if p.end <= now else "running" if p.start <= now else "queued"
    reported = report is not None and (started is not None or finished is not None)
    return {
        "state": state,
        "reported": reported,
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat() if finished else None,
        "expected_end": expected.isoformat(),
        "late": finished is None and reported and now > expected,
    }


def late_operations(
    planned: dict[str, Planned], reported: dict[str, dict[str, Any]], now: datetime, late_after: int
) -> dict[str, datetime]:
    """Operations that should have ended ``late_after`` minutes ago and are not reported finished,
    with a new expected end (``late_after`` minutes from now)."""
    out: dict[str, datetime] = {}
    grace = late_after * MINUTE
    for op, p in planned.items():
        r = reported.get(op)
        if p.start > now or (r is not None and r["finished_at"] is not None):
            continue
        expected = (_aware(r["expected_end"]) if r else None) or p.end
        if now > expected + grace:
            out[op] = now + grace
    return out


async def report(
    session: AsyncSession,
    tenant_id: str,
    planned: dict[str, Planned],
    machine: str,
    op: str,
    event: Event,
    actor: str,
    expected_end: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record an operator's report on one operation of the published schedule; the row as stored."""
    when = now or datetime.now(UTC)
    p = planned.get(op)
    if p is None or p.machine != machine:
        raise NotFound(f"operation {op!r} is not on {machine!r} in the published schedule")
    old = (await reports(session, tenant_id)).get(op)
    row: dict[str, Any] = (
        dict(old) if old else {"started_at": None, "finished_at": None, "expected_end": None}
    )
    row.update(tenant_id=tenant_id, op_id=op, machine=machine, reported_by=actor, updated_at=when)
    row.setdefault("late_reported_at", None)
    if row["finished_at"] is not None:
        raise Conflict(f"operation {op} was reported finished")
    if event == "start":
        if row["started_at"] is not None:
            raise Conflict(f"operation {op} was reported started")
        row["started_at"] = when
    elif event == "finish":
        row["started_at"] = row["started_at"] or min(when, p.start)
        row["finished_at"] = when
    else:
        if expected_end is None or expected_end <= when:
            raise Conflict("a late report needs the expected end, later than now")
        if row["started_at"] is None and p.start > when:
            raise Conflict(f"operation {op} is not due to start before {p.start.isoformat()}")
        row["started_at"] = row["started_at"] or min(when, p.start)
        row["expected_end"] = expected_end
    if expected_end is not None and event == "start":
        row["expected_end"] = expected_end
    await _put(session, row)
    return row


async def _put(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store an operation's progress row (replacing the one it had)."""
    where = (progress.c.tenant_id == row["tenant_id"], progress.c.op_id == row["op_id"])
    await session.execute(delete(progress).where(*where))
    await session.execute(progress.insert().values(**row))


async def mark_late(
    session: AsyncSession, tenant_id: str, late: dict[str, datetime], planned: dict[str, Planned]
) -> None:
    """Remember that a repair was proposed for these late operations, with their new expected ends."""
    now = datetime.now(UTC)
    old = await reports(session, tenant_id)
    for op, end in late.items():
        row = dict(old.get(op) or {"started_at": None, "finished_at": None, "reported_by": "app:scheduling"})
        row.update(
            tenant_id=tenant_id,
            op_id=op,
            machine=planned[op].machine,
            expected_end=end,
            late_reported_at=now,
            updated_at=now,
        )
        await _put(session, row)
