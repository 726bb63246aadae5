"""EPCIS events in the database: capture (all or nothing), queries, a product's history.

Capture checks every identifier first: one an event commissions (``ObjectEvent`` ``ADD``), a
transformation outputs or an aggregation ``ADD`` names as its parent may be new (it becomes an
item); any other must be a known item of the tenant or made by an earlier event of the same
document. Any problem refuses the whole document with every problem listed. Transformation
events link each input to each output; aggregation ``ADD`` links each child to its parent.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.trace import store
from gongyun.apps.trace.domain.epcis import Event, short_vocab
from gongyun.apps.trace.domain.ids import Kind, key_of
from gongyun.apps.trace.errors import EpcisDocumentInvalid
from gongyun.apps.trace.tables import event_keys, events, items
from gongyun.errors import Conflict, InvalidInput

MAX_LINKS_PER_EVENT = 100_000


def _new_kind(key: str, role: str) -> Kind:
    if key.startswith("/8004/"):
        return Kind.asset
    if key.startswith("/00/"):
        return Kind.pallet
    if "/21/" in key:
        return Kind.serial
    if role == "output":
        return Kind.batch
    return Kind.material_lot


def _creates(ev: Event) -> dict[str, str]:
    """Keys an event may introduce, with their role."""
    out: dict[str, str] = {}
    if ev.type == "ObjectEvent" and ev.action == "ADD":
        out.update({k: "epc" for k in ev.keys.get("epc", []) + ev.keys.get("epc_class", [])})
    if ev.type == "TransformationEvent":
        out.update({k: "output" for k in ev.keys.get("output", []) + ev.keys.get("output_class", [])})
    if ev.type in {"AggregationEvent", "AssociationEvent"} and ev.action == "ADD" and ev.parent:
        out[ev.parent] = "parent"
    return out


async def capture(s: AsyncSession, tenant_id: str, evs: list[Event]) -> dict[str, Any]:
    """Store a parsed document's events (``EpcisDocumentInvalid`` lists unknown identifiers)."""
    every = {k for ev in evs for ks in ev.keys.values() for k in ks} | {ev.parent for ev in evs if ev.parent}
    known = set((await store.item_ids(s, tenant_id, every)).keys())
    problems: list[dict[str, str]] = []
    new: dict[str, str] = {}
    existing = await s.execute(
        select(events.c.event_id).where(
            events.c.tenant_id == tenant_id, events.c.event_id.in_([e.event_id for e in evs])
        )
    )
    for eid in existing.scalars():
        problems.append({"path": "eventID", "message": f"event {eid} was captured already"})
    for i, ev in enumerate(evs):
        made = _creates(ev)
        refs = [(role, k) for role, ks in ev.keys.items() for k in ks]
        if ev.parent:
            refs.append(("parent", ev.parent))
        for role, k in refs:
            if k in known or k in new:
                continue
            if k in made:
                new[k] = made[k]
                continue
            problems.append(
                {"path": f"epcisBody.eventList[{i}]", "message": f"unknown identifier {k} ({role})", "key": k}
            )
    if problems:
        raise EpcisDocumentInvalid(
            f"the document has {len(problems)} problem(s); nothing was stored", errors=problems
        )
    ids = await store.item_ids(s, tenant_id, known)
    for role in ("epc", "parent", "output"):
        keys = [k for k, r in new.items() if r == role]
        if keys:
            made_ids = await store.ensure_items(s, tenant_id, keys, Kind.material_lot)
            for k in keys:  # the kind by the shape of the key
                await s.execute(
                    update(items).where(items.c.id == made_ids[k]).values(kind=_new_kind(k, role).value)
                )
            ids.update(made_ids)
    stamp = datetime.now(UTC)
    links = 0
    for ev in evs:
        try:
            async with s.begin_nested():
                result = await s.execute(
                    insert(events).returning(events.c.id),
                    [
                        {
                            "tenant_id": tenant_id,
                            "event_id": ev.event_id,
                            "event_type": ev.type,
                            "event_time": ev.event_time,
                            "record_time": stamp,
                            "action": ev.action,
                            "biz_step": ev.biz_step,
                            "disposition": ev.disposition,
                            "read_point": ev.read_point,
                            "biz_location": ev.biz_location,
                            "body": ev.body,
                        }
                    ],
                )
        except Exception:
            raise Conflict(f"event {ev.event_id} was captured already") from None
        pk = int(result.scalar_one())
        rows = {(k, role) for role, ks in ev.keys.items() for k in ks}
        if ev.parent:
            rows.add((ev.parent, "parent"))
        if rows:
            await s.execute(
                insert(event_keys),
                [{"event_pk": pk, "key": k, "role": r, "tenant_id": tenant_id} for k, r in rows],
            )
        pairs: list[tuple[int, int]] = []
        kind = ""
        if ev.type == "TransformationEvent":
            kind = "transform"
            ins = [ids[k] for k in dict.fromkeys(ev.keys.get("input", []) + ev.keys.get("input_class", []))]
            outs = [
                ids[k] for k in dict.fromkeys(ev.keys.get("output", []) + ev.keys.get("output_class", []))
            ]
            pairs = [(a, b) for a in ins for b in outs if a != b][:MAX_LINKS_PER_EVENT]
        elif ev.type == "AggregationEvent" and ev.action == "ADD" and ev.parent:
            kind = "pack"
            children = ev.keys.get("child", []) + ev.keys.get("child_class", [])
            pairs = [(ids[c], ids[ev.parent]) for c in dict.fromkeys(children)]
        if pairs:
            links += await store.add_links(
                s, tenant_id, pairs, kind, event_id=ev.event_id[:100], start_at=ev.event_time
            )
    return {"events": len(evs), "items_created": len(new), "links": links}


_PARAMS = {
    "EQ_action": events.c.action,
    "EQ_bizStep": events.c.biz_step,
    "EQ_disposition": events.c.disposition,
    "EQ_readPoint": events.c.read_point,
    "EQ_bizLocation": events.c.biz_location,
    "eventType": events.c.event_type,
}
_MATCH = {
    "MATCH_epc": ("epc", "child"),
    "MATCH_parentID": ("parent",),
    "MATCH_inputEPC": ("input",),
    "MATCH_outputEPC": ("output",),
    "MATCH_anyEPC": ("epc", "child", "parent", "input", "output"),
    "MATCH_epcClass": ("epc_class", "child_class"),
    "MATCH_inputEPCClass": ("input_class",),
    "MATCH_outputEPCClass": ("output_class",),
    "MATCH_anyEPCClass": ("epc_class", "child_class", "input_class", "output_class"),
}


def _time(value: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} is an ISO 8601 time", field=name) from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


def page_token(event_time: datetime, pk: int) -> str:
    """The opaque ``nextPageToken`` after an event (its time and row, base64url)."""
    raw = f"{event_time.astimezone(UTC).isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(token: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        when, _, pk = raw.partition("|")
        return datetime.fromisoformat(when), int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("nextPageToken is not one this server gave", field="nextPageToken") from None


async def query_page(
    s: AsyncSession, tenant_id: str, params: dict[str, str], limit: int = 1000
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of event bodies matching EPCIS 2.0 query parameters, oldest first, and the token
    of the next page (None on the last one); ``nextPageToken`` in ``params`` continues a query."""
    q = select(events.c.id, events.c.event_time, events.c.body).where(events.c.tenant_id == tenant_id)
    for name, value in params.items():
        values = [v for v in value.split(",") if v]
        if name in _PARAMS:
            if name == "EQ_bizStep":
                values = [short_vocab(v, "BizStep") for v in values]
            if name == "EQ_disposition":
                values = [short_vocab(v, "Disp") for v in values]
            q = q.where(_PARAMS[name].in_(values))
        elif name in _MATCH:
            try:
                keys = [key_of(v) for v in values]
            except ValueError as exc:
                raise InvalidInput(str(exc), field=name) from None
            sub = select(event_keys.c.event_pk).where(
                event_keys.c.tenant_id == tenant_id,
                event_keys.c.key.in_(keys),
                event_keys.c.role.in_(_MATCH[name]),
            )
            q = q.where(events.c.id.in_(sub))
        elif name in {"GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime"}:
            col = events.c.event_time if "event" in name else events.c.record_time
            t = _time(value, name)
            q = q.where(col >= t if name.startswith("GE") else col < t)
        elif name == "eventID":
            q = q.where(events.c.event_id.in_(values))
        elif name == "nextPageToken":
            when, pk = _after(value)
            q = q.where(or_(events.c.event_time > when, and_(events.c.event_time == when, events.c.id > pk)))
        elif name == "perPage":
            continue
        else:
            raise InvalidInput(f"query parameter {name} is not supported", field=name)
    rows = list(await s.execute(q.order_by(events.c.event_time, events.c.id).limit(limit + 1)))
    token = page_token(rows[limit - 1].event_time, rows[limit - 1].id) if len(rows) > limit else None
    return [dict(r.body) for r in rows[:limit]], token


async def query(
    s: AsyncSession, tenant_id: str, params: dict[str, str], limit: int = 1000
) -> list[dict[str, Any]]:
    """Event bodies matching EPCIS 2.0 query parameters, oldest first (the first ``limit``)."""
    return (await query_page(s, tenant_id, params, limit))[0]


async def events_of_keys(
    s: AsyncSession, tenant_id: str, keys: list[str], limit: int = 10_000
) -> list[dict[str, Any]]:
    """Every event naming one of these keys, oldest first."""
    pks: set[int] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        got = await s.execute(
            select(event_keys.c.event_pk).where(
                event_keys.c.tenant_id == tenant_id, event_keys.c.key.in_(chunk)
            )
        )
        pks.update(int(p) for p in got.scalars())
    out: list[tuple[datetime, int, dict[str, Any]]] = []
    ordered = sorted(pks)
    for start in range(0, len(ordered), 500):
        pk_chunk = ordered[start : start + 500]
        rows = await s.execute(
            select(events.c.id, events.c.event_time, events.c.body).where(events.c.id.in_(pk_chunk))
        )
        out.extend((r.event_time, r.id, dict(r.body)) for r in rows)
    out.sort(key=lambda t: (t[0], t[1]))
    return [b for _, _, b in out[:limit]]
