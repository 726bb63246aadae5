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
from urllib.parse import quote, unquote

import orjson

from gongyun.errors import InvalidInput, MalformedIdentifier
from gongyun.idres.asgi import AsgiApp, Request, Response, json_response
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.registry import Record
from gongyun.idres.schemes import Lookup, Plan, Planner, gs1_compress, planned

VOCAB = "https://gs1.org/voc/"
DEFAULT = "gs1:defaultLink"
_LINK_TYPE = re.compile(r"[A-Za-z0-9:_./-]{1,200}")
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
class PrimaryKey:
    """A GS1 primary key served as a Digital Link path: its record type and qualifiers."""

    ai: str
    record_type: str
    qualifiers: tuple[str, ...] = ()


PRIMARY_KEYS: dict[str, PrimaryKey] = {
    "01": PrimaryKey("01", "GS1_GTIN", ("22", "10", "21")),
    "00": PrimaryKey("00", "GS1_SSCC"),
    "414": PrimaryKey("414", "GS1_GLN", ("254",)),
    "8003": PrimaryKey("8003", "GS1_GRAI"),
    "8004": PrimaryKey("8004", "GS1_GIAI"),
}
QUALIFIER_TYPES = {"22": "GS1_CPV", "10": "GY_LOT", "21": "GY_SERIAL", "254": "GS1_GLNX"}
# percent-encodings the Digital Link grammar allows in a value (XSYMBOL), besides - . _
_XCHAR = r"(?:[0-9A-Za-z._-]|%(?:2[12256789ABCFabcf]|3[A-Fa-f]))"
_XCHARS = re.compile(f"{_XCHAR}+")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class DigitalLink:
    """A parsed Digital Link: primary key, key qualifiers (in path order) and data attributes."""

    gtin: str
    lot: str | None = None
    serial: str | None = None
    ai: str = "01"
    qualifiers: tuple[tuple[str, str], ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """The primary key's value (``gtin`` holds it for every key type)."""
        return self.gtin

    @property
    def path(self) -> str:
        """The canonical path ``/{ai}/{key}[/{qualifier}/{value}]...`` (values percent-encoded)."""
        out = f"/{self.ai}/{quote(self.gtin, safe='')}"
        for ai, value in self.qualifiers:
            out += f"/{ai}/{quote(value, safe='')}"
        return out

    def criteria(self) -> list[dict[str, str]]:
        """Reverse-lookup criteria, most specific first (serial, then lot, then the bare key)."""
        pk = PRIMARY_KEYS[self.ai]
        base = {pk.record_type: self.gtin}
        out: list[dict[str, str]] = []
        quals = list(self.qualifiers)
        for level in range(len(quals), -1, -1):
            given = dict(quals[:level])
            crit = base | {QUALIFIER_TYPES[ai]: v for ai, v in given.items()}
            deepest = max((pk.qualifiers.index(ai) for ai in given), default=-1)
            for ai in pk.qualifiers[deepest + 1 :]:
                crit["!" + QUALIFIER_TYPES[ai]] = ""
            out.append(crit)
            if level == len(quals) and "21" in given and len(given) > 1:
                out.append(base | {"GY_SERIAL": given["21"]})
        return out


def _key_value(ai: str, raw: str) -> str:
    """Validate a primary key's value (raw, still percent-encoded) and return it decoded."""
    if ai == "01":
        return normalise_gtin(raw)
    if ai in {"00", "414"}:
        size = 18 if ai == "00" else 13
        if not _DIGITS.fullmatch(raw) or len(raw) != size:
            raise InvalidGS1Key(f"AI {ai} is {size} digits", reason="gs1_key_length")
        _check(ai, raw)
        return raw
    if ai == "8003":
        if not _DIGITS.fullmatch(raw[:14]) or len(raw) < 14:
            raise InvalidGS1Key("a GRAI is 14 digits then up to 16 characters", reason="gs1_key_length")
        _check(ai, raw[:14])
        if len(raw) > 14:
            return raw[:14] + _xvalue(ai, raw[14:], 16)
        return raw
    return _xvalue(ai, raw, 30)


def _check(ai: str, digits: str) -> None:
    expected = check_digit(digits[:-1])
    if int(digits[-1]) != expected:
        raise InvalidGS1Key(
            f"AI {ai} value {digits} has check digit {digits[-1]}, expected {expected}",
            reason="gs1_check_digit",
        )


def _xvalue(ai: str, raw: str, max_len: int) -> str:
    """A value of GS1 character set 82 as the grammar writes it in a URI, decoded."""
    if not _XCHARS.fullmatch(raw):
        raise InvalidGS1Key(
            f"AI {ai} value must be characters of GS1 character set 82 (percent-encoded)",
            reason="gs1_charset",
        )
    value = unquote(raw)
    if not 1 <= len(value) <= max_len or not _CSET82.fullmatch(value[:20] or "x"):
        raise InvalidGS1Key(f"AI {ai} value must be 1..{max_len} characters", reason="gs1_charset")
    return value


def _attribute(ai: str, value: str) -> None:
    """Validate a data attribute (a numeric query key) against the AI table."""
    t = gs1_compress.tables()
    if ai not in t["query"]:
        raise InvalidGS1Key(f"AI {ai[:8]} is not a data attribute", reason="gs1_attribute")
    rest = value
    for kind, fixed, length in t["formats"][ai]:
        if kind == "N":
            m = re.match(f"[0-9]{{{length}}}" if fixed == "L" else f"[0-9]{{0,{length}}}", rest)
            if m is None or (fixed == "M" and not m.group()):
                raise InvalidGS1Key(f"AI {ai} value {value[:40]!r} is malformed", reason="gs1_attribute")
        else:
            m = re.match(
                r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{" + (f"{length}}}" if fixed == "L" else f"1,{length}}}"),
                rest,
            )
            if m is None:
                raise InvalidGS1Key(f"AI {ai} value {value[:40]!r} is malformed", reason="gs1_attribute")
        rest = rest[m.end() :]
    if rest:
        raise InvalidGS1Key(f"AI {ai} value {value[:40]!r} is too long", reason="gs1_attribute")


def _from_ais(ais: dict[str, str], extra: list[tuple[str, str]]) -> DigitalLink:
    """A Digital Link from decompressed AI values."""
    primary = next((ai for ai in ais if ai in PRIMARY_KEYS), None)
    if primary is None:
        raise InvalidGS1Key("the compressed Digital Link has no primary key", reason="gs1_compressed")
    pk = PRIMARY_KEYS[primary]
    key = ais[primary]
    quals = tuple((ai, ais[ai]) for ai in pk.qualifiers if ai in ais)
    attrs = [(k, v) for k, v in ais.items() if k != primary and k not in dict(quals)]
    return _build(primary, quote(key, safe=""), [(a, quote(v, safe="")) for a, v in quals], attrs + extra)


def _build(
    ai: str, raw_key: str, raw_quals: list[tuple[str, str]], attrs: list[tuple[str, str]]
) -> DigitalLink:
    pk = PRIMARY_KEYS[ai]
    key = _key_value(ai, raw_key)
    quals: list[tuple[str, str]] = []
    last = -1
    for qai, raw in raw_quals:
        if qai not in pk.qualifiers or pk.qualifiers.index(qai) <= last:
            order = ", ".join(pk.qualifiers) or "none"
            raise InvalidGS1Key(
                f"qualifier AI {qai[:8]} is not allowed here (after AI {ai}: {order}, in that order)",
                reason="gs1_qualifier",
            )
        last = pk.qualifiers.index(qai)
        quals.append((qai, _xvalue(qai, raw, 20)))
    for name, value in attrs:
        if name.isdigit():
            _attribute(name, value)
    q = dict(quals)
    return DigitalLink(key, q.get("10"), q.get("21"), ai=ai, qualifiers=tuple(quals), attributes=tuple(attrs))


def parse_path(path: str, query: list[tuple[str, str]] | None = None) -> DigitalLink:
    """Parse a raw (still percent-encoded) Digital Link path and its query (``InvalidGS1Key``).

    The path is split at ``/`` before anything is decoded, so ``%2F`` inside a lot or serial
    stays part of the value. Fully (``/{base64url}``) and partially (``/01/{gtin}/{base64url}``)
    compressed paths are decompressed first.
    """
    attrs = list(query or [])
    parts = path.strip("/").split("/")
    try:
        if len(parts) == 1 and gs1_compress.looks_compressed(parts[0]):
            return _from_ais(gs1_compress.decompress(parts[0]), attrs)
        if parts[0] in PRIMARY_KEYS and len(parts) >= 3 and len(parts) % 2 == 1:
            if not gs1_compress.looks_compressed(parts[-1]):
                raise InvalidGS1Key("a Digital Link path has AI/value pairs", reason="gs1_path")
            ais = {parts[0]: unquote(parts[1])}
            ais.update(dict(zip(parts[2:-1:2], map(unquote, parts[3:-1:2]), strict=True)))
            ais.update(gs1_compress.decompress(parts[-1]))
            return _from_ais(ais, attrs)
    except gs1_compress.InvalidCompressedLink as exc:
        raise InvalidGS1Key(f"not a compressed Digital Link: {exc}", reason="gs1_compressed") from None
    if len(parts) < 2 or parts[0] not in PRIMARY_KEYS or len(parts) % 2:
        keys = ", ".join(PRIMARY_KEYS)
        raise InvalidGS1Key(
            f"a Digital Link path is /{{ai}}/{{key}}[/{{qualifier}}/{{value}}]... with ai one of {keys}",
            reason="gs1_path",
        )
    return _build(parts[0], parts[1], list(zip(parts[2::2], parts[3::2], strict=True)), attrs)


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


def expand_link_type(link_type: str) -> str:
    """A link type as its full URI: ``gs1:pip`` and ``https://gs1.org/voc/pip`` are the same."""
    if link_type.startswith("gs1:"):
        return VOCAB + link_type[4:]
    if link_type.startswith("http://gs1.org/voc/"):
        return VOCAB + link_type[len("http://gs1.org/voc/") :]
    return link_type


_expand = expand_link_type


def linkset(anchor: str, links: list[dict[str, str]]) -> dict[str, Any]:
    """An RFC 9264 linkset document."""
    entry: dict[str, Any] = {"anchor": anchor}
    for link in links:
        target: dict[str, str] = {"href": link["href"]}
        if "title" in link:
            target["title"] = link["title"]
        entry.setdefault(_expand(link["linkType"]), []).append(target)
    return {"linkset": [entry]}


def inherited_links(chain: list[list[dict[str, str]]]) -> list[dict[str, str]]:
    """The links of a fallback chain (most specific record first): per link type, the first that has it."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for links in chain:
        types = {_expand(lk["linkType"]) for lk in links}
        out.extend(lk for lk in links if _expand(lk["linkType"]) not in seen)
        seen |= types
    return out


def pick_links(chain: list[list[dict[str, str]]], link_type: str | None) -> list[dict[str, str]]:
    """The links of ``link_type`` (or the default link) from the first record of the chain having any."""
    wanted = _expand(link_type or DEFAULT)
    for links in chain:
        fit = [lk for lk in links if _expand(lk["linkType"]) == wanted]
        if fit:
            return fit if link_type else fit[:1]
    return []


def _linkset_response(status: int, anchor: str, links: list[dict[str, str]]) -> Response:
    return Response(
        status, orjson.dumps(linkset(anchor, links)), [(b"content-type", b"application/linkset+json")]
    )


_NO_ENDPOINT = {"responseCode": 2, "message": "no such endpoint"}


def _unique(found: list[Record | None]) -> list[Record]:
    records: list[Record] = []
    for rec in found:
        if rec is not None and all(r.handle != rec.handle for r in records):
            records.append(rec)
    return records


def plan_resolve(req: Request) -> Plan:
    """A Digital Link: one lookup per fallback level (serial, lot, key), then the answer."""
    raw = req.raw_path.decode("utf-8", "surrogateescape")
    query = [(k, v) for k, vals in req.query.items() for v in vals]
    key = parse_path(raw, query)

    def answer(found: list[Record | None]) -> Response:
        records = _unique(found)
        if not records:
            raise HandleNotFound(f"no record for GS1 key {key.path}", handle=key.path)
        chain = [links_of(r) for r in records]
        host = req.headers.get("host", "localhost")
        anchor = f"http://{host}{key.path}"
        link_type = req.arg("linkType")
        wants_set = "application/linkset+json" in req.headers.get("accept", "")
        if link_type in {"linkset", "all"} or (wants_set and not link_type):
            return _linkset_response(200, anchor, inherited_links(chain))
        if link_type and not _LINK_TYPE.fullmatch(link_type):
            raise InvalidInput("linkType is malformed")
        fit = pick_links(chain, link_type)
        if not fit:
            raise HandleNotFound(f"no {link_type or 'default'} link for {key.path}", handle=records[0].handle)
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

    return Plan([[crit] for crit in key.criteria()], answer)


def plan_compressed(req: Request) -> Plan | Response:
    """A fully compressed Digital Link (``/{base64url}``); anything else at ``/`` is no endpoint."""
    segment = req.raw_path.decode("utf-8", "surrogateescape").strip("/")
    if req.method != "GET" or "/" in segment or not gs1_compress.looks_compressed(segment):
        return json_response(404, {**_NO_ENDPOINT, "message": f"no such endpoint {req.path[:200]}"})
    return plan_resolve(req)


@dataclass(frozen=True)
class GS1Adapter:
    """Mounts the Digital Link paths of every served primary key, compressed links and the description."""

    name: str = "gs1"

    def planners(self) -> dict[str, Planner]:
        """The resolving endpoints' planners by mount prefix."""
        return {**{f"/{ai}/": plan_resolve for ai in PRIMARY_KEYS}, "/": plan_compressed}

    def install(self, app: AsgiApp, lookup: Lookup) -> None:
        """Mount the endpoints."""

        async def description(req: Request) -> Response:
            host = req.headers.get("host", "localhost")
            return json_response(
                200,
                {
                    "name": "Gongyun GS1 Digital Link resolver",
                    "resolverRoot": f"http://{host}",
                    "supportedPrimaryKeys": list(PRIMARY_KEYS),
                    "supportedQualifiers": {ai: list(pk.qualifiers) for ai, pk in PRIMARY_KEYS.items()},
                    "linkTypeDefaultCanBeLinkset": True,
                    "supportsCompressedLinks": True,
                    "supportedLinkType": [
                        DEFAULT,
                        "gs1:pip",
                        "gs1:certificationInfo",
                        "gs1:sustainabilityInfo",
                        "gs1:epcis",
                        "gs1:traceability",
                        "gs1:instructions",
                        "gs1:serviceInfo",
                    ],
                },
            )

        for prefix, planner in self.planners().items():
            app.mount(prefix, planned(planner, lookup))
        app.mount("/.well-known/gs1resolver", description)


ADAPTER = GS1Adapter()
