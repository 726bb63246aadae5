"""Tenant-scoped data access for alarm rules, states, history and notification targets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms.models import AlarmEventRow, AlarmNotifierRow, AlarmRuleRow, AlarmStateRow
from gongyun.alarms.notify import EmailConfig, WebhookConfig
from gongyun.alarms.rules import RuleSpec
from gongyun.db.base import utcnow
from gongyun.errors import Conflict, NotFound, ValidationFailed

RULE = TypeAdapter[Any](RuleSpec)
TARGET = TypeAdapter[WebhookConfig | EmailConfig](WebhookConfig | EmailConfig)
MAX_HISTORY = 1000


def parse_rule(data: Any) -> Any:
    """Validate a rule document (raises ValidationFailed with every problem)."""
    try:
        return RULE.validate_python(data)
    except ValidationError as exc:
        raise ValidationFailed("invalid alarm rule", errors=_errors(exc)) from exc


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]


def rule_spec(row: AlarmRuleRow) -> Any:
    """The validated spec stored in a row."""
    return RULE.validate_python(orjson.loads(row.spec_json))


def rule_dict(row: AlarmRuleRow) -> dict[str, Any]:
    """A rule row as JSON, with ``valid`` (False: the engine skips it; ``problems`` says why)."""
    out: dict[str, Any] = {
        "id": row.id,
        **orjson.loads(row.spec_json),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "valid": True,
    }
    try:
        rule_spec(row)
    except ValidationError as exc:  # stored under older, looser validation: shown, not evaluated
        out["valid"], out["problems"] = False, _errors(exc)
    return out


async def create_rule(session: AsyncSession, tenant_id: str, spec: Any) -> AlarmRuleRow:
    """Create a rule; a duplicate name is a Conflict."""
    row = AlarmRuleRow(tenant_id=tenant_id, name=spec.name, kind=spec.kind, spec_json=spec.model_dump_json())
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"an alarm rule named {spec.name!r} exists") from exc
    return row


async def get_rule(session: AsyncSession, tenant_id: str, rule_id: str) -> AlarmRuleRow:
    """One rule of the tenant (NotFound otherwise)."""
    row = (
        await session.execute(
            select(AlarmRuleRow).where(AlarmRuleRow.tenant_id == tenant_id, AlarmRuleRow.id == rule_id)
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("alarm rule not found")
    return row


async def list_rules(session: AsyncSession, tenant_id: str) -> list[AlarmRuleRow]:
    """Every rule of the tenant, by name."""
    q = select(AlarmRuleRow).where(AlarmRuleRow.tenant_id == tenant_id).order_by(AlarmRuleRow.name)
    return list((await session.execute(q)).scalars())


async def update_rule(session: AsyncSession, tenant_id: str, rule_id: str, spec: Any) -> AlarmRuleRow:
    """Replace a rule's spec."""
    row = await get_rule(session, tenant_id, rule_id)
    row.name, row.kind, row.spec_json, row.updated_at = spec.name, spec.kind, spec.model_dump_json(), utcnow()
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"an alarm rule named {spec.name!r} exists") from exc
    return row


async def delete_rule(session: AsyncSession, tenant_id: str, rule_id: str) -> None:
    """Delete a rule with its state (its history stays)."""
    row = await get_rule(session, tenant_id, rule_id)
    await session.execute(
        delete(AlarmStateRow).where(AlarmStateRow.tenant_id == tenant_id, AlarmStateRow.rule_id == rule_id)
    )
    await session.delete(row)
    await session.flush()


async def all_rules(session: AsyncSession) -> list[tuple[AlarmRuleRow, AlarmStateRow | None]]:
    """Every tenant's rules with their saved states (for the engine; not tenant-scoped)."""
    q = select(AlarmRuleRow, AlarmStateRow).outerjoin(AlarmStateRow, AlarmStateRow.rule_id == AlarmRuleRow.id)
    result = await session.execute(q.execution_options(all_tenants=True))
    return [(r, s) for r, s in result]


async def save_state(
    session: AsyncSession,
    tenant_id: str,
    rule_id: str,
    state: str,
    condition: bool,
    shelved_until: datetime | None,
) -> None:
    """Upsert the current state of one alarm."""
    row = await session.get(AlarmStateRow, rule_id)
    if row is None:
        session.add(
            AlarmStateRow(
                tenant_id=tenant_id,
                rule_id=rule_id,
                state=state,
                condition=condition,
                shelved_until=shelved_until,
                changed_at=utcnow(),
            )
        )
    elif row.tenant_id == tenant_id:
        row.state, row.condition, row.shelved_until, row.changed_at = (
            state,
            condition,
            shelved_until,
            utcnow(),
        )


async def add_event(session: AsyncSession, event: AlarmEventRow) -> None:
    """Append one transition to the history."""
    session.add(event)


async def history(
    session: AsyncSession,
    tenant_id: str,
    *,
    rule_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[AlarmEventRow]:
    """Newest transitions first; ``before`` (an event id) pages on from the events older than it."""
    if not 1 <= limit <= MAX_HISTORY:
        raise ValidationFailed(f"limit must be between 1 and {MAX_HISTORY}")
    q = select(AlarmEventRow).where(AlarmEventRow.tenant_id == tenant_id)
    if rule_id:
        q = q.where(AlarmEventRow.rule_id == rule_id)
    if since:
        q = q.where(AlarmEventRow.ts >= since)
    if before is not None:
        cursor = await session.get(AlarmEventRow, before)
        if cursor is None or cursor.tenant_id != tenant_id:
            raise NotFound("alarm event not found", before=before)
        # The order is (ts, id) descending: continue strictly after the cursor in that order.
        q = q.where(
            or_(
                AlarmEventRow.ts < cursor.ts,
                and_(AlarmEventRow.ts == cursor.ts, AlarmEventRow.id < cursor.id),
            )
        )
    q = q.order_by(AlarmEventRow.ts.desc(), AlarmEventRow.id.desc()).limit(limit)
    return list((await session.execute(q)).scalars())


def event_dict(row: AlarmEventRow) -> dict[str, Any]:
    """A history row as JSON."""
    return {
        "id": row.id,
        "rule_id": row.rule_id,
        "name": row.name,
        "priority": row.priority,
        "ts": row.ts.isoformat(),
        "before": row.before,
        "after": row.after,
        "cause": row.cause,
        "user": row.user,
        "value": row.value,
    }


def parse_target(data: Any) -> WebhookConfig | EmailConfig:
    """Validate a notification target document."""
    try:
        return TARGET.validate_python(data)
    except ValidationError as exc:
        raise ValidationFailed("invalid notification target", errors=_errors(exc)) from exc


async def create_notifier(session: AsyncSession, tenant_id: str, name: str, config: Any) -> AlarmNotifierRow:
    """Add a notification target."""
    row = AlarmNotifierRow(
        tenant_id=tenant_id, name=name, kind=config.kind, config_json=config.model_dump_json()
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a notification target named {name!r} exists") from exc
    return row


async def list_notifiers(session: AsyncSession, tenant_id: str | None) -> list[AlarmNotifierRow]:
    """A tenant's notification targets (every tenant's when ``tenant_id`` is None)."""
    q = select(AlarmNotifierRow).order_by(AlarmNotifierRow.name)
    if tenant_id is None:
        q = q.execution_options(all_tenants=True)
    else:
        q = q.where(AlarmNotifierRow.tenant_id == tenant_id)
    return list((await session.execute(q)).scalars())


async def delete_notifier(session: AsyncSession, tenant_id: str, notifier_id: str) -> None:
    """Remove a notification target."""
    row = (
        await session.execute(
            select(AlarmNotifierRow).where(
                AlarmNotifierRow.tenant_id == tenant_id, AlarmNotifierRow.id == notifier_id
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("notification target not found")
    await session.delete(row)
    await session.flush()


def notifier_dict(row: AlarmNotifierRow) -> dict[str, Any]:
    """A target as JSON (secrets hidden)."""
    cfg = orjson.loads(row.config_json)
    if cfg.get("password"):
        cfg["password"] = "***"
    return {"id": row.id, "name": row.name, "kind": row.kind, "config": cfg}
