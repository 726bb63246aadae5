"""The security events centre: sensors, events, incidents, SIEM export, situational awareness.

Sensors normally ship over the bus (``ids.<tenant>.<sensor>.events``); ``POST
/sensors/{sensor}/events`` takes the same body over HTTP for sensors that cannot reach the bus.
Everything is tenant-scoped (the session adds the tenant to every query).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter, defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from gongyun.api.deps import Ctx, require
from gongyun.errors import NotFound, ServiceUnavailable
from gongyun.platform.ids import notify_incident
from gongyun.security.ids import store
from gongyun.security.ids.export import cef_line, syslog_line
from gongyun.security.ids.sensor import subject
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/api/v1/ids", tags=["security events"])

Read = Annotated[Ctx, Depends(require(Perm.security_read))]
Write = Annotated[Ctx, Depends(require(Perm.security_write))]
SensorName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
_SEV = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class EventsIn(BaseModel):
    """Events as a sensor ships them (``Event.to_dict()``)."""

    model_config = ConfigDict(extra="forbid")
    events: list[dict[str, Any]] = Field(max_length=1000)


class HealthIn(BaseModel):
    """A sensor's health report (``Sensor.health()``)."""

    model_config = ConfigDict(extra="forbid")
    health: dict[str, Any]


class IncidentPatch(BaseModel):
    """A state change, an assignment and/or a note."""

    model_config = ConfigDict(extra="forbid")
    state: str | None = Field(
        default=None, pattern=r"^(new|investigating|contained|resolved|false_positive)$"
    )
    assignee: str | None = Field(default=None, max_length=255)
    note: str | None = Field(default=None, max_length=4000)


class LinkIn(BaseModel):
    """What a network endpoint is: a device, its asset path, its identifier."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(min_length=1, max_length=80)
    device: str | None = Field(default=None, max_length=255)
    asset_path: str | None = Field(default=None, max_length=1024)
    identifier: str | None = Field(default=None, max_length=1024)


async def _sensor_row(ctx: Ctx, name: str) -> store.IdsSensor:
    row = (
        await ctx.session.execute(select(store.IdsSensor).where(store.IdsSensor.name == name))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("sensor not found")
    return row


def _sensor_dict(row: store.IdsSensor, *, full: bool = False) -> dict[str, Any]:
    health = json.loads(row.health_json or "{}")
    age = time.time() - row.last_seen.timestamp()
    out = {
        "name": row.name,
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "status": "ok" if age < 60 else "stale",
        "packets": health.get("packets"),
        "packets_per_s": health.get("packets_per_s"),
        "drops": health.get("drops"),
        "outbox": health.get("outbox"),
        "learning": health.get("learning"),
        "skips": (health.get("stats") or {}).get("skips", {}),
    }
    if full:
        out["health"] = health
    return out


@router.get("/sensors", summary="List the tenant's sensors with their health")
async def list_sensors(ctx: Read) -> list[dict[str, Any]]:
    """Sensors that reported to this tenant, with their latest health."""
    rows = (await ctx.session.execute(select(store.IdsSensor).order_by(store.IdsSensor.name))).scalars()
    return [_sensor_dict(r) for r in rows]


@router.get("/sensors/{sensor}", summary="One sensor's health report")
async def get_sensor(sensor: str, ctx: Read) -> dict[str, Any]:
    """A sensor's full latest health report (counters, skips, communication map)."""
    return _sensor_dict(await _sensor_row(ctx, sensor), full=True)


@router.post("/sensors/{sensor}/events", status_code=201, summary="Ingest a sensor's events over HTTP")
async def post_events(sensor: SensorName, body: EventsIn, ctx: Write) -> dict[str, Any]:
    """Store events as if they came over the bus: de-duplicated and grouped into incidents."""
    await store.touch_sensor(ctx.session, ctx.tenant_id, sensor, None)
    events = [{**e, "sensor": sensor} for e in body.events]
    opened = [store.incident_dict(i) for i in await store.ingest(ctx.session, ctx.tenant_id, events)]
    platform, tenant = ctx.platform, ctx.tenant_id

    async def notify() -> None:
        for inc in opened:
            await notify_incident(platform, tenant, inc)

    ctx.committed.append(notify)
    return {"received": len(events), "incidents_opened": [i["id"] for i in opened]}


@router.post("/sensors/{sensor}/health", status_code=204, summary="Report a sensor's health over HTTP")
async def post_health(sensor: SensorName, body: HealthIn, ctx: Write) -> None:
    """Store a health report as if it came over the bus."""
    await store.touch_sensor(ctx.session, ctx.tenant_id, sensor, body.health)


@router.get("/events", summary="List events, newest first")
async def list_events(
    ctx: Read,
    severity: Annotated[str | None, Query(pattern=r"^(low|medium|high|critical)$")] = None,
    technique: Annotated[str | None, Query(max_length=16)] = None,
    incident_id: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[float | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Events of the tenant, filtered, with the asset/device/identifier each one concerns."""
    q = select(store.IdsEvent).order_by(store.IdsEvent.last_ts.desc()).limit(limit)
    if severity:
        q = q.where(store.IdsEvent.severity == severity)
    if technique:
        q = q.where(store.IdsEvent.technique == technique)
    if incident_id:
        q = q.where(store.IdsEvent.incident_id == incident_id)
    if since is not None:
        q = q.where(store.IdsEvent.last_ts >= since)
    links = await store.links(ctx.session)
    return [store.event_dict(r, links) for r in (await ctx.session.execute(q)).scalars()]


@router.get("/events/{event_id}", summary="One event")
async def get_event(event_id: str, ctx: Read) -> dict[str, Any]:
    """An event with its detail and link."""
    row = (
        await ctx.session.execute(select(store.IdsEvent).where(store.IdsEvent.id == event_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("event not found")
    return store.event_dict(row, await store.links(ctx.session))


@router.post("/events/{event_id}/accept", summary="Accept a baseline deviation as normal")
async def accept_event(event_id: str, ctx: Write) -> dict[str, Any]:
    """Tell the sensor to extend its learned baseline with this deviation (audited)."""
    row = (
        await ctx.session.execute(select(store.IdsEvent).where(store.IdsEvent.id == event_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("event not found")
    detail = json.loads(row.detail_json or "{}")
    if not detail.get("learn"):
        return {"accepted": False, "reason": "this event is not a baseline deviation"}
    await ctx.audit(
        "ids.baseline.accept", event_id, sensor=row.sensor, rule=row.rule_id, learn=detail["learn"]
    )
    body = json.dumps({"accept": {"detail": {"learn": detail["learn"]}}, "by": ctx.actor}).encode()
    platform, tenant, sensor = ctx.platform, ctx.tenant_id, row.sensor

    async def tell() -> None:
        with contextlib.suppress(ServiceUnavailable):  # the audit entry stands; accept again later
            await platform.bus.publish(subject(tenant, sensor, "control"), body)

    ctx.committed.append(tell)
    return {"accepted": True, "sensor": row.sensor, "learn": detail["learn"]}


@router.get("/incidents", summary="List incidents, newest first")
async def list_incidents(
    ctx: Read,
    state: Annotated[
        str | None, Query(pattern=r"^(new|investigating|contained|resolved|false_positive|open)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Incidents of the tenant (``state=open``: new, investigating or contained)."""
    q = select(store.IdsIncident).order_by(store.IdsIncident.last_ts.desc()).limit(limit)
    if state == "open":
        q = q.where(store.IdsIncident.state.in_(store.OPEN_STATES))
    elif state:
        q = q.where(store.IdsIncident.state == state)
    links = await store.links(ctx.session)
    return [store.incident_dict(i, links) for i in (await ctx.session.execute(q)).scalars()]


@router.get("/incidents/{incident_id}", summary="One incident with its timeline and events")
async def get_incident(incident_id: str, ctx: Read) -> dict[str, Any]:
    """An incident, its timeline and its events."""
    inc = await store.get_incident(ctx.session, incident_id)
    links = await store.links(ctx.session)
    out = store.incident_dict(inc, links)
    q = select(store.IdsEvent).where(store.IdsEvent.incident_id == inc.id).order_by(store.IdsEvent.first_ts)
    out["events"] = [store.event_dict(r, links) for r in (await ctx.session.execute(q)).scalars()]
    return out


@router.patch("/incidents/{incident_id}", summary="Move, assign or annotate an incident")
async def patch_incident(incident_id: str, body: IncidentPatch, ctx: Write) -> dict[str, Any]:
    """Change the state (new, investigating, contained, resolved, false_positive), assignee or add a note."""
    inc = await store.update_incident(
        ctx.session, incident_id, by=ctx.actor, state=body.state, assignee=body.assignee, note=body.note
    )
    await ctx.audit("ids.incident.update", incident_id, **body.model_dump(exclude_none=True))
    return store.incident_dict(inc, await store.links(ctx.session))


@router.get("/links", summary="List endpoint links to devices, assets and identifiers")
async def list_links(ctx: Read) -> list[dict[str, Any]]:
    """Endpoint → device/asset/identifier links used to describe events."""
    table = await store.links(ctx.session)
    return [store.link_for(table, k) or {} for k in sorted(table)]


@router.put("/links", summary="Link a network endpoint to a device, asset and identifier")
async def put_link(body: LinkIn, ctx: Write) -> dict[str, Any]:
    """Create or replace the link of ``host:port`` (or ``host``)."""
    row = await store.set_link(
        ctx.session,
        ctx.tenant_id,
        body.endpoint,
        device=body.device,
        asset_path=body.asset_path,
        identifier=body.identifier,
    )
    await ctx.audit("ids.link.put", body.endpoint)
    return store.link_for({row.endpoint: row}, row.endpoint) or {}


@router.get(
    "/export", summary="Export events for a SIEM (syslog RFC 5424 or CEF)", response_class=PlainTextResponse
)
async def export(
    ctx: Read,
    fmt: Annotated[str, Query(alias="format", pattern=r"^(syslog|cef)$")] = "syslog",
    since: Annotated[float | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> PlainTextResponse:
    """One line per event, oldest first."""
    q = select(store.IdsEvent).order_by(store.IdsEvent.last_ts).limit(limit)
    if since is not None:
        q = q.where(store.IdsEvent.last_ts >= since)
    links = await store.links(ctx.session)
    line = syslog_line if fmt == "syslog" else cef_line
    rows = [store.event_dict(r, links) for r in (await ctx.session.execute(q)).scalars()]
    return PlainTextResponse("".join(line(e) + "\n" for e in rows))


@router.get("/overview", summary="Situational awareness: map, timeline, incidents, talkers, risk, sensors")
async def overview(ctx: Read, hours: Annotated[float, Query(gt=0, le=24 * 3660)] = 24) -> dict[str, Any]:
    """Everything the situational-awareness page draws, in one answer."""
    since = time.time() - hours * 3600
    links = await store.links(ctx.session)
    events = list(
        (
            await ctx.session.execute(
                select(store.IdsEvent).where(store.IdsEvent.last_ts >= since).order_by(store.IdsEvent.last_ts)
            )
        ).scalars()
    )
    incidents = list((await ctx.session.execute(select(store.IdsIncident))).scalars())
    sensors = list((await ctx.session.execute(select(store.IdsSensor))).scalars())
    anomalous: set[tuple[str, str]] = set()
    risk: dict[str, dict[str, Any]] = defaultdict(lambda: {"events": 0, "score": 0, "exposure": set()})
    for e in events:
        anomalous.add((store.src_host(e.src), e.dst))
        r = risk[e.dst]
        r["events"] += e.count
        r["score"] += _SEV.get(e.severity, 1) * e.count
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    talkers: Counter[str] = Counter()
    for s in sensors:
        health = json.loads(s.health_json or "{}")
        for f in health.get("flows", []):
            k = (f["orig"], f["resp"], f["service"])
            edge = edges.setdefault(
                k, {"orig": k[0], "resp": k[1], "service": k[2], "packets": 0, "bytes": 0}
            )
            edge["packets"] += f.get("packets", 0)
            edge["bytes"] += f.get("bytes", 0)
            talkers[f["orig"]] += f.get("bytes", 0)
            talkers[f["resp"]] += f.get("bytes", 0)
            if f["service"] in ("modbus", "mqtt"):  # protocols without authentication on the wire
                for ep in (f["resp"],):
                    risk[ep]["exposure"].add(f"{f['service']} (no authentication)")
    for e in events:
        pol = json.loads(e.detail_json or "{}").get("record", {}).get("security_policy")
        if e.proto == "opcua" and pol == "None":
            risk[e.dst]["exposure"].add("OPC UA without security")
    for edge in edges.values():
        edge["anomalous"] = (edge["orig"], edge["resp"]) in anomalous
    by_sev = Counter(i.severity for i in incidents if i.state in store.OPEN_STATES)
    by_tech: Counter[str] = Counter()
    for i in incidents:
        for t in json.loads(i.techniques_json or "[]"):
            by_tech[t] += 1
    return {
        "generated": time.time(),
        "map": list(edges.values()),
        "timeline": [store.event_dict(e, links) for e in events[-500:]],
        "incidents": {
            "open": sum(1 for i in incidents if i.state in store.OPEN_STATES),
            "by_state": dict(Counter(i.state for i in incidents)),
            "by_severity": dict(by_sev),
            "by_technique": dict(by_tech.most_common(20)),
            "latest": [
                store.incident_dict(i, links) for i in sorted(incidents, key=lambda i: -i.last_ts)[:20]
            ],
        },
        "top_talkers": [{"host": h, "bytes": b} for h, b in talkers.most_common(10)],
        "asset_risk": sorted(
            (
                {
                    "endpoint": k,
                    "events": v["events"],
                    "score": v["score"] + 2 * len(v["exposure"]),
                    "exposure": sorted(v["exposure"]),
                    "link": store.link_for(links, k),
                }
                for k, v in risk.items()
            ),
            key=lambda r: -r["score"],
        ),
        "sensors": [_sensor_dict(s) for s in sensors],
    }
