"""Alarms: current alarms, acknowledge and shelve, rules, notification targets, history, live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gongyun.alarms import repo
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.notify import make_notifier
from gongyun.api.deps import Ctx, require
from gongyun.security.rbac import Perm
from gongyun.telemetry.service import get_service

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

Read = Annotated[Ctx, Depends(require(Perm.alarms_read))]
Ack = Annotated[Ctx, Depends(require(Perm.alarms_ack))]
Write = Annotated[Ctx, Depends(require(Perm.alarms_write))]


def _engine(ctx: Ctx) -> AlarmEngine:
    return get_service(ctx.runtime).alarms


@router.get("", summary="Current alarms")
async def current(ctx: Read, active: bool = False) -> list[dict[str, Any]]:
    """Every alarm of the tenant with its ISA-18.2 state (only non-normal ones with ``active``)."""
    return _engine(ctx).alarms(ctx.tenant_id, only_active=active)


# -- rules -------------------------------------------------------------------------------------
@router.get("/rules", summary="List alarm rules")
async def list_rules(ctx: Read) -> list[dict[str, Any]]:
    """The tenant's rules."""
    return [repo.rule_dict(r) for r in await repo.list_rules(ctx.session, ctx.tenant_id)]


@router.post("/rules", status_code=201, summary="Create an alarm rule")
async def create_rule(ctx: Write, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """A threshold, rate, expression or stale rule (``kind`` selects which)."""
    spec = repo.parse_rule(body)
    row = await repo.create_rule(ctx.session, ctx.tenant_id, spec)
    await ctx.audit("alarm_rule.create", row.id, name=spec.name, kind=spec.kind)
    _engine(ctx).put_rule(ctx.tenant_id, row.id, spec)
    return repo.rule_dict(row)


@router.get("/rules/{rule_id}", summary="Get an alarm rule")
async def get_rule(rule_id: str, ctx: Read) -> dict[str, Any]:
    """One rule."""
    return repo.rule_dict(await repo.get_rule(ctx.session, ctx.tenant_id, rule_id))


@router.put("/rules/{rule_id}", summary="Replace an alarm rule")
async def update_rule(rule_id: str, ctx: Write, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Replace a rule's definition (its alarm keeps its state)."""
    spec = repo.parse_rule(body)
    row = await repo.update_rule(ctx.session, ctx.tenant_id, rule_id, spec)
    await ctx.audit("alarm_rule.update", row.id, name=spec.name, kind=spec.kind)
    _engine(ctx).put_rule(ctx.tenant_id, row.id, spec)
    return repo.rule_dict(row)


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete an alarm rule")
async def delete_rule(rule_id: str, ctx: Write) -> None:
    """Delete a rule and its alarm (the history stays)."""
    await repo.delete_rule(ctx.session, ctx.tenant_id, rule_id)
    await ctx.audit("alarm_rule.delete", rule_id)
    _engine(ctx).drop_rule(ctx.tenant_id, rule_id)


# -- notification targets ----------------------------------------------------------------------
class TargetIn(BaseModel):
    """A named webhook or e-mail target."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    config: dict[str, Any]


async def _reload_targets(ctx: Ctx) -> None:
    rows = await repo.list_notifiers(ctx.session, ctx.tenant_id)
    targets = [make_notifier(repo.parse_target(orjson.loads(r.config_json))) for r in rows]
    _engine(ctx).set_notifiers(ctx.tenant_id, targets)


@router.get("/notifiers", summary="List notification targets")
async def list_targets(ctx: Read) -> list[dict[str, Any]]:
    """Webhook and e-mail targets (passwords hidden)."""
    return [repo.notifier_dict(r) for r in await repo.list_notifiers(ctx.session, ctx.tenant_id)]


@router.post("/notifiers", status_code=201, summary="Add a notification target")
async def create_target(body: TargetIn, ctx: Write) -> dict[str, Any]:
    """Add a webhook (``kind: webhook``) or SMTP (``kind: email``) target."""
    row = await repo.create_notifier(ctx.session, ctx.tenant_id, body.name, repo.parse_target(body.config))
    await ctx.audit("alarm_notifier.create", row.id, name=row.name, kind=row.kind)
    await _reload_targets(ctx)
    return repo.notifier_dict(row)


@router.delete("/notifiers/{notifier_id}", status_code=204, summary="Remove a notification target")
async def delete_target(notifier_id: str, ctx: Write) -> None:
    """Remove a target."""
    await repo.delete_notifier(ctx.session, ctx.tenant_id, notifier_id)
    await ctx.audit("alarm_notifier.delete", notifier_id)
    await _reload_targets(ctx)


# -- history and live --------------------------------------------------------------------------
@router.get("/history", summary="Alarm history")
async def history(
    ctx: Read,
    rule_id: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_HISTORY)] = 100,
) -> list[dict[str, Any]]:
    """State transitions, newest first."""
    rows = await repo.history(ctx.session, ctx.tenant_id, rule_id=rule_id, since=since, limit=limit)
    return [repo.event_dict(r) for r in rows]


@router.get("/stream", summary="Live alarm transitions (server-sent events)")
async def stream(ctx: Read, request: Request) -> StreamingResponse:
    """Every transition of the tenant's alarms as an SSE ``alarm`` event."""
    engine = _engine(ctx)
    tenant = ctx.tenant_id

    async def events() -> AsyncIterator[bytes]:
        q = engine.listen()
        try:
            yield b": connected\n\n"
            while not await request.is_disconnected():
                try:
                    ev = await asyncio.wait_for(q.get(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if ev.get("tenant") == tenant:
                    yield b"event: alarm\ndata: " + orjson.dumps(ev) + b"\n\n"
        finally:
            engine.unlisten(q)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# -- operator actions (declared last: ``/{rule_id}/...``) -----------------------------------------
class ShelveIn(BaseModel):
    """How long to shelve."""

    model_config = ConfigDict(extra="forbid")
    duration_s: float = Field(gt=0, le=7 * 86400)


@router.post("/{rule_id}/ack", summary="Acknowledge an alarm")
async def ack(rule_id: str, ctx: Ack) -> dict[str, Any]:
    """Acknowledge (unack active → ack active; unack return-to-normal → normal)."""
    view = await _engine(ctx).ack(ctx.tenant_id, rule_id, ctx.username)
    await ctx.audit("alarm.ack", rule_id)
    return view


@router.post("/{rule_id}/shelve", summary="Shelve an alarm")
async def shelve(rule_id: str, body: ShelveIn, ctx: Ack) -> dict[str, Any]:
    """Hide the alarm for a while."""
    view = await _engine(ctx).shelve(ctx.tenant_id, rule_id, ctx.username, body.duration_s)
    await ctx.audit("alarm.shelve", rule_id, duration_s=body.duration_s)
    return view


@router.post("/{rule_id}/unshelve", summary="Unshelve an alarm")
async def unshelve(rule_id: str, ctx: Ack) -> dict[str, Any]:
    """Bring a shelved alarm back."""
    view = await _engine(ctx).unshelve(ctx.tenant_id, rule_id, ctx.username)
    await ctx.audit("alarm.unshelve", rule_id)
    return view
