"""EPCIS 2.0 documents: validation with every problem listed, XML to JSON-LD, events to genealogy.

Capture takes an ``EPCISDocument`` (JSON-LD, or the 2.0 XML binding converted here to the same
JSON shape). Each event is kept exactly as received (so a query gives it back equal); what
Gongyun needs from it (type, times, vocabulary, the identifiers by role) is extracted beside it.
Identifiers are EPC URIs or GS1 Digital Link URIs; they map onto the items' keys
(:func:`gongyun.apps.trace.domain.ids.key_of`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gongyun.apps.trace.domain.ids import key_of

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)
ACTIONS = ("ADD", "OBSERVE", "DELETE")
BIZ_STEPS = [
    "accepting",
    "arriving",
    "assembling",
    "collecting",
    "commissioning",
    "consigning",
    "creating_class_instance",
    "cycle_counting",
    "decommissioning",
    "departing",
    "destroying",
    "disassembling",
    "dispensing",
    "encoding",
    "entering_exiting",
    "holding",
    "inspecting",
    "installing",
    "killing",
    "loading",
    "other",
    "packing",
    "picking",
    "receiving",
    "removing",
    "repackaging",
    "repairing",
    "replacing",
    "reserving",
    "retail_selling",
    "sampling",
    "sensor_reporting",
    "shipping",
    "staging_outbound",
    "stock_taking",
    "stocking",
    "storing",
    "transporting",
    "unloading",
    "unpacking",
    "void_shipping",
]
DISPOSITIONS = [
    "active",
    "available",
    "completeness_inferred",
    "completeness_verified",
    "conformant",
    "container_closed",
    "container_open",
    "damaged",
    "destroyed",
    "dispensed",
    "disposed",
    "encoded",
    "expired",
    "in_progress",
    "in_transit",
    "inactive",
    "mismatch_instance",
    "mismatch_class",
    "mismatch_quantity",
    "needs_replacement",
    "no_pedigree_match",
    "non_conformant",
    "non_sellable_other",
    "partially_dispensed",
    "recalled",
    "reserved",
    "retail_sold",
    "returned",
    "sellable_accessible",
    "sellable_not_accessible",
    "stolen",
    "unavailable",
    "unknown",
]
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
_OFFSET = re.compile(r"[+-]\d\d:\d\d")
# where identifiers sit in an event, and the role each plays in the genealogy
ID_FIELDS = {
    "epcList": "epc",
    "childEPCs": "child",
    "inputEPCList": "input",
    "outputEPCList": "output",
}
QTY_FIELDS = {
    "quantityList": "epc_class",
    "childQuantityList": "child_class",
    "inputQuantityList": "input_class",
    "outputQuantityList": "output_class",
}


@dataclass(slots=True)
class Event:
    """One captured event: the body as received and what is extracted from it."""

    event_id: str
    type: str
    event_time: datetime
    body: dict[str, Any]
    action: str | None = None
    biz_step: str | None = None
    disposition: str | None = None
    read_point: str | None = None
    biz_location: str | None = None
    keys: dict[str, list[str]] = field(default_factory=dict)
    parent: str | None = None


def short_vocab(value: str, kind: str) -> str:
    """A CBV value in its short form (``shipping``) from a URN or URI; other URIs unchanged."""
    for prefix in (f"urn:epcglobal:cbv:{kind.lower()}:", f"https://ref.gs1.org/cbv/{kind}-"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def _problem(problems: list[dict[str, str]], path: str, message: str) -> None:
    problems.append({"path": path, "message": message})


def _ident(value: Any, path: str, problems: list[dict[str, str]]) -> str | None:
    if not isinstance(value, str) or not value:
        _problem(problems, path, "an identifier is a non-empty string (EPC URI or GS1 Digital Link)")
        return None
    try:
        return key_of(value)
    except ValueError as exc:
        _problem(problems, path, str(exc))
        return None


def hashed_id(event: dict[str, Any]) -> str:
    """An event id for an event that has none: a SHA-256 of its canonical JSON."""
    digest = hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def _event(raw: Any, path: str, problems: list[dict[str, str]]) -> Event | None:
    if not isinstance(raw, dict):
        _problem(problems, path, "an event is a JSON object")
        return None
    before = len(problems)
    etype = raw.get("type")
    if etype not in EVENT_TYPES:
        _problem(problems, f"{path}.type", f"type must be one of {', '.join(EVENT_TYPES)}")
    when = raw.get("eventTime")
    event_time = datetime.now(UTC)
    if not isinstance(when, str) or not _TIME.fullmatch(when):
        _problem(problems, f"{path}.eventTime", "eventTime is required: an ISO 8601 time with its offset")
    else:
        event_time = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC)
    offset = raw.get("eventTimeZoneOffset")
    if not isinstance(offset, str) or not _OFFSET.fullmatch(offset):
        _problem(
            problems, f"{path}.eventTimeZoneOffset", "eventTimeZoneOffset is required, as +hh:mm or -hh:mm"
        )
    action = raw.get("action")
    needs_action = etype in {"ObjectEvent", "AggregationEvent", "TransactionEvent", "AssociationEvent"}
    if needs_action and action not in ACTIONS:
        _problem(problems, f"{path}.action", f"action must be one of {', '.join(ACTIONS)}")
    if etype == "TransformationEvent" and "action" in raw:
        _problem(problems, f"{path}.action", "a TransformationEvent has no action")
    biz_step = raw.get("bizStep")
    if biz_step is not None:
        if not isinstance(biz_step, str):
            _problem(problems, f"{path}.bizStep", "bizStep is a string")
            biz_step = None
        else:
            biz_step = short_vocab(biz_step, "BizStep")
            if ":" not in biz_step and biz_step not in BIZ_STEPS:
                _problem(problems, f"{path}.bizStep", f"{biz_step!r} is not a CBV business step (or a URI)")
    disposition = raw.get("disposition")
    if disposition is not None:
        if not isinstance(disposition, str):
            _problem(problems, f"{path}.disposition", "disposition is a string")
            disposition = None
        else:
            disposition = short_vocab(disposition, "Disp")
            if ":" not in disposition and disposition not in DISPOSITIONS:
                _problem(
                    problems, f"{path}.disposition", f"{disposition!r} is not a CBV disposition (or a URI)"
                )
    places: dict[str, str | None] = {}
    for name in ("readPoint", "bizLocation"):
        place = raw.get(name)
        places[name] = None
        if place is not None:
            if not isinstance(place, dict) or not isinstance(place.get("id"), str):
                _problem(problems, f"{path}.{name}", f'{name} is {{"id": "<URI>"}}')
            else:
                places[name] = place["id"]
    keys: dict[str, list[str]] = {}
    for fname, role in ID_FIELDS.items():
        values = raw.get(fname)
        if values is None:
            continue
        if not isinstance(values, list):
            _problem(problems, f"{path}.{fname}", f"{fname} is a list")
            continue
        for i, v in enumerate(values):
            k = _ident(v, f"{path}.{fname}[{i}]", problems)
            if k is not None:
                keys.setdefault(role, []).append(k)
    for fname, role in QTY_FIELDS.items():
        values = raw.get(fname)
        if values is None:
            continue
        if not isinstance(values, list):
            _problem(problems, f"{path}.{fname}", f"{fname} is a list")
            continue
        for i, q in enumerate(values):
            if not isinstance(q, dict) or "epcClass" not in q:
                _problem(problems, f"{path}.{fname}[{i}]", "a quantity element has an epcClass")
                continue
            if "quantity" in q and (not isinstance(q["quantity"], int | float) or q["quantity"] < 0):
                _problem(problems, f"{path}.{fname}[{i}].quantity", "quantity is a number >= 0")
            k = _ident(q["epcClass"], f"{path}.{fname}[{i}].epcClass", problems)
            if k is not None:
                keys.setdefault(role, []).append(k)
    parent = None
    if "parentID" in raw:
        parent = _ident(raw["parentID"], f"{path}.parentID", problems)
    if etype == "AggregationEvent" and action in {"ADD", "DELETE"} and "parentID" not in raw:
        _problem(problems, f"{path}.parentID", "an AggregationEvent ADD or DELETE names its parentID")
    if etype == "TransformationEvent" and not any(
        keys.get(r) for r in ("input", "output", "input_class", "output_class")
    ):
        _problem(problems, path, "a TransformationEvent has inputs or outputs")
    if etype == "AssociationEvent" and "parentID" not in raw:
        _problem(problems, f"{path}.parentID", "an AssociationEvent names its parentID")
    if len(problems) > before or etype is None:
        return None
    eid = raw.get("eventID")
    if eid is not None and not isinstance(eid, str):
        _problem(problems, f"{path}.eventID", "eventID is a string (a URI)")
        return None
    return Event(
        event_id=eid or hashed_id(raw),
        type=str(etype),
        event_time=event_time,
        body=raw,
        action=action if isinstance(action, str) else None,
        biz_step=biz_step,
        disposition=disposition,
        read_point=places["readPoint"],
        biz_location=places["bizLocation"],
        keys=keys,
        parent=parent,
    )


def parse_document(doc: Any) -> tuple[list[Event], list[dict[str, str]]]:
    """The events of an EPCIS 2.0 document and every problem found in it."""
    problems: list[dict[str, str]] = []
    if not isinstance(doc, dict):
        return [], [{"path": "", "message": "an EPCIS document is a JSON object"}]
    if doc.get("type") != "EPCISDocument":
        _problem(problems, "type", 'type must be "EPCISDocument"')
    if doc.get("schemaVersion") not in {"2.0", "2.0.0"}:
        _problem(problems, "schemaVersion", 'schemaVersion must be "2.0"')
    if not isinstance(doc.get("creationDate"), str) or not _TIME.fullmatch(doc["creationDate"]):
        _problem(problems, "creationDate", "creationDate is required: an ISO 8601 time with its offset")
    ctx = doc.get("@context")
    contexts = ctx if isinstance(ctx, list) else [ctx]
    if not any(isinstance(c, str) and "epcis-context.jsonld" in c for c in contexts):
        _problem(problems, "@context", f"@context must include {CONTEXT}")
    body = doc.get("epcisBody")
    event_list = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(event_list, list):
        _problem(problems, "epcisBody.eventList", "epcisBody.eventList is a list of events")
        return [], problems
    events = []
    seen: set[str] = set()
    for i, raw in enumerate(event_list):
        ev = _event(raw, f"epcisBody.eventList[{i}]", problems)
        if ev is not None:
            if ev.event_id in seen:
                _problem(problems, f"epcisBody.eventList[{i}].eventID", "eventID appears twice")
            seen.add(ev.event_id)
            events.append(ev)
    return events, problems


def document(events: list[dict[str, Any]], *, created: datetime | None = None) -> dict[str, Any]:
    """An EPCIS 2.0 document holding these event bodies."""
    return {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": (created or datetime.now(UTC))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "epcisBody": {"eventList": events},
    }


def query_document(events: list[dict[str, Any]], query_name: str = "SimpleEventQuery") -> dict[str, Any]:
    """An EPCIS 2.0 query result document."""
    doc = document(events)
    doc["type"] = "EPCISQueryDocument"
    doc["epcisBody"] = {"queryResults": {"queryName": query_name, "resultsBody": {"eventList": events}}}
    return doc
