"""GS1 Digital Link resolution onto identifier records.

URIs ``/01/{gtin}[/10/{lot}][/21/{serial}]`` (GTIN-8/12/13/14, check digit verified, lot
and serial in GS1's 82-character set, at most 20 characters). A record answers for a key
when it carries ``GS1_GTIN`` (14 digits) and, for lot or serial level, ``GY_LOT`` /
``GY_SERIAL``; a less specific record answers when no more specific one exists. Its links
are ``GS1_LINK`` values (``"<linkType> <href> [title]"``) plus its ``URL`` values as
``gs1:defaultLink``. Answers: 307 to the default link (or to the one link of the requested
``linkType``), 300 with a linkset when several links fit, 404 when none does, and the
RFC 9264 linkset JSON for ``linkType=linkset``/``all`` or ``Accept: application/linkset+json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from gongyun.errors import InvalidInput, MalformedIdentifier
from gongyun.idres.asgi import AsgiApp, Request, Response, json_response
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.registry import Record
from gongyun.idres.schemes import Lookup

VOCAB = "https://gs1.org/voc/"
DEFAULT = "gs1:defaultLink"
_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")


class InvalidGS1Key(MalformedIdentifier):
    """A GS1 key is malformed or its check digit is wrong."""

    code = "gs1_key_invalid"
    title = "Invalid GS1 key"


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of the digits before it."""
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalise_gtin(gtin: str) -> str:
    """Validate a GTIN-8/12/13/14 and return it as 14 digits."""
    if not gtin.isascii() or not gtin.isdigit() or len(gtin) not in {8, 12, 13, 14}:
        raise InvalidGS1Key(f"a GTIN has 8, 12, 13 or 14 digits, got {gtin[:20]!r}", reason="gtin_length")
    expected = check_digit(gtin[:-1])
    if int(gtin[-1]) != expected:
        raise InvalidGS1Key(
            f"GTIN {gtin} has check digit {gtin[-1]}, expected {expected}", reason="gtin_check_digit"
        )
    return gtin.zfill(14)


@dataclass(frozen=True, slots=True)
class DigitalLink:
    """A parsed Digital Link path."""

    gtin: str
    lot: str | None = None
    serial: str | None = None

    @property
    def path(self) -> str:
        """The canonical path ``/01/…[/10/…][/21/…]``."""
        out = f"/01/{self.gtin}"
        if self.lot:
            out += f"/10/{self.lot}"
        if self.serial:
            out += f"/21/{self.serial}"
        return out

    def criteria(self) -> list[dict[str, str]]:
        """Reverse-lookup criteria, most specific first."""
        base = {"GS1_GTIN": self.gtin}
        out = []
        if self.serial and self.lot:
            out.append(base | {"GY_LOT": self.lot, "GY_SERIAL": self.serial})
        if self.serial:
            out.append(base | {"GY_SERIAL": self.serial})
        if self.lot:
            out.append(base | {"GY_LOT": self.lot, "!GY_SERIAL": ""})
        out.append(base | {"!GY_LOT": "", "!GY_SERIAL": ""})
        return out


def parse_path(path: str) -> DigitalLink:
    """Parse ``/01/{gtin}[/10/{lot}][/21/{serial}]`` (raises ``InvalidGS1Key``)."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "01" or len(parts) % 2:
        raise InvalidGS1Key("a Digital Link path is /01/{gtin}[/10/{lot}][/21/{serial}]", reason="gs1_path")
    gtin = normalise_gtin(parts[1])
    qualifiers: dict[str, str] = {}
    order = ["10", "21"]
    last = -1
    for ai, value in zip(parts[2::2], parts[3::2], strict=True):
        if ai not in order or order.index(ai) <= last:
            raise InvalidGS1Key(
                f"qualifier AI {ai[:8]} is not allowed here (10 then 21)", reason="gs1_qualifier"
            )
        last = order.index(ai)
        if not _CSET82.fullmatch(value):
            raise InvalidGS1Key(
                f"AI {ai} value must be 1..20 characters of GS1 character set 82", reason="gs1_charset"
            )
        qualifiers[ai] = value
    return DigitalLink(gtin, qualifiers.get("10"), qualifiers.get("21"))


def links_of(record: Record) -> list[dict[str, str]]:
    """The record's links: ``GS1_LINK`` values and ``URL`` values as default links."""
    links: list[dict[str, str]] = []
    for v in record.values:
        if not isinstance(v.value, str):
            continue
        if v.type == "GS1_LINK":
            parts = v.value.split(" ", 2)
            if len(parts) >= 2:
                link = {"linkType": parts[0], "href": parts[1]}
                if len(parts) == 3:
                    link["title"] = parts[2]
                links.append(link)
        elif v.type == "URL":
            links.append({"linkType": DEFAULT, "href": v.value})
    return links


def _expand(link_type: str) -> str:
    return VOCAB + link_type[4:] if link_type.startswith("gs1:") else link_type


def linkset(anchor: str, links: list[dict[str, str]]) -> dict[str, Any]:
    """An RFC 9264 linkset document."""
    entry: dict[str, Any] = {"anchor": anchor}
    for link in links:
        target: dict[str, str] = {"href": link["href"]}
        if "title" in link:
            target["title"] = link["title"]
        entry.setdefault(_expand(link["linkType"]), []).append(target)
    return {"linkset": [entry]}


def _linkset_response(status: int, anchor: str, links: list[dict[str, str]]) -> Response:
    return Response(
        status, orjson.dumps(linkset(anchor, links)), [(b"content-type", b"application/linkset+json")]
    )


@dataclass(frozen=True)
class GS1Adapter:
    """Mounts ``/01/…`` and ``/.well-known/gs1resolver``."""

    name: str = "gs1"

    def install(self, app: AsgiApp, lookup: Lookup) -> None:
        """Mount the endpoints."""

        async def resolve(req: Request) -> Response:
            key = parse_path(req.path)
            record = await lookup(key.criteria())
            if record is None:
                raise HandleNotFound(f"no record for GS1 key {key.path}", handle=key.path)
            links = links_of(record)
            host = req.headers.get("host", "localhost")
            anchor = f"http://{host}{key.path}"
            link_type = req.arg("linkType")
            wants_set = "application/linkset+json" in req.headers.get("accept", "")
            if link_type in {"linkset", "all"} or wants_set:
                return _linkset_response(200, anchor, links)
            if link_type:
                if not re.fullmatch(r"[A-Za-z0-9:_./-]{1,200}", link_type):
                    raise InvalidInput("linkType is malformed")
                fit = [lk for lk in links if lk["linkType"] in {link_type, _expand(link_type)}]
            else:
                fit = [lk for lk in links if lk["linkType"] == DEFAULT][:1]
            if not fit:
                raise HandleNotFound(f"no {link_type or 'default'} link for {key.path}", handle=record.handle)
            if len(fit) > 1:
                return _linkset_response(300, anchor, fit)
            return Response(
                307,
                b"",
                [
                    (b"location", fit[0]["href"].encode()),
                    (b"link", f'<{anchor}?linkType=linkset>; rel="linkset"'.encode()),
                ],
            )

        async def description(req: Request) -> Response:
            host = req.headers.get("host", "localhost")
            return json_response(
                200,
                {
                    "name": "Gongyun GS1 Digital Link resolver",
                    "resolverRoot": f"http://{host}",
                    "supportedPrimaryKeys": ["01"],
                    "supportedQualifiers": {"01": ["10", "21"]},
                    "linkTypeDefaultCanBeLinkset": True,
                    "supportedLinkType": [
                        DEFAULT,
                        "gs1:pip",
                        "gs1:certificationInfo",
                        "gs1:sustainabilityInfo",
                    ],
                },
            )

        app.mount("/01/", resolve)
        app.mount("/.well-known/gs1resolver", description)


ADAPTER = GS1Adapter()
