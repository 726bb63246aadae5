"""The security events centre's tables and operations: sensors, events, incidents, asset links.

Events arrive from sensors (over the bus); each is stored once per tenant (its id is the
primary key, so a redelivered message is a no-op), de-duplicated against a recent event with
the same key (same sensor, rule and endpoints: the count and last time grow) and grouped into
an incident: one open incident per attacking host and target within :data:`GROUP_S`. Incidents
move through new, investigating, contained, resolved and false positive, with an assignee,
notes and a timeline of everything that happened to them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, new_id, utcnow
from gongyun.errors import Conflict, NotFound, ValidationFailed
from gongyun.security.tenancy import TenantScoped

DEDUP_S = 600.0  # an event like one seen this recently only counts up
GROUP_S = 1800.0  # events from one host against one target this close form one incident
STATES = ("new", "investigating", "contained", "resolved", "false_positive")
OPEN_STATES = ("new", "investigating", "contained")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("investigating", "contained", "resolved", "false_positive"),
    "investigating": ("contained", "resolved", "false_positive"),
    "contained": ("investigating", "resolved", "false_positive"),
    "resolved": ("investigating",),
    "false_positive": ("investigating",),
}
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class IncidentTransitionInvalid(Conflict):
    """The incident cannot move to that state from its current one."""

    code = "ids_incident_transition_invalid"


class IdsSensor(TenantScoped, Base):
    """A sensor that reported to a tenant, with its last health report."""

    __tablename__ = "ids_sensors"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_ids_sensors_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    health_json: Mapped[str] = mapped_column(Text, default="{}")


class IdsEvent(TenantScoped, Base):
    """A detection (de-duplicated: ``count`` occurrences from ``first_ts`` to ``last_ts``)."""

    __tablename__ = "ids_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sensor: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(32))
    msg: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(16))
    technique: Mapped[str] = mapped_column(String(16))
    proto: Mapped[str] = mapped_column(String(16))
    src: Mapped[str] = mapped_column(String(80))
    dst: Mapped[str] = mapped_column(String(80))
    dedup_key: Mapped[str] = mapped_column(String(64), index=True)
    first_ts: Mapped[float] = mapped_column(Float, index=True)
    last_ts: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer, default=1)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
    incident_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdsIncident(TenantScoped, Base):
    """A group of events: one attacking host against one target, with a workflow."""

    __tablename__ = "ids_incidents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="new")
    severity: Mapped[str] = mapped_column(String(16))
    techniques_json: Mapped[str] = mapped_column(Text, default="[]")
    src_host: Mapped[str] = mapped_column(String(64))
    dst: Mapped[str] = mapped_column(String(80))
    assignee: Mapped[str | None] = mapped_column(String(255), nullable=True)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    first_ts: Mapped[float] = mapped_column(Float, index=True)
    last_ts: Mapped[float] = mapped_column(Float)
    timeline_json: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdsLink(TenantScoped, Base):
    """What a network endpoint is in the plant: device, asset path and identifier."""

    __tablename__ = "ids_links"
    __table_args__ = (UniqueConstraint("tenant_id", "endpoint", name="uq_ids_links_tenant_endpoint"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    endpoint: Mapped[str] = mapped_column(String(80))  # "host:port" or "host"
    device: Mapped[str | None] = mapped_column(String(255), nullable=True)
    asset_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    identifier: Mapped[str | None] = mapped_column(String(1024), nullable=True)


def _host(endpoint: str) -> str:
    """The host part of ``host:port`` (IPv6 kept whole)."""
    if endpoint.count(":") == 1:
        return endpoint.split(":", 1)[0]
    return endpoint.rsplit(":", 1)[0] if endpoint.startswith("[") else endpoint


def src_host(src: str) -> str:
    """The attacking host of an event source ``host:port``."""
    if src.count(":") == 1:
        return src.split(":", 1)[0]
    return src.rsplit(":", 1)[0] if "." in src.rsplit(":", 1)[0] or src.startswith("[") else src


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _timeline(inc: IdsIncident, kind: str, text: str, by: str = "system", **extra: Any) -> None:
    items = json.loads(inc.timeline_json or "[]")
    items.append({"ts": _now_iso(), "kind": kind, "by": by, "text": text, **extra})
    inc.timeline_json = json.dumps(items[-500:])


async def touch_sensor(
    session: AsyncSession, tenant_id: str, name: str, health: dict[str, Any] | None
) -> None:
    """Record that a sensor reported (with its health, if given)."""
    q = select(IdsSensor).where(IdsSensor.tenant_id == tenant_id, IdsSensor.name == name)
    row = (await session.execute(q)).scalar_one_or_none()
    if row is None:
        try:
            async with session.begin_nested():  # two consumers may meet a new sensor at once
                row = IdsSensor(tenant_id=tenant_id, name=name)
                session.add(row)
        except IntegrityError:
            row = (await session.execute(q)).scalar_one()
    row.last_seen = utcnow()
    if health is not None:
        row.health_json = json.dumps(health, default=str)
    await session.flush()


async def ingest(session: AsyncSession, tenant_id: str, events: list[dict[str, Any]]) -> list[IdsIncident]:
    """Store sensor events; return incidents they opened or escalated (for notifications)."""
    opened: list[IdsIncident] = []
    before: dict[str, str | None] = {}  # incident id -> its severity before this batch (None: new)
    for ev in events:
        try:
            eid, key, ts = str(ev["id"])[:32], str(ev["key"])[:64], float(ev["ts"])
            sev = ev["severity"] if ev.get("severity") in SEVERITY_RANK else "medium"
        except (KeyError, TypeError, ValueError):
            continue
        if await session.get(IdsEvent, eid) is not None:
            continue  # redelivered
        same = (
            await session.execute(
                select(IdsEvent)
                .where(
                    IdsEvent.tenant_id == tenant_id,
                    IdsEvent.dedup_key == key,
                    IdsEvent.last_ts >= ts - DEDUP_S,
                )
                .order_by(IdsEvent.last_ts.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        inc = await _incident_for(session, tenant_id, ev, ts, sev)
        if inc.id not in before:
            before[inc.id] = inc.severity if inc.event_count else None
        if same is not None and same.incident_id == inc.id:
            same.count += 1
            same.last_ts = max(same.last_ts, ts)
            inc.last_ts = max(inc.last_ts, ts)
            continue
        row = IdsEvent(
            id=eid,
            tenant_id=tenant_id,
            sensor=str(ev.get("sensor", ""))[:64],
            rule_id=str(ev.get("rule_id", ""))[:32],
            msg=str(ev.get("msg", ""))[:255],
            severity=sev,
            technique=str(ev.get("technique", ""))[:16],
            proto=str(ev.get("proto", ""))[:16],
            src=str(ev.get("src", ""))[:80],
            dst=str(ev.get("dst", ""))[:80],
            dedup_key=key,
            first_ts=ts,
            last_ts=ts,
            detail_json=json.dumps(ev.get("detail", {}), default=str)[:20000],
            incident_id=inc.id,
        )
        session.add(row)
        inc.event_count += 1
        inc.last_ts = max(inc.last_ts, ts)
        techs = set(json.loads(inc.techniques_json))
        techs.add(row.technique)
        inc.techniques_json = json.dumps(sorted(techs))
        if SEVERITY_RANK[sev] > SEVERITY_RANK.get(inc.severity, 0):
            inc.severity = sev
        if inc not in opened:
            opened.append(inc)
        _timeline(
            inc, "event", f"{row.rule_id} {row.msg}", event_id=eid, severity=sev, technique=row.technique
        )
        await session.flush()
    return [
        i
        for i in opened
        if before.get(i.id) is None or SEVERITY_RANK[i.severity] > SEVERITY_RANK.get(before[i.id] or "", 0)
    ]


async def _incident_for(
    session: AsyncSession, tenant_id: str, ev: dict[str, Any], ts: float, sev: str
) -> IdsIncident:
    host, dst = src_host(str(ev.get("src", ""))), str(ev.get("dst", ""))[:80]
    inc = (
        await session.execute(
            select(IdsIncident)
            .where(
                IdsIncident.tenant_id == tenant_id,
                IdsIncident.src_host == host,
                IdsIncident.dst == dst,
                IdsIncident.state.in_(OPEN_STATES),
                IdsIncident.last_ts >= ts - GROUP_S,
            )
            .order_by(IdsIncident.last_ts.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if inc is None:
        inc = IdsIncident(
            tenant_id=tenant_id,
            title=f"{ev.get('msg', 'Detection')} from {host} on {dst}"[:255],
            state="new",
            severity=sev,
            src_host=host[:64],
            dst=dst,
            event_count=0,
            first_ts=ts,
            last_ts=ts,
            techniques_json="[]",
            timeline_json="[]",
        )
        session.add(inc)
        _timeline(inc, "opened", "incident opened")
        await session.flush()
    return inc


async def get_incident(session: AsyncSession, incident_id: str) -> IdsIncident:
    """An incident of the session's tenant (404 otherwise)."""
    inc = (
        await session.execute(select(IdsIncident).where(IdsIncident.id == incident_id))
    ).scalar_one_or_none()
    if inc is None:
        raise NotFound("incident not found")
    return inc


async def update_incident(
    session: AsyncSession,
    incident_id: str,
    *,
    by: str,
    state: str | None = None,
    assignee: str | None = None,
    note: str | None = None,
) -> IdsIncident:
    """Move an incident, assign it, or add a note; each goes on its timeline."""
    inc = await get_incident(session, incident_id)
    if state is not None and state != inc.state:
        if state not in STATES:
            raise ValidationFailed(f"state must be one of {', '.join(STATES)}")
        if state not in TRANSITIONS[inc.state]:
            raise IncidentTransitionInvalid(f"an incident cannot move from {inc.state} to {state}")
        _timeline(inc, "state", f"{inc.state} -> {state}", by=by, old=inc.state, new=state)
        inc.state = state
    if assignee is not None and assignee != inc.assignee:
        _timeline(inc, "assign", f"assigned to {assignee or 'nobody'}", by=by)
        inc.assignee = assignee or None
    if note:
        _timeline(inc, "note", note[:4000], by=by)
    inc.updated_at = utcnow()
    await session.flush()
    return inc


async def links(session: AsyncSession) -> dict[str, IdsLink]:
    """The tenant's endpoint links by endpoint."""
    return {r.endpoint: r for r in (await session.execute(select(IdsLink))).scalars()}


def link_for(table: dict[str, IdsLink], endpoint: str) -> dict[str, Any] | None:
    """The asset/device/identifier of ``host:port`` (or of its host)."""
    row = table.get(endpoint) or table.get(_host(endpoint))
    if row is None:
        return None
    return {
        "endpoint": row.endpoint,
        "device": row.device,
        "asset_path": row.asset_path,
        "identifier": row.identifier,
    }


async def set_link(session: AsyncSession, tenant_id: str, endpoint: str, **fields: str | None) -> IdsLink:
    """Create or update the link of an endpoint."""
    row = (await session.execute(select(IdsLink).where(IdsLink.endpoint == endpoint))).scalar_one_or_none()
    if row is None:
        row = IdsLink(tenant_id=tenant_id, endpoint=endpoint)
        session.add(row)
    for k, v in fields.items():
        setattr(row, k, v)
    await session.flush()
    return row


def event_dict(row: IdsEvent, table: dict[str, IdsLink] | None = None) -> dict[str, Any]:
    """An event as the API shows it, with its asset link."""
    return {
        "id": row.id,
        "sensor": row.sensor,
        "rule_id": row.rule_id,
        "msg": row.msg,
        "severity": row.severity,
        "technique": row.technique,
        "proto": row.proto,
        "src": row.src,
        "dst": row.dst,
        "first_ts": row.first_ts,
        "last_ts": row.last_ts,
        "count": row.count,
        "incident_id": row.incident_id,
        "detail": json.loads(row.detail_json or "{}"),
        "link": link_for(table or {}, row.dst),
    }


def incident_dict(inc: IdsIncident, table: dict[str, IdsLink] | None = None) -> dict[str, Any]:
    """An incident as the API shows it."""
    return {
        "id": inc.id,
        "title": inc.title,
        "state": inc.state,
        "severity": inc.severity,
        "techniques": json.loads(inc.techniques_json or "[]"),
        "src_host": inc.src_host,
        "dst": inc.dst,
        "assignee": inc.assignee,
        "event_count": inc.event_count,
        "first_ts": inc.first_ts,
        "last_ts": inc.last_ts,
        "timeline": json.loads(inc.timeline_json or "[]"),
        "link": link_for(table or {}, inc.dst),
    }
