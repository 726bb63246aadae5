"""The tenant's current alarms read from the database, for API processes without the engine.

The engine saves every state change (``alarm_states``) and its history row in one
transaction, so this view shows the same states as the engine's. ``value`` is the newest
sample of the rule's tags in the time-series store (as the engine shows the last sample it
evaluated); without a store it is the sample value of the last recorded transition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms import repo
from gongyun.alarms.engine import sort_views
from gongyun.alarms.models import AlarmEventRow, AlarmRuleRow, AlarmStateRow
from gongyun.alarms.rules import Condition
from gongyun.alarms.states import State
from gongyun.telemetry.store.base import TimeSeriesStore


async def current(
    session: AsyncSession,
    tenant_id: str,
    *,
    only_active: bool = False,
    store: TimeSeriesStore | None = None,
) -> list[dict[str, Any]]:
    """Every enabled alarm of the tenant as the engine would show it (latest values from ``store``)."""
    # The newest transition of each rule, picked per rule by a correlated subquery: one
    # statement however many rules there are, on SQLite and PostgreSQL alike.
    latest_id = (
        select(AlarmEventRow.id)
        .where(AlarmEventRow.tenant_id == tenant_id, AlarmEventRow.rule_id == AlarmRuleRow.id)
        .order_by(AlarmEventRow.ts.desc(), AlarmEventRow.id.desc())
        .limit(1)
        .correlate(AlarmRuleRow)
        .scalar_subquery()
    )
    q = (
        select(AlarmRuleRow, AlarmStateRow, AlarmEventRow)
        .outerjoin(AlarmStateRow, AlarmStateRow.rule_id == AlarmRuleRow.id)
        .outerjoin(AlarmEventRow, AlarmEventRow.id == latest_id)
        .where(AlarmRuleRow.tenant_id == tenant_id)
    )
    views: list[dict[str, Any]] = []
    for rule, st, last in (await session.execute(q)).all():
        spec = repo.rule_spec(rule)
        if not spec.enabled:
            continue
        views.append(
            {
                "rule_id": rule.id,
                "name": spec.name,
                "kind": spec.kind,
                "priority": str(spec.priority),
                "state": st.state if st else str(State.normal),
                "condition": bool(st.condition) if st else False,
                "shelved_until": st.shelved_until.isoformat() if st and st.shelved_until else None,
                "value": last.value if last else None,
                "message": spec.message,
                "tags": sorted(Condition(spec).tags),
                "since": last.ts.isoformat() if last else None,
                "changed_by": last.user if last else None,
            }
        )
    if store is not None and views:
        await _latest_values(store, tenant_id, views)
    return sort_views(views, only_active)


async def _latest_values(store: TimeSeriesStore, tenant_id: str, views: list[dict[str, Any]]) -> None:
    """Set each view's ``value`` to the newest stored point among its rule's tags."""
    latest = await store.latest(tenant_id, sorted({t for v in views for t in v["tags"]}))
    for view in views:
        points = [latest[t] for t in view["tags"] if t in latest]
        if points:
            view["value"] = max(points, key=lambda p: p.ts).value
