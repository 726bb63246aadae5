"""The security events centre's intake: sensor messages from the bus into the tenant's tables.

One durable consumer (a queue group across the deployment's processes) takes ``ids.>``:
events are stored, de-duplicated and grouped into incidents (:mod:`gongyun.security.ids.store`),
health reports update the sensor's row, and each new incident is announced through the
tenant's alarm notifiers (webhook, e-mail) at its severity.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select

from gongyun.alarms import repo as alarm_repo
from gongyun.alarms.notify import AlarmNotice, Notifier, dispatch, make_notifier
from gongyun.alarms.states import Priority
from gongyun.bus import Message
from gongyun.platform.container import Platform
from gongyun.security.ids import store
from gongyun.security.ids.sensor import MAX_AGE_S, STREAM, SUBJECTS
from gongyun.security.models import Tenant
from gongyun.security.tenancy import scope_session

log = logging.getLogger("gongyun.platform.ids")
DURABLE = "ids-centre"


async def _notifiers(platform: Platform, tenant_id: str) -> list[Notifier]:
    async with platform.db.session() as session:
        rows = await alarm_repo.list_notifiers(session, tenant_id)
    out: list[Notifier] = []
    for row in rows:
        try:
            config = alarm_repo.parse_target(orjson.loads(row.config_json))
            out.append(make_notifier(config, platform.settings.outbound_allow))
        except Exception as exc:  # a broken target must not stop the others
            log.warning("notification target %s unusable: %s", row.name, exc)
    return out


async def notify_incident(platform: Platform, tenant_id: str, inc: dict[str, Any]) -> int:
    """Announce a new incident through the tenant's alarm notifiers; return deliveries."""
    notifiers = await _notifiers(platform, tenant_id)
    if not notifiers:
        return 0
    notice = AlarmNotice(
        tenant=tenant_id,
        rule_id=f"ids:{inc['id']}",
        name=f"Security incident: {inc['title']}",
        priority=Priority(inc["severity"]),
        state=inc["state"],
        cause="activated",
        ts=datetime.fromtimestamp(inc["first_ts"], UTC).isoformat(),
        message=f"{', '.join(inc['techniques'])} from {inc['src_host']} on {inc['dst']}",
    )
    return await dispatch(notifiers, notice)


async def handle_message(platform: Platform, subject: str, data: bytes) -> list[dict[str, Any]]:
    """Apply one sensor message; return the incidents it opened (as dicts)."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "ids":
        return []
    _, tenant_id, sensor, kind = parts
    if kind not in ("events", "health"):
        return []  # records are for live views and archives; control goes to sensors
    try:
        body = json.loads(data)
    except ValueError:
        log.warning("unreadable IDS message on %s", subject)
        return []
    opened: list[dict[str, Any]] = []
    async with platform.db.session() as session:
        if await session.get(Tenant, tenant_id) is None:
            log.warning("IDS message for unknown tenant %s dropped", tenant_id)
            return []
        scope_session(session.sync_session, tenant_id)
        if kind == "health" and isinstance(body, dict):
            await store.touch_sensor(session, tenant_id, sensor, body)
        elif kind == "events" and isinstance(body, list):
            await store.touch_sensor(session, tenant_id, sensor, None)
            for ev in body:
                if isinstance(ev, dict):
                    ev.setdefault("sensor", sensor)
            incs = await store.ingest(session, tenant_id, [e for e in body if isinstance(e, dict)])
            opened = [store.incident_dict(i) for i in incs]
    for inc in opened:
        try:
            await notify_incident(platform, tenant_id, inc)
        except Exception:
            log.exception("notifying incident %s failed", inc["id"])
    return opened


async def start_ids_centre(platform: Platform) -> None:
    """Consume sensor messages into the events centre (every process joins one queue group)."""

    async def handle(msg: Message) -> None:
        await handle_message(platform, msg.subject, msg.data)
        await msg.ack()

    await platform.bus.ensure_stream(STREAM, SUBJECTS, max_age_s=MAX_AGE_S)
    sub = await platform.bus.subscribe("ids.*.*.events", durable=DURABLE, handler=handle)
    health = await platform.bus.subscribe("ids.*.*.health", durable=f"{DURABLE}-health", handler=handle)
    platform.on_close("ids centre", sub.close)
    platform.on_close("ids centre health", health.close)


async def tenants_with_sensors(platform: Platform) -> list[str]:
    """Tenants that have a sensor (for tooling)."""
    async with platform.db.session() as session:
        q = select(store.IdsSensor.tenant_id).distinct().execution_options(all_tenants=True)
        return [r[0] for r in await session.execute(q)]
