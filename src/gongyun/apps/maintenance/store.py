"""Database access of the maintenance app: model registry, equipment, work orders (tenant-filtered)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.maintenance.errors import ModelNotFound
from gongyun.apps.maintenance.orders import FINAL, check_transition
from gongyun.apps.maintenance.tables import equipment, models, work_orders
from gongyun.errors import NotFound

MODEL_FIELDS = (
    models.c.id,
    models.c.kind,
    models.c.equipment,
    models.c.version,
    models.c.algorithm,
    models.c.active,
    models.c.meta,
    models.c.created_by,
    models.c.created_at,
    models.c.activated_at,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _row(r: Any) -> dict[str, Any]:
    return dict(r._mapping)


async def register_model(
    session: AsyncSession,
    tenant_id: str,
    *,
    kind: str,
    equipment_name: str,
    algorithm: str,
    meta: dict[str, Any],
    artifact: str,
    who: str,
    activate: bool,
) -> dict[str, Any]:
    """Record a completely trained model as the next version; activate it when asked."""
    where = and_(models.c.tenant_id == tenant_id, models.c.kind == kind, models.c.equipment == equipment_name)
    last = await session.scalar(select(func.max(models.c.version)).where(where))
    version = int(last or 0) + 1
    result = await session.execute(
        insert(models)
        .values(
            tenant_id=tenant_id,
            kind=kind,
            equipment=equipment_name,
            version=version,
            algorithm=algorithm,
            active=False,
            meta=meta,
            artifact=artifact,
            created_by=who,
            created_at=_now(),
        )
        .returning(models.c.id)
    )
    model_id = int(result.scalar_one())
    if activate:
        await activate_model(session, tenant_id, model_id)
    return await get_model(session, tenant_id, model_id)


async def get_model(
    session: AsyncSession, tenant_id: str, model_id: int, artifact: bool = False
) -> dict[str, Any]:
    """One model of the tenant (``ModelNotFound`` otherwise)."""
    cols = (*MODEL_FIELDS, models.c.artifact) if artifact else MODEL_FIELDS
    row = (
        await session.execute(select(*cols).where(models.c.tenant_id == tenant_id, models.c.id == model_id))
    ).first()
    if row is None:
        raise ModelNotFound(f"no model {model_id}")
    return _row(row)


async def list_models(session: AsyncSession, tenant_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The tenant's models, newest first."""
    q = select(*MODEL_FIELDS).where(models.c.tenant_id == tenant_id)
    if kind:
        q = q.where(models.c.kind == kind)
    rows = await session.execute(q.order_by(models.c.kind, models.c.equipment, models.c.version.desc()))
    return [_row(r) for r in rows]


async def activate_model(session: AsyncSession, tenant_id: str, model_id: int) -> dict[str, Any]:
    """Make ``model_id`` the active version of its kind and equipment."""
    m = await get_model(session, tenant_id, model_id)
    await session.execute(
        update(models)
        .where(
            models.c.tenant_id == tenant_id,
            models.c.kind == m["kind"],
            models.c.equipment == m["equipment"],
            models.c.id != model_id,
        )
        .values(active=False)
    )
    await session.execute(
        update(models).where(models.c.id == model_id).values(active=True, activated_at=_now())
    )
    return await get_model(session, tenant_id, model_id)


async def rollback_model(
    session: AsyncSession, tenant_id: str, kind: str, equipment_name: str
) -> dict[str, Any]:
    """Activate the version before the active one."""
    base = and_(models.c.tenant_id == tenant_id, models.c.kind == kind, models.c.equipment == equipment_name)
    current = await session.scalar(select(models.c.version).where(base, models.c.active.is_(True)))
    if current is None:
        raise ModelNotFound(f"no active {kind} model for {equipment_name or 'the fleet'} to roll back from")
    prev = await session.scalar(
        select(models.c.id).where(base, models.c.version < current).order_by(models.c.version.desc()).limit(1)
    )
    if prev is None:
        raise ModelNotFound(f"version {current} is the first {kind} model; nothing to roll back to")
    return await activate_model(session, tenant_id, int(prev))


async def active_models(session: AsyncSession, tenant_id: str, kind: str) -> list[dict[str, Any]]:
    """The active model of each equipment (with its artifact)."""
    rows = await session.execute(
        select(*MODEL_FIELDS, models.c.artifact).where(
            models.c.tenant_id == tenant_id, models.c.kind == kind, models.c.active.is_(True)
        )
    )
    return [_row(r) for r in rows]


async def upsert_equipment(session: AsyncSession, tenant_id: str, name: str, **values: Any) -> None:
    """Create or update the watched equipment ``name``."""
    found = await session.scalar(
        select(equipment.c.id).where(equipment.c.tenant_id == tenant_id, equipment.c.name == name)
    )
    if found is None:
        await session.execute(insert(equipment).values(tenant_id=tenant_id, name=name, **values))
    elif values:
        await session.execute(update(equipment).where(equipment.c.id == found).values(**values))


async def list_equipment(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's watched equipment and latest figures."""
    rows = await session.execute(
        select(equipment).where(equipment.c.tenant_id == tenant_id).order_by(equipment.c.name)
    )
    return [{k: v for k, v in _row(r).items() if k != "tenant_id"} for r in rows]


async def get_equipment(session: AsyncSession, tenant_id: str, name: str) -> dict[str, Any]:
    """One watched equipment (``NotFound`` otherwise)."""
    row = (
        await session.execute(
            select(equipment).where(equipment.c.tenant_id == tenant_id, equipment.c.name == name)
        )
    ).first()
    if row is None:
        raise NotFound(f"no equipment {name!r} is watched")
    return {k: v for k, v in _row(row).items() if k != "tenant_id"}


async def open_order(
    session: AsyncSession,
    tenant_id: str,
    *,
    equipment_name: str,
    title: str,
    reason: str,
    evidence: dict[str, Any],
    who: str,
) -> dict[str, Any]:
    """Open a work order."""
    now = _now()
    result = await session.execute(
        insert(work_orders)
        .values(
            tenant_id=tenant_id,
            equipment=equipment_name,
            title=title,
            reason=reason,
            state="open",
            evidence=evidence,
            created_by=who,
            created_at=now,
            updated_at=now,
        )
        .returning(work_orders.c.id)
    )
    return await get_order(session, tenant_id, int(result.scalar_one()))


async def get_order(session: AsyncSession, tenant_id: str, order_id: int) -> dict[str, Any]:
    """One work order of the tenant (``NotFound`` otherwise)."""
    row = (
        await session.execute(
            select(work_orders).where(work_orders.c.tenant_id == tenant_id, work_orders.c.id == order_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no work order {order_id}")
    return {k: v for k, v in _row(row).items() if k != "tenant_id"}


async def list_orders(
    session: AsyncSession, tenant_id: str, *, state: str | None = None, equipment_name: str | None = None
) -> list[dict[str, Any]]:
    """The tenant's work orders, newest first."""
    q = select(work_orders).where(work_orders.c.tenant_id == tenant_id)
    if state:
        q = q.where(work_orders.c.state == state)
    if equipment_name:
        q = q.where(work_orders.c.equipment == equipment_name)
    rows = await session.execute(q.order_by(work_orders.c.id.desc()))
    return [{k: v for k, v in _row(r).items() if k != "tenant_id"} for r in rows]


async def set_likely_fault(
    session: AsyncSession, tenant_id: str, equipment_name: str, fault: tuple[str, float]
) -> None:
    """Name the likely fault in the evidence of the equipment's unfinished anomaly work orders."""
    rows = await session.execute(
        select(work_orders.c.id, work_orders.c.evidence).where(
            work_orders.c.tenant_id == tenant_id,
            work_orders.c.equipment == equipment_name,
            work_orders.c.reason == "anomaly",
            work_orders.c.state.not_in(sorted(FINAL)),
        )
    )
    likely = {"fault": fault[0], "confidence": round(fault[1], 3)}
    for order_id, evidence in rows.all():
        if (evidence or {}).get("likely_fault") != likely:
            await session.execute(
                update(work_orders)
                .where(work_orders.c.id == order_id)
                .values(evidence={**(evidence or {}), "likely_fault": likely})
            )


async def has_open_order(session: AsyncSession, tenant_id: str, equipment_name: str, reason: str) -> bool:
    """Whether an unfinished work order for this equipment and reason exists."""
    n = await session.scalar(
        select(func.count())
        .select_from(work_orders)
        .where(
            work_orders.c.tenant_id == tenant_id,
            work_orders.c.equipment == equipment_name,
            work_orders.c.reason == reason,
            work_orders.c.state.not_in(sorted(FINAL)),
        )
    )
    return bool(n)


async def move_order(
    session: AsyncSession,
    tenant_id: str,
    order_id: int,
    target: str,
    *,
    assignee: str | None = None,
    notes: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Move a work order along its lifecycle (closing notes and the label found are kept)."""
    order = await get_order(session, tenant_id, order_id)
    check_transition(order["state"], target, assignee=assignee or order["assignee"], notes=notes)
    values: dict[str, Any] = {"state": target, "updated_at": _now()}
    if assignee:
        values["assignee"] = assignee
    if notes:
        values["notes"] = notes
    if label:
        values["label"] = label
    if target in FINAL:
        values["closed_at"] = values["updated_at"]
    await session.execute(update(work_orders).where(work_orders.c.id == order_id).values(**values))
    return await get_order(session, tenant_id, order_id)


async def labels(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """What operators found on closed work orders: (equipment, label, window) for the next training."""
    rows = await session.execute(
        select(work_orders.c.id, work_orders.c.equipment, work_orders.c.label, work_orders.c.evidence)
        .where(
            work_orders.c.tenant_id == tenant_id,
            work_orders.c.state == "done",
            work_orders.c.label.is_not(None),
        )
        .order_by(work_orders.c.id)
    )
    return [
        {
            "order": r.id,
            "equipment": r.equipment,
            "label": r.label,
            "window": (r.evidence or {}).get("window"),
        }
        for r in rows
    ]
