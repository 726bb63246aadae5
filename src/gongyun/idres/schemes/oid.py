"""Object identifiers (ITU-T X.660): ``1.2.156.…`` resolved through ``OID`` values.

Syntax: dot-separated arcs of decimal digits without leading zeros; the first arc is 0,
1 or 2 and, under 0 and 1, the second arc is at most 39. ``GET /oid/{oid}`` answers the
Handle JSON of the record carrying that ``OID`` value.
"""

from __future__ import annotations

from dataclasses import dataclass

from gongyun.errors import MalformedIdentifier
from gongyun.idres.asgi import AsgiApp, Request, Response
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.registry import Record
from gongyun.idres.schemes import Lookup, Plan, Planner, planned, record_response

MAX_ARCS = 128
CHINA_ARC = "1.2.156"


def parse(text: str) -> str:
    """Validate an OID and return it (raises ``MalformedIdentifier`` with the reason)."""
    if text.lower().startswith("urn:oid:"):
        text = text[8:]
    arcs = text.split(".")
    if not text or len(arcs) < 2 or len(arcs) > MAX_ARCS:
        raise MalformedIdentifier(f"an OID has 2..{MAX_ARCS} arcs", reason="oid_arcs")
    for i, arc in enumerate(arcs):
        if not arc.isascii() or not arc.isdigit():
            raise MalformedIdentifier(f"OID arc {i + 1} ({arc[:20]!r}) is not a number", reason="oid_arc")
        if len(arc) > 1 and arc[0] == "0":
            raise MalformedIdentifier(f"OID arc {i + 1} has a leading zero", reason="oid_leading_zero")
        if len(arc) > 40:
            raise MalformedIdentifier(f"OID arc {i + 1} is too long", reason="oid_arc")
    if int(arcs[0]) > 2:
        raise MalformedIdentifier("the first OID arc must be 0, 1 or 2", reason="oid_root")
    if int(arcs[0]) < 2 and int(arcs[1]) > 39:
        raise MalformedIdentifier("under arcs 0 and 1 the second arc is at most 39", reason="oid_second_arc")
    return text


def is_chinese(oid: str) -> bool:
    """True for OIDs under China's national arc ``1.2.156``."""
    return oid == CHINA_ARC or oid.startswith(CHINA_ARC + ".")


def plan(req: Request) -> Plan:
    """``GET /oid/{oid}``: one lookup of the record carrying the ``OID`` value."""
    oid = parse(req.path[len("/oid/") :])

    def answer(found: list[Record | None]) -> Response:
        rec = found[0]
        if rec is None:
            raise HandleNotFound(f"no record carries OID {oid}")
        return record_response({"responseCode": 1, "oid": oid}, rec)

    return Plan([[{"OID": oid}]], answer)


@dataclass(frozen=True)
class OidAdapter:
    """Mounts ``GET /oid/{oid}``."""

    name: str = "oid"

    def planners(self) -> dict[str, Planner]:
        """The endpoint's planner by mount prefix."""
        return {"/oid/": plan}

    def install(self, app: AsgiApp, lookup: Lookup) -> None:
        """Mount the endpoint."""
        app.mount("/oid/", planned(plan, lookup))


ADAPTER = OidAdapter()
