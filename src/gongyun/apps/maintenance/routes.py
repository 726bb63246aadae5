"""The maintenance app's API, mounted under ``/api/v1/apps/maintenance/``."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from gongyun.apps import AppCtx, IsoTime, RowId, needs
from gongyun.apps.maintenance import store
from gongyun.apps.maintenance.errors import ModelNotFound
from gongyun.apps.maintenance.health import Equipment, rollup
from gongyun.apps.maintenance.service import (
    learn_detector,
    predict_rul_from_telemetry,
    recorded_failures,
    train_rul_from_telemetry,
)
from gongyun.apps.maintenance.worker import registry_changed
from gongyun.security.rbac import Perm

router = APIRouter()
Read = Annotated[AppCtx, Depends(needs(Perm.assets_read))]
Engineer = Annotated[AppCtx, Depends(needs(Perm.alarms_write))]
Operator = Annotated[AppCtx, Depends(needs(Perm.alarms_ack))]


class WatchIn(BaseModel):
    """Where an equipment sits in the asset tree (``site/area/line``) and its weight in roll-ups."""

    path: str = Field(default="", max_length=500)
    weight: float = Field(default=1.0, gt=0, le=1000)


class DetectorIn(BaseModel):
    """Train an anomaly detector for ``equipment`` from its tags' stored values in [start, end)."""

    equipment: str = Field(min_length=1, max_length=200)
    tags: list[str] = Field(min_length=1, max_length=64)
    start: IsoTime
    end: IsoTime
    window: int = Field(default=30, ge=2, le=3600)
    activate: bool = True


class RulTrainIn(BaseModel):
    """Train a RUL model from run-to-failure histories in the C-MAPSS text format."""

    data: str = Field(min_length=1, max_length=50_000_000)
    sensors: list[str] | None = None
    folds: int = Field(default=0, ge=0, le=10)
    window: int = Field(default=30, ge=2, le=500)
    cap: int = Field(default=125, ge=10, le=10_000)
    activate: bool = True


class TelemetryRulIn(BaseModel):
    """Train an equipment's RUL model on its stored telemetry between failures recorded after ``start``."""

    equipment: str = Field(min_length=1, max_length=200)
    tags: list[str] = Field(min_length=1, max_length=64)
    start: IsoTime
    step_s: float = Field(default=10.0, ge=0.1, le=86_400)
    window: int = Field(default=30, ge=2, le=500)
    cap_s: float = Field(default=3600.0, gt=0, le=10_000_000)
    folds: int = Field(default=0, ge=0, le=10)
    activate: bool = True


class RulPredictIn(BaseModel):
    """Histories (C-MAPSS text) to predict with the tenant's active RUL model."""

    data: str = Field(min_length=1, max_length=50_000_000)


class RollbackIn(BaseModel):
    """Which model family to roll back."""

    kind: Literal["rul", "anomaly"]
    equipment: str = ""


class OrderIn(BaseModel):
    """A work order opened by hand."""

    equipment: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=300)
    evidence: dict[str, Any] = Field(default_factory=dict)


class MoveIn(BaseModel):
    """A step of a work order's lifecycle; closing as done needs ``notes`` (``label``: what was found)."""

    state: Literal["open", "assigned", "in_progress", "done", "cancelled"]
    assignee: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=10_000)
    label: str | None = Field(default=None, max_length=64)


@router.get("/equipment")
async def fleet(ctx: Read) -> dict[str, Any]:
    """Every watched equipment with its health, and the roll-up by asset path."""
    items = await store.list_equipment(ctx.session, ctx.tenant_id)
    groups = rollup(Equipment(e["name"], e["path"], e["health"], e["weight"]) for e in items)
    return {"equipment": items, "groups": [g.__dict__ for g in groups]}


@router.put("/equipment/{name}")
async def watch(name: str, body: WatchIn, ctx: Engineer) -> dict[str, Any]:
    """Watch an equipment (or move it in the tree)."""
    await store.upsert_equipment(
        ctx.session, ctx.tenant_id, name, path=body.path.strip("/"), weight=body.weight
    )
    await ctx.audit("equipment.watch", name, path=body.path)
    return await store.get_equipment(ctx.session, ctx.tenant_id, name)


@router.get("/equipment/{name}")
async def equipment_view(name: str, ctx: Read) -> dict[str, Any]:
    """One equipment: latest figures, its detector, its work orders."""
    eq = await store.get_equipment(ctx.session, ctx.tenant_id, name)
    orders = await store.list_orders(ctx.session, ctx.tenant_id, equipment_name=name)
    models = [m for m in await store.list_models(ctx.session, ctx.tenant_id) if m["equipment"] in (name, "")]
    return {"equipment": eq, "work_orders": orders, "models": models}


@router.get("/models")
async def list_models(ctx: Read, kind: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
    """The tenant's model registry, newest version first."""
    return await store.list_models(ctx.session, ctx.tenant_id, kind)


@router.post("/models/{model_id}/activate")
async def activate(model_id: RowId, ctx: Engineer) -> dict[str, Any]:
    """Make a version the active one."""
    m = await store.activate_model(ctx.session, ctx.tenant_id, model_id)
    await ctx.audit("model.activate", str(model_id), kind=m["kind"], version=m["version"])
    await ctx.session.commit()
    registry_changed()
    return m


@router.post("/models/rollback")
async def rollback(body: RollbackIn, ctx: Engineer) -> dict[str, Any]:
    """Activate the version before the active one."""
    m = await store.rollback_model(ctx.session, ctx.tenant_id, body.kind, body.equipment)
    await ctx.audit("model.rollback", str(m["id"]), kind=m["kind"], version=m["version"])
    await ctx.session.commit()
    registry_changed()
    return m


@router.post("/detectors", status_code=201)
async def train_detector(body: DetectorIn, ctx: Engineer) -> dict[str, Any]:
    """Learn a detector from a baseline window of stored telemetry (refused when too short)."""
    return await learn_detector(
        ctx, body.equipment, body.tags, body.start, body.end, window=body.window, activate=body.activate
    )


def _train_rul(body: RulTrainIn, who: str) -> tuple[dict[str, Any], str]:
    from gongyun.apps.maintenance import cmapss, rul
    from gongyun.apps.maintenance.features import FeatureSpec

    h = cmapss.parse_text(body.data, "data")
    with tempfile.TemporaryDirectory() as tmp:
        model = rul.train_to_directory(
            h,
            Path(tmp) / "model",
            folds=body.folds,
            who=who,
            sensors=body.sensors,
            spec=FeatureSpec(window=body.window),
            cap=body.cap,
        )
        return model.meta, rul.to_artifact(Path(tmp) / "model")


@router.post("/rul/models", status_code=201)
async def train_rul(body: RulTrainIn, ctx: Engineer) -> dict[str, Any]:
    """Train a fleet-wide RUL model; it is registered only once completely trained."""
    meta, artifact = await asyncio.to_thread(_train_rul, body, ctx.actor)
    slim = {k: v for k, v in meta.items() if k not in {"normaliser", "files", "ridge"}}
    m = await store.register_model(
        ctx.session,
        ctx.tenant_id,
        kind="rul",
        equipment_name="",
        algorithm=str(meta["algorithm"]),
        meta=slim,
        artifact=artifact,
        who=ctx.actor,
        activate=body.activate,
    )
    await ctx.audit("model.train", str(m["id"]), kind="rul", version=m["version"])
    return m


@router.post("/rul/telemetry-models", status_code=201)
async def train_rul_telemetry(body: TelemetryRulIn, ctx: Engineer) -> dict[str, Any]:
    """Train an equipment's RUL model from its stored telemetry between recorded failures."""
    return await train_rul_from_telemetry(
        ctx,
        body.equipment,
        body.tags,
        body.start,
        step_s=body.step_s,
        window=body.window,
        cap_s=body.cap_s,
        folds=body.folds,
        activate=body.activate,
    )


@router.get("/equipment/{name}/failures")
async def failures(name: str, ctx: Read) -> list[dict[str, Any]]:
    """The equipment's failures recorded by closed work orders (done, labelled with a fault)."""
    return [
        {"at": f.at.isoformat(), "fault": f.fault, "work_order": f.order}
        for f in await recorded_failures(ctx, name)
    ]


class RulAtIn(BaseModel):
    """The instant to estimate at (default: now)."""

    at: datetime | None = None


@router.post("/equipment/{name}/rul")
async def equipment_rul(name: str, ctx: Read, body: RulAtIn | None = None) -> dict[str, Any]:
    """The equipment's RUL (seconds, 10-90 % interval) from its telemetry since its last failure."""
    at = body.at if body is not None and body.at is not None else datetime.now(UTC)
    result = await predict_rul_from_telemetry(ctx, name, at)
    await ctx.session.commit()
    return result


@router.post("/rul/predict")
async def predict_rul(body: RulPredictIn, ctx: Read) -> dict[str, Any]:
    """Each unit's RUL at its last cycle, with the 10-90 % interval, from the active model."""
    from gongyun.apps.maintenance import cmapss, rul

    active = [m for m in await store.active_models(ctx.session, ctx.tenant_id, "rul") if m["equipment"] == ""]
    if not active:
        raise ModelNotFound("this tenant has no active RUL model")

    def run() -> list[tuple[int, float, float, float]]:
        model = rul.from_artifact(active[0]["artifact"])
        return model.predict_last(cmapss.parse_text(body.data, "data"))

    rows = await asyncio.to_thread(run)
    return {
        "model": {"id": active[0]["id"], "version": active[0]["version"]},
        "units": [{"unit": u, "rul": r, "low": lo, "high": hi} for u, r, lo, hi in rows],
    }


@router.get("/work-orders")
async def orders(
    ctx: Read,
    state: Annotated[str | None, Query()] = None,
    equipment: Annotated[str | None, Query()] = None,
) -> list[dict[str, Any]]:
    """The tenant's work orders, newest first."""
    return await store.list_orders(ctx.session, ctx.tenant_id, state=state, equipment_name=equipment)


@router.post("/work-orders", status_code=201)
async def open_order(body: OrderIn, ctx: Operator) -> dict[str, Any]:
    """Open a work order by hand."""
    o = await store.open_order(
        ctx.session,
        ctx.tenant_id,
        equipment_name=body.equipment,
        title=body.title,
        reason="manual",
        evidence=body.evidence,
        who=ctx.actor,
    )
    await ctx.audit("work_order.open", str(o["id"]), equipment=body.equipment)
    return o


@router.post("/work-orders/{order_id}/transition")
async def move(order_id: RowId, body: MoveIn, ctx: Operator) -> dict[str, Any]:
    """Assign, start, close (with notes and the label found) or cancel a work order."""
    o = await store.move_order(
        ctx.session,
        ctx.tenant_id,
        order_id,
        body.state,
        assignee=body.assignee,
        notes=body.notes,
        label=body.label,
    )
    await ctx.audit("work_order.move", str(order_id), state=body.state)
    return o


@router.get("/labels")
async def training_labels(ctx: Read) -> list[dict[str, Any]]:
    """What operators found when closing work orders: labels for the next training."""
    return await store.labels(ctx.session, ctx.tenant_id)
