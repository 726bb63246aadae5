"""Alarms: current alarms, acknowledge and shelve, rules, notification targets, history, live.

Any API process may take these requests; the alarm engine runs in one process. Operator
actions and rule/target changes reach it as queued commands (``gongyun.alarms.commands``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from gongyun.alarms import commands, repo, snapshot
from gongyun.alarms.engine import PENDING, REJECTED, AlarmEngine
from gongyun.alarms.models import AlarmCommandRow
from gongyun.alarms.notify import EmailConfig, WebhookConfig
from gongyun.alarms.outcomes import audit_command_request, command_user
from gongyun.alarms.rules import RuleSpec
from gongyun.api.deps import Ctx, require
from gongyun.api.params import IsoTime
from gongyun.api.responses import EventStream
from gongyun.errors import ServiceUnavailable
from gongyun.platform.live import latest_store, live_hub
from gongyun.security.egress import check_target
from gongyun.security.rbac import Perm

_log = logging.getLogger("gongyun.api.alarms")
router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

Read = Annotated[Ctx, Depends(require(Perm.alarms_read))]
Ack = Annotated[Ctx, Depends(require(Perm.alarms_ack))]
Write = Annotated[Ctx, Depends(require(Perm.alarms_write))]
DEFAULT_WAIT_S = 5.0
MAX_WAIT_S = 30.0


def _engine(ctx: Ctx) -> AlarmEngine:
    return ctx.platform.running_telemetry().alarms


def _local_engine(ctx: Ctx) -> AlarmEngine | None:
    """The engine when it runs in this process (else commands travel over the bus)."""
    try:
        return _engine(ctx)
    except ServiceUnavailable:
        return None


async def _hand_over(ctx: Ctx, row: AlarmCommandRow) -> bool:
    """Hand a committed command to the engine; False when the local engine failed on it.

    The row stays pending then, and the engine's sweep applies it later: the caller must
    not answer 500 for a request that is queued (a retry would find it still pending).
    """
    try:
        await commands.dispatch(ctx.platform.bus, row, _local_engine(ctx))
    except Exception:
        _log.exception("the alarm engine failed on command %s; its sweep will apply it", row.id)
        return False
    return True


async def _tell_engine(ctx: Ctx, action: str, rule_id: str | None) -> None:
    """Queue a reload for the engine, commit with the change that needs it, and hand it over."""
    row = await commands.create(ctx.session, ctx.tenant_id, action, rule_id, command_user(ctx.actor))
    await ctx.session.commit()
    if action in commands.RING_ALL:
        await _referenced_tags_changed(ctx)
    await _hand_over(ctx, row)


async def _referenced_tags_changed(ctx: Ctx) -> None:
    """Read this process's referenced tags again before answering (the others hear the bus)."""
    try:
        tags = ctx.platform.running_telemetry().tags
    except ServiceUnavailable:  # no ingest here: nothing forwards points to the engine
        return
    if tags is not None:
        await tags.refresh()


@router.get("", summary="Current alarms")
async def current(ctx: Read, active: bool = False) -> list[dict[str, Any]]:
    """Every alarm of the tenant with its ISA-18.2 state (only non-normal ones with ``active``)."""
    engine = _local_engine(ctx)
    if engine is None:
        store = await latest_store(ctx.platform)
        return await snapshot.current(ctx.session, ctx.tenant_id, only_active=active, store=store)
    return engine.alarms(ctx.tenant_id, only_active=active)


# -- rules -------------------------------------------------------------------------------------
@router.get("/rules", summary="List alarm rules")
async def list_rules(ctx: Read) -> list[dict[str, Any]]:
    """The tenant's rules."""
    return [repo.rule_dict(r) for r in await repo.list_rules(ctx.session, ctx.tenant_id)]


@router.post("/rules", status_code=201, summary="Create an alarm rule")
async def create_rule(ctx: Write, spec: Annotated[RuleSpec, Body()]) -> dict[str, Any]:
    """A threshold, rate, expression or stale rule (``kind`` selects which)."""
    row = await repo.create_rule(ctx.session, ctx.tenant_id, spec)
    await ctx.audit("alarm_rule.create", row.id, name=spec.name, kind=spec.kind)
    await _tell_engine(ctx, "reload_rule", row.id)
    return repo.rule_dict(row)


@router.get("/rules/{rule_id}", summary="Get an alarm rule")
async def get_rule(rule_id: str, ctx: Read) -> dict[str, Any]:
    """One rule."""
    return repo.rule_dict(await repo.get_rule(ctx.session, ctx.tenant_id, rule_id))


@router.put("/rules/{rule_id}", summary="Replace an alarm rule")
async def update_rule(rule_id: str, ctx: Write, spec: Annotated[RuleSpec, Body()]) -> dict[str, Any]:
    """Replace a rule's definition (its alarm keeps its state)."""
    row = await repo.update_rule(ctx.session, ctx.tenant_id, rule_id, spec)
    await ctx.audit("alarm_rule.update", row.id, name=spec.name, kind=spec.kind)
    await _tell_engine(ctx, "reload_rule", row.id)
    return repo.rule_dict(row)


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete an alarm rule")
async def delete_rule(rule_id: str, ctx: Write) -> None:
    """Delete a rule and its alarm (the history stays)."""
    await repo.delete_rule(ctx.session, ctx.tenant_id, rule_id)
    await ctx.audit("alarm_rule.delete", rule_id)
    await _tell_engine(ctx, "reload_rule", rule_id)


# -- notification targets ----------------------------------------------------------------------
class TargetIn(BaseModel):
    """A named webhook or e-mail target."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    config: WebhookConfig | EmailConfig


async def _reload_targets(ctx: Ctx) -> None:
    await _tell_engine(ctx, "reload_notifiers", None)


@router.get("/notifiers", summary="List notification targets")
async def list_targets(ctx: Read) -> list[dict[str, Any]]:
    """Webhook and e-mail targets (passwords hidden)."""
    return [repo.notifier_dict(r) for r in await repo.list_notifiers(ctx.session, ctx.tenant_id)]


@router.post("/notifiers", status_code=201, summary="Add a notification target")
async def create_target(body: TargetIn, ctx: Write) -> dict[str, Any]:
    """Add a webhook (``kind: webhook``, its URL public or in ``outbound_allow``) or SMTP target."""
    if isinstance(body.config, WebhookConfig):
        await check_target(body.config.url, ctx.platform.settings.outbound_allow, "config.url")
    row = await repo.create_notifier(ctx.session, ctx.tenant_id, body.name, body.config)
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
    since: IsoTime | None = None,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_HISTORY)] = 100,
    before: Annotated[str | None, Query(max_length=32, description="Page on after this event id")] = None,
) -> list[dict[str, Any]]:
    """State transitions, newest first; pass the last event's ``id`` as ``before`` for the next page."""
    rows = await repo.history(
        ctx.session, ctx.tenant_id, rule_id=rule_id, since=since, limit=limit, before=before
    )
    return [repo.event_dict(r) for r in rows]


@router.get("/stream", summary="Live alarm transitions (server-sent events)", response_class=EventStream)
async def stream(ctx: Read, request: Request) -> EventStream:
    """Every transition of the tenant's alarms as an SSE ``alarm`` event (from any API process)."""
    hub = await live_hub(ctx.platform)
    tenant = ctx.tenant_id

    async def events() -> AsyncIterator[bytes]:
        q = hub.listen_alarms()
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
            hub.unlisten_alarms(q)

    return EventStream(events(), headers={"Cache-Control": "no-cache"})


# -- operator actions (declared last: ``/{rule_id}/...``) -----------------------------------------
class ShelveIn(BaseModel):
    """How long to shelve."""

    model_config = ConfigDict(extra="forbid")
    duration_s: StrictFloat = Field(gt=0, le=7 * 86400)


Wait = Annotated[
    float,
    Query(ge=0, le=MAX_WAIT_S, description="How long to wait for the alarm engine before answering 202"),
]


@router.get("/commands/{command_id}", summary="An acknowledge or shelve request and its outcome")
async def get_command(command_id: str, ctx: Read) -> dict[str, Any]:
    """Whether the alarm engine has applied the request yet, and the alarm it left (or why not)."""
    return commands.command_dict(await commands.get(ctx.session, ctx.tenant_id, command_id))


async def _operate(
    ctx: Ctx, rule_id: str, action: str, wait_s: float, duration_s: float | None = None
) -> dict[str, Any] | JSONResponse:
    """Queue an operator action for the engine (wherever it runs) and answer with its outcome.

    The request is audited (``pending``) with the command; the engine audits the outcome
    (``gongyun.alarms.outcomes.audit_command_outcome``) when it applies or rejects it.
    """
    await repo.get_rule(ctx.session, ctx.tenant_id, rule_id)
    row = await commands.create(
        ctx.session, ctx.tenant_id, action, rule_id, command_user(ctx.actor), duration_s
    )
    await audit_command_request(ctx.session, row, ctx.client)
    await ctx.session.commit()
    if await _hand_over(ctx, row):
        row = await commands.wait(ctx.session, ctx.tenant_id, row.id, wait_s)
    if row.status == REJECTED:
        commands.raise_rejection(row)
    if row.status == PENDING:
        href = f"{router.prefix}/commands/{row.id}"
        return JSONResponse(
            {"command_id": row.id, "status": row.status, "href": href},
            status_code=202,
            headers={"Location": href},
        )
    view: dict[str, Any] = orjson.loads(row.result_json or "{}")
    return {**view, "command_id": row.id}


_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Queued; the engine has not applied it yet: poll the `href` (GET .../commands/{id})"}
}


@router.post("/{rule_id}/ack", summary="Acknowledge an alarm", response_model=None, responses=_ACCEPTED)
async def ack(rule_id: str, ctx: Ack, wait_s: Wait = DEFAULT_WAIT_S) -> dict[str, Any] | JSONResponse:
    """Acknowledge (unack active → ack active; unack return-to-normal → normal)."""
    return await _operate(ctx, rule_id, "ack", wait_s)


@router.post("/{rule_id}/shelve", summary="Shelve an alarm", response_model=None, responses=_ACCEPTED)
async def shelve(
    rule_id: str, body: ShelveIn, ctx: Ack, wait_s: Wait = DEFAULT_WAIT_S
) -> dict[str, Any] | JSONResponse:
    """Hide the alarm for a while."""
    return await _operate(ctx, rule_id, "shelve", wait_s, body.duration_s)


@router.post("/{rule_id}/unshelve", summary="Unshelve an alarm", response_model=None, responses=_ACCEPTED)
async def unshelve(rule_id: str, ctx: Ack, wait_s: Wait = DEFAULT_WAIT_S) -> dict[str, Any] | JSONResponse:
    """Bring a shelved alarm back."""
    return await _operate(ctx, rule_id, "unshelve", wait_s)
