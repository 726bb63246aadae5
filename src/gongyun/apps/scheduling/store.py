"""Between the tables and the domain: build the instance, save and read schedule versions, solve, repair.

Everything here takes a session and a tenant id; the routes and the worker are thin callers.
Solves run in a thread (CP-SAT releases the GIL); their progress is kept in memory per tenant.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.scheduling.domain.compiled import compile_instance, critical_path
from gongyun.apps.scheduling.domain.model import (
    Assignment,
    Instance,
    Machine,
    Objective,
    Operation,
    Order,
    Schedule,
)
from gongyun.apps.scheduling.domain.parsers import instance_from_json
from gongyun.apps.scheduling.domain.repair import Disruption, repair
from gongyun.apps.scheduling.domain.search import Progress
from gongyun.apps.scheduling.domain.solve import SolveOptions, solve
from gongyun.apps.scheduling.progress import planned_ops, reports, state_of
from gongyun.apps.scheduling.settings import Settings
from gongyun.apps.scheduling.tables import machines, orders, routings, schedules
from gongyun.errors import Conflict, NotFound

MINUTE = timedelta(minutes=1)
_progress: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def now_utc() -> datetime:
    """The current time, to the minute (time zero of a new schedule)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def minutes(t: datetime | None, epoch: datetime) -> int | None:
    """Whole minutes from ``epoch`` to ``t`` (rounded up), None for None."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = (t - epoch).total_seconds() / 60
    return int(-(-delta // 1))


def at(epoch: datetime, m: int) -> str:
    """The ISO time ``m`` minutes after ``epoch``."""
    return (epoch + m * MINUTE).isoformat()


def progress_of(tenant_id: str) -> dict[str, Any]:
    """The tenant's current or last solve progress."""
    with _lock:
        p = _progress.get(tenant_id)
        return dict(p, history=list(p["history"])) if p else {"running": False, "history": []}


def _progress_fn(tenant_id: str, kind: str) -> Any:
    with _lock:
        _progress[tenant_id] = {
            "running": True,
            "kind": kind,
            "history": [],
            "started_at": now_utc().isoformat(),
        }

    def on(p: Progress) -> None:
        with _lock:
            _progress[tenant_id]["history"].append(
                {"t": round(p.elapsed, 2), "value": p.value, "bound": p.bound, "phase": p.phase}
            )

    return on


def _done(tenant_id: str) -> None:
    with _lock:
        if tenant_id in _progress:
            _progress[tenant_id]["running"] = False


async def load_instance(
    session: AsyncSession, tenant_id: str, epoch: datetime, name: str = "plan"
) -> Instance:
    """The tenant's machines, orders and routings as an instance in minutes from ``epoch``."""
    ms = (await session.execute(select(machines).where(machines.c.tenant_id == tenant_id))).mappings().all()
    os_ = (await session.execute(select(orders).where(orders.c.tenant_id == tenant_id))).mappings().all()
    rs = (
        (
            await session.execute(
                select(routings).where(routings.c.tenant_id == tenant_id).order_by(routings.c.seq)
            )
        )
        .mappings()
        .all()
    )
    mach = []
    for m in sorted(ms, key=lambda r: r["id"]):
        wins = []
        for a, b in m["unavailable"] or []:
            s, e = minutes(datetime.fromisoformat(a), epoch), minutes(datetime.fromisoformat(b), epoch)
            if s is not None and e is not None and e > 0 and e > s:
                wins.append((max(0, s), e))
        mach.append(Machine(m["id"], m["name"], m["equipment"], tuple(wins)))
    ords = [
        Order(
            o["id"],
            o["product"],
            o["quantity"],
            max(0, minutes(o["release_at"], epoch) or 0),
            _clip(minutes(o["due_at"], epoch), o["release_at"], epoch),
            _clip(minutes(o["deadline_at"], epoch), o["release_at"], epoch),
            o["weight"],
            o["lot"],
        )
        for o in sorted(os_, key=lambda r: r["id"])
    ]
    ops = [
        Operation(
            r["op_id"],
            r["order_id"],
            {str(k): int(v) for k, v in (r["durations"] or {}).items()},
            tuple(r["predecessors"] or ()),
            r["family"],
            r["name"],
        )
        for r in rs
    ]
    return Instance(name, mach, ords, ops)


def _clip(m: int | None, release: datetime, epoch: datetime) -> int | None:
    """A due date or deadline in minutes, never before the (clipped) release."""
    if m is None:
        return None
    return max(m, 0, minutes(release, epoch) or 0)


async def _next_version(session: AsyncSession, tenant_id: str) -> int:
    q = select(func.max(schedules.c.version)).where(schedules.c.tenant_id == tenant_id)
    return int((await session.execute(q)).scalar() or 0) + 1


async def save(
    session: AsyncSession,
    tenant_id: str,
    kind: str,
    epoch: datetime,
    inst: Instance,
    sched: Schedule,
    base_version: int | None = None,
    changes: list[dict[str, Any]] | None = None,
    reason: str = "",
) -> int:
    """Store ``sched`` as the tenant's next version, proposed."""
    version = await _next_version(session, tenant_id)
    await session.execute(
        schedules.insert().values(
            tenant_id=tenant_id,
            version=version,
            kind=kind,
            status="proposed",
            base_version=base_version,
            epoch=epoch,
            objective=sched.objective.value,
            value=sched.value,
            bound=sched.bound,
            makespan=sched.makespan,
            reason=reason[:500],
            instance=inst.to_dict(),
            assignments=[[a.op, a.machine, a.start, a.end] for a in sched.assignments],
            stats={k: v for k, v in sched.stats.items() if k != "history"} | {"status": sched.status},
            changes=changes,
            created_at=datetime.now(UTC),
        )
    )
    return version


async def row(session: AsyncSession, tenant_id: str, version: int) -> dict[str, Any]:
    """One schedule version's row (NotFound when the tenant has no such version)."""
    q = select(schedules).where(schedules.c.tenant_id == tenant_id, schedules.c.version == version)
    r = (await session.execute(q)).mappings().first()
    if r is None:
        raise NotFound(f"no schedule version {version}")
    return dict(r)


async def published(session: AsyncSession, tenant_id: str) -> dict[str, Any] | None:
    """The tenant's published schedule, if any."""
    q = select(schedules).where(schedules.c.tenant_id == tenant_id, schedules.c.status == "published")
    r = (await session.execute(q)).mappings().first()
    return dict(r) if r else None


def _schedule(r: dict[str, Any]) -> tuple[Instance, Schedule]:
    inst = instance_from_json(r["instance"])
    sched = Schedule(
        inst.name,
        [Assignment(op, m, int(s), int(e)) for op, m, s, e in r["assignments"]],
        Objective(r["objective"]),
        None if r["value"] is None else int(r["value"]),
        None if r["bound"] is None else int(r["bound"]),
    )
    return inst, sched


def view(r: dict[str, Any]) -> dict[str, Any]:
    """A schedule version as the API shows it: operations with times, critical path, late orders."""
    inst, sched = _schedule(r)
    epoch = r["epoch"] if r["epoch"].tzinfo else r["epoch"].replace(tzinfo=UTC)
    c = compile_instance(inst)
    crit: list[str] = []
    if sched.assignments:
        m, s = c.from_schedule(sched)
        crit = [inst.operations[i].id for i in critical_path(c, m, s)]
    ends: dict[str, int] = {}
    op_order = {o.id: o.order for o in inst.operations}
    for a in sched.assignments:
        ends[op_order[a.op]] = max(ends.get(op_order[a.op], 0), a.end)
    late = [o.id for o in inst.orders if o.due is not None and ends.get(o.id, 0) > o.due]
    return {
        "version": r["version"],
        "kind": r["kind"],
        "status": r["status"],
        "base_version": r["base_version"],
        "epoch": epoch.isoformat(),
        "objective": r["objective"],
        "value": r["value"],
        "bound": r["bound"],
        "gap": sched.gap,
        "makespan": r["makespan"],
        "reason": r["reason"],
        "stats": r["stats"],
        "changes": r["changes"] or [],
        "created_at": r["created_at"].isoformat() if r["created_at"] else None,
        "decided_by": r["decided_by"],
        "machines": [
            {"id": m.id, "name": m.name or m.id, "unavailable": list(m.unavailable)} for m in inst.machines
        ],
        "orders": [
            {
                "id": o.id,
                "product": o.product,
                "due": o.due,
                "lot": o.lot,
                "late": o.id in late,
                "end": ends.get(o.id),
            }
            for o in inst.orders
        ],
        "operations": [
            {
                "op": a.op,
                "order": op_order[a.op],
                "machine": a.machine,
                "start": a.start,
                "end": a.end,
                "start_at": at(epoch, a.start),
                "end_at": at(epoch, a.end),
                "critical": a.op in crit,
            }
            for a in sorted(sched.assignments, key=lambda a: (a.machine, a.start))
        ],
        "critical_path": crit,
        "late_orders": late,
    }


async def run_solve(session: AsyncSession, tenant_id: str, settings: Settings, reason: str = "") -> int:
    """Solve the tenant's current orders; store the result as a proposed version."""
    epoch = now_utc()
    inst = await load_instance(session, tenant_id, epoch)
    if not inst.operations:
        raise Conflict("there are no orders with operations to schedule")
    inst.check()
    opts = SolveOptions(
        objective=Objective(settings.objective),
        time_limit=settings.time_limit_s,
        workers=settings.workers,
        on_progress=_progress_fn(tenant_id, "solve"),
    )
    try:
        sched = await asyncio.to_thread(solve, inst, opts)
    finally:
        _done(tenant_id)
    if sched.status == "infeasible":
        raise Conflict(
            "no schedule: " + "; ".join(sched.stats.get("reasons", [])), reasons=sched.stats.get("reasons")
        )
    return await save(session, tenant_id, "solve", epoch, inst, sched, reason=reason or "solve")


async def run_repair(
    session: AsyncSession,
    tenant_id: str,
    settings: Settings,
    machine: str | None,
    until: datetime | None = None,
    reason: str = "",
    late: dict[str, datetime] | None = None,
) -> int:
    """Propose a repair of the published schedule: ``machine`` went down (until ``until``), operations
    run late (``late``: op id -> new expected end), or (neither) new and rush orders are fitted in.
    Operations reported started (and late ones) stay put, whatever the plan said."""
    base = await published(session, tenant_id)
    if base is None:
        raise Conflict("no published schedule to repair")
    epoch = base["epoch"] if base["epoch"].tzinfo else base["epoch"].replace(tzinfo=UTC)
    now = max(0, minutes(datetime.now(UTC), epoch) or 0)
    inst = await load_instance(session, tenant_id, epoch)
    if machine is not None and machine not in inst.machine_index:
        raise NotFound(f"no machine {machine!r}")
    _, old = _schedule(base)
    event = Disruption(
        now=now,
        late={op: minutes(t, epoch) or 0 for op, t in (late or {}).items()},
        started={op for op, r in (await reports(session, tenant_id)).items() if r["started_at"]}
        | set(late or ()),
    )
    if machine is not None:
        end = minutes(until, epoch) if until else now + settings.repair_minutes
        event.down[machine] = max(now + 1, end or 0)
    opts = SolveOptions(
        objective=Objective(settings.objective),
        time_limit=settings.repair_time_limit_s,
        workers=settings.workers,
        on_progress=_progress_fn(tenant_id, "repair"),
    )
    try:
        result = await asyncio.to_thread(repair, inst, old, event, opts)
    finally:
        _done(tenant_id)
    sched = replace(result.schedule)
    if machine is not None:
        sched.stats["down"] = {"machine": machine, "from": now, "until": event.down[machine]}
    if not reason:
        reason = f"machine {machine} down" if machine else "late operations" if late else "new orders"
    return await save(
        session,
        tenant_id,
        "repair",
        epoch,
        result.instance,
        sched,
        base_version=base["version"],
        changes=result.changes,
        reason=reason,
    )


async def decide(
    session: AsyncSession, tenant_id: str, version: int, accept: bool, actor: str
) -> dict[str, Any]:
    """Accept (publish) or reject a proposed version."""
    r = await row(session, tenant_id, version)
    if r["status"] != "proposed":
        raise Conflict(f"version {version} is {r['status']}, not proposed")
    when = datetime.now(UTC)
    if accept:
        await session.execute(
            update(schedules)
            .where(schedules.c.tenant_id == tenant_id, schedules.c.status == "published")
            .values(status="superseded")
        )
    await session.execute(
        update(schedules)
        .where(schedules.c.tenant_id == tenant_id, schedules.c.version == version)
        .values(status="published" if accept else "rejected", decided_by=actor, decided_at=when)
    )
    return await row(session, tenant_id, version)


def dispatch_list(
    r: dict[str, Any],
    machine: str,
    now: datetime | None = None,
    reported: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The published schedule's operations on ``machine`` in order, with their state at ``now``
    (as reported by operators where they did, as planned elsewhere)."""
    v = view(r)
    when = now or datetime.now(UTC)
    planned = planned_ops(v)
    orders_by_id = {o["id"]: o for o in v["orders"]}
    out = []
    for op in v["operations"]:
        if op["machine"] != machine:
            continue
        o = orders_by_id.get(op["order"], {})
        out.append(
            {
                "op": op["op"],
                "order": op["order"],
                "product": o.get("product"),
                "lot": o.get("lot"),
                "start_at": op["start_at"],
                "end_at": op["end_at"],
                **state_of(planned[op["op"]], (reported or {}).get(op["op"]), when),
            }
        )
    return out
