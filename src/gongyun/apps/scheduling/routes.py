"""The scheduling API, mounted under ``/api/v1/apps/scheduling/``.

Reading (schedules, dispatch lists, progress) needs ``apps:read``; planning (machines, orders,
solving, accepting or rejecting a proposal, asking for a repair) needs ``apps:write``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, StrictFloat, StrictInt
from sqlalchemy import delete, select

from gongyun.apps import AppCtx, IsoTime, RowId, needs
from gongyun.apps.scheduling import progress, store
from gongyun.apps.scheduling.errors import InstanceInvalid
from gongyun.apps.scheduling.settings import Settings
from gongyun.apps.scheduling.tables import machines, orders, routings, schedules
from gongyun.errors import NotFound
from gongyun.security.rbac import Perm

router = APIRouter()
Reader = Annotated[AppCtx, Depends(needs(Perm.apps_read))]
Planner = Annotated[AppCtx, Depends(needs(Perm.apps_write))]
Operator = Annotated[AppCtx, Depends(needs(Perm.alarms_ack))]  # shop-floor actions, as in the OEE app
ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class MachineIn(BaseModel):
    """A machine: equipment of the asset model, the tag that says it runs, its downtime windows."""

    name: str = Field(default="", max_length=200)
    equipment: str | None = Field(
        default=None, max_length=500, description="asset-model equipment path or id"
    )
    watch_tag: str | None = Field(default=None, max_length=300, description="device/tag of a running signal")
    down_below: StrictFloat = Field(
        default=0.5, description="the machine is down while watch_tag reads below this"
    )
    oee_machine: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="an OEE machine id: down while the OEE app says planned or unplanned down",
    )
    unavailable: list[tuple[IsoTime, IsoTime]] = Field(default_factory=list, max_length=1000)


class OperationIn(BaseModel):
    """One routing step: eligible machines with minutes on each, predecessors (default: the previous step)."""

    id: str = ID
    name: str = Field(default="", max_length=200)
    durations: dict[str, StrictInt] = Field(description="machine id -> minutes", max_length=100)
    predecessors: list[str] | None = None
    family: str | None = Field(default=None, max_length=64)


class OrderIn(BaseModel):
    """A production order with its routing."""

    id: str = ID
    product: str = Field(default="", max_length=200)
    quantity: StrictInt = Field(default=1, ge=1)
    release_at: IsoTime | None = None
    due_at: IsoTime | None = None
    deadline_at: IsoTime | None = None
    weight: StrictInt = Field(default=1, ge=0, le=1000)
    lot: str | None = Field(default=None, max_length=200)
    operations: list[OperationIn] = Field(min_length=1, max_length=500)


class ReportIn(BaseModel):
    """An operator's report on one operation: started, finished, or running late (with its expected end)."""

    event: Literal["start", "finish", "late"]
    expected_end: IsoTime | None = None


class RepairIn(BaseModel):
    """What happened: a machine went down (until when; default now + the settings' repair time),
    operations run late (op id -> new expected end), or neither: fit new and rush orders in."""

    machine: str | None = Field(default=None, min_length=1, max_length=64)
    late: dict[str, IsoTime] = Field(default_factory=dict, max_length=1000)
    until: IsoTime | None = None
    reason: str = Field(default="", max_length=300)


def _settings(ctx: AppCtx) -> Settings:
    return ctx.settings_as(Settings)


@router.get("/machines")
async def list_machines(ctx: Reader) -> list[dict[str, Any]]:
    """The tenant's machines."""
    q = select(machines).where(machines.c.tenant_id == ctx.tenant_id).order_by(machines.c.id)
    return [
        {k: v for k, v in r.items() if k != "tenant_id"}
        for r in (await ctx.session.execute(q)).mappings().all()
    ]


@router.put("/machines/{machine_id}")
async def put_machine(machine_id: str, body: MachineIn, ctx: Planner) -> dict[str, Any]:
    """Create or replace a machine."""
    for a, b in body.unavailable:
        if b <= a:
            raise InstanceInvalid(f"machine {machine_id}: unavailable window ends before it starts")
    values = {
        "name": body.name,
        "equipment": body.equipment,
        "watch_tag": body.watch_tag,
        "down_below": body.down_below,
        "oee_machine": body.oee_machine,
        "unavailable": [[a.isoformat(), b.isoformat()] for a, b in body.unavailable],
    }
    await ctx.session.execute(
        delete(machines).where(machines.c.tenant_id == ctx.tenant_id, machines.c.id == machine_id)
    )
    await ctx.session.execute(machines.insert().values(tenant_id=ctx.tenant_id, id=machine_id, **values))
    await ctx.audit("machine.put", machine_id)
    return {"id": machine_id, **values}


@router.get("/orders")
async def list_orders(ctx: Reader) -> list[dict[str, Any]]:
    """The tenant's orders with their routings."""
    os_ = (
        (await ctx.session.execute(select(orders).where(orders.c.tenant_id == ctx.tenant_id)))
        .mappings()
        .all()
    )
    rs = (
        (await ctx.session.execute(select(routings).where(routings.c.tenant_id == ctx.tenant_id)))
        .mappings()
        .all()
    )
    by: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rs, key=lambda r: r["seq"]):
        by.setdefault(r["order_id"], []).append(
            {
                "id": r["op_id"],
                "name": r["name"],
                "durations": r["durations"],
                "predecessors": r["predecessors"],
            }
        )
    out = []
    for o in sorted(os_, key=lambda o: o["id"]):
        d = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in o.items() if k != "tenant_id"}
        out.append(d | {"operations": by.get(o["id"], [])})
    return out


@router.post("/orders", status_code=201)
async def post_order(body: OrderIn, ctx: Planner) -> dict[str, Any]:
    """Add (or replace) an order; refused with every problem when its routing is not sound."""
    tid = ctx.tenant_id
    known = {
        r[0] for r in (await ctx.session.execute(select(machines.c.id).where(machines.c.tenant_id == tid)))
    }
    release = body.release_at or datetime.now(UTC)
    problems = []
    if body.due_at is not None and body.due_at < release:
        problems.append(f"order {body.id}: due date is before the release date")
    if body.deadline_at is not None and body.deadline_at < release:
        problems.append(f"order {body.id}: deadline is before the release date")
    ids = [op.id for op in body.operations]
    for k, op in enumerate(body.operations):
        if not op.durations:
            problems.append(f"operation {op.id}: no eligible machine")
        for m, t in op.durations.items():
            if m not in known:
                problems.append(f"operation {op.id}: unknown machine {m!r}")
            if t <= 0:
                problems.append(f"operation {op.id}: processing time {t} on {m} is not positive")
        for p in op.predecessors or []:
            if p not in ids:
                problems.append(f"operation {op.id}: unknown predecessor {p!r}")
        if k and op.predecessors is None:
            op.predecessors = [ids[k - 1]]
    if len(set(ids)) != len(ids):
        problems.append(f"order {body.id}: duplicate operation ids")
    if not problems:
        from gongyun.apps.scheduling.domain.model import Instance, Machine, Operation, Order

        trial = Instance(
            body.id,
            [Machine(m) for m in known],
            [Order(body.id)],
            [Operation(op.id, body.id, op.durations, tuple(op.predecessors or ())) for op in body.operations],
        )
        problems = [p for p in trial.problems() if "cycle" in p]
    if problems:
        raise InstanceInvalid("; ".join(problems), problems=problems)
    await ctx.session.execute(
        delete(routings).where(routings.c.tenant_id == tid, routings.c.order_id == body.id)
    )
    await ctx.session.execute(delete(orders).where(orders.c.tenant_id == tid, orders.c.id == body.id))
    await ctx.session.execute(
        orders.insert().values(
            tenant_id=tid,
            id=body.id,
            product=body.product,
            quantity=body.quantity,
            release_at=release,
            due_at=body.due_at,
            deadline_at=body.deadline_at,
            weight=body.weight,
            lot=body.lot,
            created_at=datetime.now(UTC),
        )
    )
    for k, op in enumerate(body.operations):
        await ctx.session.execute(
            routings.insert().values(
                tenant_id=tid,
                order_id=body.id,
                op_id=f"{body.id}.{op.id}" if not op.id.startswith(f"{body.id}.") else op.id,
                seq=k,
                name=op.name,
                durations=op.durations,
                predecessors=[
                    f"{body.id}.{p}" if not p.startswith(f"{body.id}.") else p for p in op.predecessors or []
                ],
                family=op.family,
            )
        )
    await ctx.audit("order.put", body.id)
    return {"id": body.id, "operations": len(body.operations)}


@router.delete("/orders/{order_id}", status_code=204)
async def delete_order(order_id: str, ctx: Planner) -> Response:
    """Remove an order and its routing."""
    tid = ctx.tenant_id
    res = await ctx.session.execute(delete(orders).where(orders.c.tenant_id == tid, orders.c.id == order_id))
    if not res.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no order {order_id!r}")
    await ctx.session.execute(
        delete(routings).where(routings.c.tenant_id == tid, routings.c.order_id == order_id)
    )
    await ctx.audit("order.delete", order_id)
    return Response(status_code=204)


@router.post("/solve", status_code=201)
async def post_solve(ctx: Planner) -> dict[str, Any]:
    """Schedule the current orders (time limit and workers from the settings): a proposed version."""
    version = await store.run_solve(ctx.session, ctx.tenant_id, _settings(ctx))
    await ctx.audit("solve", str(version))
    return store.view(await store.row(ctx.session, ctx.tenant_id, version))


@router.post("/repair", status_code=201)
async def post_repair(body: RepairIn, ctx: Planner) -> dict[str, Any]:
    """Propose a repair of the published schedule: a machine down, late operations, or rush orders."""
    version = await store.run_repair(
        ctx.session, ctx.tenant_id, _settings(ctx), body.machine, body.until, body.reason, body.late
    )
    await ctx.audit("repair", str(version), machine=body.machine)
    return store.view(await store.row(ctx.session, ctx.tenant_id, version))


@router.get("/progress")
async def get_progress(ctx: Reader) -> dict[str, Any]:
    """The running (or last) solve's best objective and bound over time."""
    return store.progress_of(ctx.tenant_id)


@router.get("/schedules")
async def list_schedules(ctx: Reader) -> list[dict[str, Any]]:
    """Every version, newest first (without operations)."""
    cols = [c for c in schedules.c if c.name not in ("instance", "assignments", "changes", "tenant_id")]
    q = select(*cols).where(schedules.c.tenant_id == ctx.tenant_id).order_by(schedules.c.version.desc())
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
        for r in (await ctx.session.execute(q)).mappings().all()
    ]


@router.get("/schedules/current")
async def current(ctx: Reader) -> dict[str, Any]:
    """The published schedule."""
    r = await store.published(ctx.session, ctx.tenant_id)
    if r is None:
        raise NotFound("no published schedule")
    return store.view(r)


@router.get("/schedules/{version}")
async def get_schedule(version: RowId, ctx: Reader) -> dict[str, Any]:
    """One version with its operations, critical path, late orders and (for a repair) its changes."""
    return store.view(await store.row(ctx.session, ctx.tenant_id, version))


@router.post("/schedules/{version}/accept")
async def accept(version: RowId, ctx: Planner) -> dict[str, Any]:
    """Publish a proposed version (the published one is superseded); dispatch lists follow it."""
    r = await store.decide(ctx.session, ctx.tenant_id, version, True, ctx.actor)
    await ctx.audit("accept", str(version))
    return store.view(r)


@router.post("/schedules/{version}/reject")
async def reject(version: RowId, ctx: Planner) -> dict[str, Any]:
    """Reject a proposed version."""
    r = await store.decide(ctx.session, ctx.tenant_id, version, False, ctx.actor)
    await ctx.audit("reject", str(version))
    return store.view(r)


@router.get("/dispatch/{machine_id}")
async def dispatch(machine_id: str, ctx: Reader) -> dict[str, Any]:
    """The operator's dispatch list of a machine from the published schedule."""
    r = await store.published(ctx.session, ctx.tenant_id)
    if r is None:
        raise NotFound("no published schedule")
    reported = await progress.reports(ctx.session, ctx.tenant_id)
    return {
        "machine": machine_id,
        "version": r["version"],
        "operations": store.dispatch_list(r, machine_id, reported=reported),
    }


@router.post("/dispatch/{machine_id}/{op_id}")
async def report(machine_id: str, op_id: str, body: ReportIn, ctx: Operator) -> dict[str, Any]:
    """An operator reports an operation started, finished or running late; a late one (past its
    planned end) gets a repair proposal when the settings allow automatic repairs."""
    r = await store.published(ctx.session, ctx.tenant_id)
    if r is None:
        raise NotFound("no published schedule")
    planned = progress.planned_ops(store.view(r))
    row = await progress.report(
        ctx.session, ctx.tenant_id, planned, machine_id, op_id, body.event, ctx.actor, body.expected_end
    )
    await ctx.audit(f"operation.{body.event}", op_id, machine=machine_id)
    out: dict[str, Any] = {
        "op": op_id,
        "machine": machine_id,
        **progress.state_of(planned[op_id], row, datetime.now(UTC)),
        "repair_version": None,
    }
    settings = _settings(ctx)
    end = body.expected_end
    if body.event == "late" and end is not None and end > planned[op_id].end and settings.auto_repair:
        late = {op_id: end}
        await progress.mark_late(ctx.session, ctx.tenant_id, late, planned)
        version = await store.run_repair(
            ctx.session, ctx.tenant_id, settings, None, reason=f"{op_id} running late", late=late
        )
        await ctx.audit("repair", str(version), late=op_id)
        out["repair_version"] = version
    return out
