"""Ecode (GB/T 31866, IoT identification: entity code) resolved through ``ECODE`` values.

An Ecode is ``V`` (version, one digit) + ``NSI`` (numbering system identifier) + ``MD``
(master data). Decimal structures by version, as the standard's structure table gives
them::

    V  NSI digits  MD length  total  MD characters
    0  4           <= 20      <= 25  digits
    1  4           <= 28      <= 33  digits
    2  4           <= 39      <= 44  digits
    3  5           <= 39      <= 45  digits and upper-case letters
    4  5           <= 244     <= 250 any printable UTF-8 except '/'

``GET /ecode/{code}`` answers the Handle JSON of the record carrying that ``ECODE``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gongyun.errors import MalformedIdentifier
from gongyun.idres.asgi import AsgiApp, Request, Response
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.registry import Record
from gongyun.idres.schemes import Lookup, Plan, Planner, planned, record_response

_STRUCTURE = {
    0: (4, 20, "digits"),
    1: (4, 28, "digits"),
    2: (4, 39, "digits"),
    3: (5, 39, "alnum"),
    4: (5, 244, "utf8"),
}


@dataclass(frozen=True, slots=True)
class Ecode:
    """A parsed Ecode."""

    version: int
    nsi: str
    md: str

    def __str__(self) -> str:
        return f"{self.version}{self.nsi}{self.md}"


def parse(text: str) -> Ecode:
    """Validate an Ecode (raises ``MalformedIdentifier`` naming the part that is wrong)."""
    if not text or not text[0].isascii() or not text[0].isdigit():
        raise MalformedIdentifier("an Ecode starts with its version digit 0..4", reason="ecode_version")
    version = int(text[0])
    if version not in _STRUCTURE:
        raise MalformedIdentifier(f"Ecode version {version} is not defined (0..4)", reason="ecode_version")
    nsi_len, md_max, charset = _STRUCTURE[version]
    nsi, md = text[1 : 1 + nsi_len], text[1 + nsi_len :]
    if len(nsi) != nsi_len or not nsi.isascii() or not nsi.isdigit():
        raise MalformedIdentifier(f"Ecode V{version} needs a {nsi_len}-digit NSI", reason="ecode_nsi")
    if not md or len(md) > md_max:
        raise MalformedIdentifier(
            f"Ecode V{version} master data is 1..{md_max} characters", reason="ecode_md_length"
        )
    if charset == "digits" and not (md.isascii() and md.isdigit()):
        raise MalformedIdentifier(f"Ecode V{version} master data is digits only", reason="ecode_md_charset")
    if charset == "alnum" and not all(c.isascii() and (c.isdigit() or c.isupper()) for c in md):
        raise MalformedIdentifier(
            "Ecode V3 master data is digits and upper-case letters", reason="ecode_md_charset"
        )
    if charset == "utf8" and (not md.isprintable() or "/" in md):
        raise MalformedIdentifier(
            "Ecode V4 master data is printable text without '/'", reason="ecode_md_charset"
        )
    return Ecode(version, nsi, md)


def plan(req: Request) -> Plan:
    """``GET /ecode/{code}``: one lookup of the record carrying the ``ECODE`` value."""
    code = str(parse(req.path[len("/ecode/") :]))

    def answer(found: list[Record | None]) -> Response:
        rec = found[0]
        if rec is None:
            raise HandleNotFound(f"no record carries Ecode {code}")
        return record_response({"responseCode": 1, "ecode": code}, rec)

    return Plan([[{"ECODE": code}]], answer)


@dataclass(frozen=True)
class EcodeAdapter:
    """Mounts ``GET /ecode/{code}``."""

    name: str = "ecode"

    def planners(self) -> dict[str, Planner]:
        """The endpoint's planner by mount prefix."""
        return {"/ecode/": plan}

    def install(self, app: AsgiApp, lookup: Lookup) -> None:
        """Mount the endpoint."""
        app.mount("/ecode/", planned(plan, lookup))


ADAPTER = EcodeAdapter()
