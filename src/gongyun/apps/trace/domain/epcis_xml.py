"""EPCIS 2.0 XML documents converted to the JSON-LD shape (the fields Gongyun reads and keeps).

Elements in the EPCIS namespace become JSON members as the JSON binding names them
(``epcList``/``epc`` → a list, ``readPoint``/``id`` → ``{"id": ...}``, quantity elements,
business transactions, sources and destinations); CBV URNs of ``bizStep`` and ``disposition``
become their short names. Problems (not XML, no EventList) are returned, not raised.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from gongyun.apps.trace.domain.epcis import CONTEXT, short_vocab

_LISTS = {
    "epcList": "epc",
    "childEPCs": "epc",
    "inputEPCList": "epc",
    "outputEPCList": "epc",
}
_QTY = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
_TEXT = (
    "eventTime",
    "eventTimeZoneOffset",
    "recordTime",
    "eventID",
    "action",
    "parentID",
    "transformationID",
)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _event(el: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _local(el.tag)}
    for c in el:
        name = _local(c.tag)
        text = (c.text or "").strip()
        if name in _TEXT:
            out[name] = text
        elif name in _LISTS:
            out[name] = [(e.text or "").strip() for e in c if _local(e.tag) == _LISTS[name]]
        elif name in _QTY:
            items = []
            for q in c:
                item: dict[str, Any] = {}
                for f in q:
                    v = (f.text or "").strip()
                    fname = _local(f.tag)
                    item[fname] = float(v) if fname == "quantity" else v
                items.append(item)
            out[name] = items
        elif name == "bizStep":
            out[name] = short_vocab(text, "BizStep")
        elif name == "disposition":
            out[name] = short_vocab(text, "Disp")
        elif name in {"readPoint", "bizLocation"}:
            ident = _child(c, "id")
            out[name] = {"id": (ident.text or "").strip() if ident is not None else ""}
        elif name == "bizTransactionList":
            out[name] = [
                {"type": short_vocab(t.get("type", ""), "BTT"), "bizTransaction": (t.text or "").strip()}
                for t in c
            ]
        elif name in {"sourceList", "destinationList"}:
            tag = "source" if name == "sourceList" else "destination"
            out[name] = [
                {"type": short_vocab(t.get("type", ""), "SDT"), tag: (t.text or "").strip()} for t in c
            ]
    return out


def xml_to_document(data: bytes) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """The JSON-LD shape of an EPCIS 2.0 XML document, or problems."""
    try:
        root = ET.fromstring(data)  # noqa: S314 (no DTDs or entities are expanded by ElementTree)
    except ET.ParseError as exc:
        return None, [{"path": "", "message": f"not well-formed XML: {exc}"}]
    if _local(root.tag) != "EPCISDocument":
        return None, [{"path": "", "message": "the root element must be EPCISDocument"}]
    body = _child(root, "EPCISBody")
    events_el = _child(body, "EventList") if body is not None else None
    if events_el is None:
        return None, [{"path": "EPCISBody.EventList", "message": "EPCISBody/EventList is missing"}]
    events: list[dict[str, Any]] = []
    for el in events_el:
        if _local(el.tag) == "extension":
            events.extend(_event(e) for e in el)
        else:
            events.append(_event(el))
    doc = {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": root.get("schemaVersion", ""),
        "creationDate": root.get("creationDate", ""),
        "epcisBody": {"eventList": events},
    }
    return doc, []
