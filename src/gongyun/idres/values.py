"""Typed record values (RFC 3651 section 3) in the Handle.Net REST JSON form.

A value is ``{"index", "type", "data": {"format", "value"}, "ttl", "timestamp"}`` plus
Gongyun's optional ``permissions`` (four bits ``admin_read admin_write public_read
public_write``, default ``1110``), ``references`` and ``classification`` (``general``,
``important`` or ``core``; a core value is never publicly readable and is stored sealed, see
``gongyun.idres.sealing``). ``decode_value`` accepts whatever a client sends and either
returns a ``HandleValue`` or raises ``InvalidValue`` naming the field and the reason; it never
raises anything else. ``decode_stored`` reads what the registry stored, sealed values included.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gongyun.errors import InvalidInput, MalformedIdentifier, PayloadTooLarge
from gongyun.idres.syntax import MAX_INDEX, parse

FORMATS = ("string", "base64", "hex", "admin", "vlist", "site", "key")
SEALED = "sealed"  # a core value as stored: {"key": data key version, "box": base64 nonce || ciphertext}
MASKED = "masked"  # a core value shown to a caller without clearance (value null)
LEVELS = {"general": 1, "important": 2, "core": 3}
LEVEL_NAMES = {n: name for name, n in LEVELS.items()}
CORE = 3
RESERVED_TYPES = {
    "HS_ADMIN": "admin",
    "HS_SITE": "site",
    "HS_VLIST": "vlist",
    "HS_ALIAS": "string",
    "HS_SECKEY": "string",
    "HS_PUBKEY": "key",
    "URL": "string",
    "EMAIL": "string",
}
INDUSTRY_TYPES = (
    "GY_KIND",
    "GY_TENANT",
    "GY_ASSET",
    "GY_DEVICE",
    "GY_TAG",
    "GY_LOT",
    "GY_PRODUCT",
    "GY_SERIAL",
    "GY_TEMPLATE",
    "GS1_GTIN",
    "GS1_LINK",
    "OID",
    "ECODE",
    "CHECKSUM",
)
MAX_TYPE_LEN = 255
MAX_DATA_BYTES = 65_536
MAX_VALUES = 1_000
MAX_RECORD_BYTES = 1_048_576
DEFAULT_TTL = 86_400
_PROTOCOLS = {"HTTP", "HTTPS", "TCP", "UDP"}
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


class InvalidValue(InvalidInput):
    """A record value is malformed (unknown format, wrong data, bad index...)."""

    code = "identifier_value_invalid"
    title = "Invalid identifier value"


class RecordTooLarge(PayloadTooLarge):
    """A record has too many values or too many bytes."""

    code = "identifier_record_too_large"
    title = "Identifier record too large"


_SECOND: list[Any] = [0.0, datetime.fromtimestamp(0, UTC)]


def _this_second() -> datetime:
    """The current time to the second, one shared object per second (values made in bulk)."""
    now = time.time()
    if now - _SECOND[0] >= 1.0 or now < _SECOND[0]:
        whole = int(now)
        _SECOND[0], _SECOND[1] = float(whole), datetime.fromtimestamp(whole, UTC)
    return _SECOND[1]  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Permissions:
    """Who may read and write a value."""

    admin_read: bool = True
    admin_write: bool = True
    public_read: bool = True
    public_write: bool = False

    def bits(self) -> str:
        """The four-bit string form, e.g. ``1110``."""
        flags = (self.admin_read, self.admin_write, self.public_read, self.public_write)
        return "".join("1" if f else "0" for f in flags)

    @classmethod
    def from_bits(cls, bits: str) -> Permissions:
        """Parse ``1110``; raise ``InvalidValue`` when it is not four binary digits."""
        if not isinstance(bits, str) or len(bits) != 4 or set(bits) - {"0", "1"}:
            raise InvalidValue("permissions must be four binary digits like '1110'", field="permissions")
        return cls(*(c == "1" for c in bits))


PUBLIC = Permissions()
ADMIN_ONLY = Permissions(True, True, False, False)


@dataclass(frozen=True, slots=True)
class HandleValue:
    """One typed value of a record."""

    index: int
    type: str
    format: str
    value: Any
    ttl: int = DEFAULT_TTL
    timestamp: datetime = field(default_factory=_this_second)
    permissions: Permissions = PUBLIC
    references: tuple[tuple[str, int], ...] = ()
    level: int = 1  # data classification: 1 general, 2 important, 3 core (sealed at rest)

    @property
    def public(self) -> bool:
        """True when anyone may read this value."""
        return self.permissions.public_read

    @property
    def sealed(self) -> bool:
        """True for a core value in its stored, encrypted form."""
        return self.format == SEALED

    def same_content(self, other: HandleValue) -> bool:
        """Equal apart from the timestamp (used for idempotent re-registration)."""
        return (
            self.index,
            self.type,
            self.format,
            self.value,
            self.ttl,
            self.permissions,
            self.references,
            self.level,
        ) == (
            other.index,
            other.type,
            other.format,
            other.value,
            other.ttl,
            other.permissions,
            other.references,
            other.level,
        )

    def text(self) -> str:
        """The value as text (what reverse lookup matches on)."""
        if isinstance(self.value, str):
            return self.value
        import orjson

        return orjson.dumps(self.value, option=orjson.OPT_SORT_KEYS).decode()

    def to_json(self) -> dict[str, Any]:
        """The Handle.Net REST JSON form."""
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "data": {"format": self.format, "value": self.value},
            "ttl": self.ttl,
            "timestamp": format_timestamp(self.timestamp),
        }
        if self.permissions is not PUBLIC and self.permissions != PUBLIC:
            out["permissions"] = self.permissions.bits()
        if self.references:
            out["references"] = [{"handle": h, "index": i} for h, i in self.references]
        if self.level > 1:
            out["classification"] = LEVEL_NAMES[self.level]
        return out


@functools.lru_cache(maxsize=4096)
def format_timestamp(ts: datetime) -> str:
    """``2024-01-31T12:00:00Z`` (cached: bulk imports share a handful of timestamps)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fail(message: str, index: Any = None, fieldname: str | None = None) -> InvalidValue:
    details: dict[str, Any] = {}
    if isinstance(index, int):
        details["index"] = index
    if fieldname:
        details["field"] = fieldname
    return InvalidValue(message, **details)


def _int(raw: Any, name: str, lo: int, hi: int, index: Any = None) -> int:
    if isinstance(raw, bool):
        raise _fail(f"{name} must be an integer", index, name)
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10:
        raw = int(raw)
    if not isinstance(raw, int):
        raise _fail(f"{name} must be an integer", index, name)
    if not lo <= raw <= hi:
        raise _fail(f"{name} {raw} is out of range {lo}..{hi}", index, name)
    return raw


def _handle_text(raw: Any, name: str, index: Any) -> str:
    if not isinstance(raw, str):
        raise _fail(f"{name} must be an identifier", index, name)
    try:
        return str(parse(raw))
    except MalformedIdentifier as exc:
        raise _fail(f"{name}: {exc.message}", index, name) from None


def _decode_admin(raw: Any, index: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail("admin data must be an object {handle, index, permissions}", index, "data.value")
    perms = raw.get("permissions", "011111110011")
    if not isinstance(perms, str) or not 1 <= len(perms) <= 12 or set(perms) - {"0", "1"}:
        raise _fail("admin permissions must be up to 12 binary digits", index, "data.value.permissions")
    return {
        "handle": _handle_text(raw.get("handle"), "data.value.handle", index),
        "index": _int(raw.get("index"), "data.value.index", 1, MAX_INDEX, index),
        "permissions": perms.ljust(12, "0"),
    }


def _decode_vlist(raw: Any, index: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or len(raw) > MAX_VALUES:
        raise _fail(f"vlist data must be a list of at most {MAX_VALUES} references", index, "data.value")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise _fail("vlist items must be objects {handle, index}", index, "data.value")
        out.append(
            {
                "handle": _handle_text(item.get("handle"), "data.value.handle", index),
                "index": _int(item.get("index"), "data.value.index", 1, MAX_INDEX, index),
            }
        )
    return out


def _decode_site(raw: Any, index: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail("site data must be an object with 'servers'", index, "data.value")
    servers = raw.get("servers")
    if not isinstance(servers, list) or not servers or len(servers) > 64:
        raise _fail("site data needs 1..64 servers", index, "data.value.servers")
    out_servers = []
    for server in servers:
        if not isinstance(server, dict):
            raise _fail("each server must be an object", index, "data.value.servers")
        address = server.get("address")
        if not isinstance(address, str) or not address or len(address) > 255:
            raise _fail("server address must be a host name or IP", index, "data.value.servers.address")
        interfaces = server.get("interfaces")
        if not isinstance(interfaces, list) or not interfaces:
            raise _fail("server interfaces must be a non-empty list", index, "data.value.servers.interfaces")
        out_ifaces = []
        for iface in interfaces:
            if not isinstance(iface, dict) or iface.get("protocol") not in _PROTOCOLS:
                raise _fail(
                    f"interface protocol must be one of {sorted(_PROTOCOLS)}",
                    index,
                    "data.value.servers.interfaces.protocol",
                )
            out_ifaces.append(
                {
                    "query": bool(iface.get("query", True)),
                    "admin": bool(iface.get("admin", False)),
                    "protocol": iface["protocol"],
                    "port": _int(iface.get("port"), "port", 1, 65535, index),
                }
            )
        out_servers.append(
            {
                "serverId": _int(server.get("serverId", 1), "serverId", 0, MAX_INDEX, index),
                "address": address,
                "interfaces": out_ifaces,
            }
        )
    attributes = raw.get("attributes", [])
    if not isinstance(attributes, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("value"), str)
        for a in attributes
    ):
        raise _fail("site attributes must be a list of {name, value}", index, "data.value.attributes")
    return {
        "version": _int(raw.get("version", 1), "version", 0, 65535, index),
        "protocolVersion": str(raw.get("protocolVersion", "2.10"))[:16],
        "serialNumber": _int(raw.get("serialNumber", 1), "serialNumber", 0, MAX_INDEX, index),
        "primarySite": bool(raw.get("primarySite", True)),
        "multiPrimary": bool(raw.get("multiPrimary", False)),
        "attributes": [{"name": a["name"], "value": a["value"]} for a in attributes],
        "servers": out_servers,
    }


def decode_data(fmt: Any, raw: Any, index: Any = None) -> Any:
    """Validate and normalise the ``value`` of one ``data`` object of the given format."""
    if fmt not in FORMATS:
        raise _fail(
            f"unknown data format {str(fmt)[:40]!r} (one of {', '.join(FORMATS)})", index, "data.format"
        )
    if fmt == "admin":
        return _decode_admin(raw, index)
    if fmt == "vlist":
        return _decode_vlist(raw, index)
    if fmt == "site":
        return _decode_site(raw, index)
    if not isinstance(raw, str):
        raise _fail(f"{fmt} data must be a string", index, "data.value")
    if fmt in {"base64", "key"}:
        try:
            base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise _fail(f"{fmt} data is not valid base64", index, "data.value") from None
    elif fmt == "hex" and not _HEX.fullmatch(raw):
        raise _fail("hex data must be an even number of hexadecimal digits", index, "data.value")
    elif fmt == "string" and any(0xD800 <= ord(c) <= 0xDFFF for c in raw):
        raise _fail("string data contains unpaired surrogates", index, "data.value")
    return raw


def _timestamp(raw: Any, index: Any) -> datetime:
    if raw is None:
        return datetime.now(UTC).replace(microsecond=0)
    if not isinstance(raw, str) or len(raw) > 40:
        raise _fail("timestamp must be an ISO 8601 string", index, "timestamp")
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _fail("timestamp must be an ISO 8601 string", index, "timestamp") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def decode_value(raw: Any) -> HandleValue:
    """Decode one value from its JSON form; raise ``InvalidValue`` on anything malformed."""
    if not isinstance(raw, dict):
        raise _fail("a value must be an object {index, type, data}")
    index = _int(raw.get("index"), "index", 1, MAX_INDEX)
    vtype = raw.get("type")
    if not isinstance(vtype, str) or not vtype or len(vtype) > MAX_TYPE_LEN or not vtype.isprintable():
        raise _fail(f"type must be 1..{MAX_TYPE_LEN} printable characters", index, "type")
    data = raw.get("data")
    fmt: Any
    value: Any
    if isinstance(data, str):
        fmt, value = "string", data
    elif isinstance(data, dict):
        fmt, value = data.get("format", "string"), data.get("value")
    else:
        raise _fail("data must be a string or an object {format, value}", index, "data")
    expected = RESERVED_TYPES.get(vtype)
    if expected is not None and fmt != expected and not (expected == "string" and fmt == "base64"):
        raise _fail(
            f"type {vtype} needs data format {expected!r}, got {str(fmt)[:40]!r}", index, "data.format"
        )
    value = decode_data(fmt, value, index)
    if isinstance(value, str) and len(value.encode("utf-8")) > MAX_DATA_BYTES:
        raise _fail(f"data is larger than {MAX_DATA_BYTES} bytes", index, "data.value")
    if vtype == "EMAIL" and "@" not in value:
        raise _fail("EMAIL data must contain '@'", index, "data.value")
    if vtype == "HS_ALIAS":
        _handle_text(value, "data.value", index)
    perms_raw = raw.get("permissions")
    perms = PUBLIC if perms_raw is None else Permissions.from_bits(perms_raw)
    if vtype == "HS_SECKEY" and perms.public_read:
        perms = ADMIN_ONLY
    level = _level(raw.get("classification", 1), index)
    if level == CORE and perms.public_read:
        if perms_raw is not None:
            raise _fail("a core value cannot be publicly readable", index, "permissions")
        perms = ADMIN_ONLY
    if level == CORE and (fmt in {"admin", "site", "vlist"} or vtype.startswith("HS_")):
        raise _fail(f"a {vtype} value cannot be core: the node itself reads it", index, "classification")
    refs_raw = raw.get("references", [])
    if not isinstance(refs_raw, list) or len(refs_raw) > 64:
        raise _fail("references must be a list of at most 64 {handle, index}", index, "references")
    refs = tuple((r["handle"], r["index"]) for r in _decode_vlist(refs_raw, index))
    return HandleValue(
        index=index,
        type=vtype,
        format=str(fmt),
        value=value,
        ttl=_int(raw.get("ttl", DEFAULT_TTL), "ttl", 0, 2**31 - 1, index),
        timestamp=_timestamp(raw.get("timestamp"), index),
        permissions=perms,
        references=refs,
        level=level,
    )


def _level(raw: Any, index: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in LEVEL_NAMES:
        return raw
    if isinstance(raw, str) and raw in LEVELS:
        return LEVELS[raw]
    raise _fail("classification must be general, important or core", index, "classification")


def decode_stored(raw: list[Any]) -> list[HandleValue]:
    """The values of a stored record (as the registry wrote them), sealed core values included."""
    out = []
    for item in raw:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and data.get("format") == SEALED:
            out.append(
                HandleValue(
                    index=item["index"],
                    type=item["type"],
                    format=SEALED,
                    value={"key": int(data["value"]["key"]), "box": str(data["value"]["box"])},
                    ttl=item.get("ttl", DEFAULT_TTL),
                    timestamp=_timestamp(item.get("timestamp"), item["index"]),
                    permissions=Permissions.from_bits(item.get("permissions", "1100")),
                    references=tuple((r["handle"], r["index"]) for r in item.get("references", [])),
                    level=CORE,
                )
            )
        else:
            out.append(decode_value(item))
    return out


SEALED_MARK = '"format":"sealed"'  # in the stored JSON of every record holding a sealed value


def has_sealed(values_json: str) -> bool:
    """Whether a stored value list may hold sealed values (cheap test before decoding it)."""
    return SEALED_MARK in values_json


def decode_values(raw: Any) -> list[HandleValue]:
    """Decode a record's value list; indexes must be unique; size limits are enforced."""
    if not isinstance(raw, list):
        raise InvalidValue("values must be a list")
    if len(raw) > MAX_VALUES:
        raise RecordTooLarge(f"a record holds at most {MAX_VALUES} values, got {len(raw)}")
    values = [decode_value(item) for item in raw]
    seen: set[int] = set()
    for v in values:
        if v.index in seen:
            raise _fail(f"index {v.index} appears twice", v.index, "index")
        seen.add(v.index)
    return values


@functools.lru_cache(maxsize=64)
def _stored_permissions(bits: str) -> Permissions:
    return Permissions.from_bits(bits)


@functools.lru_cache(maxsize=4096)
def _stored_time(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def load_stored(raw: list[dict[str, Any]]) -> list[HandleValue]:
    """A value list as the registry stored it (``encode_values`` of checked values), without
    checking it again: a resolution reads stored records far more often than anyone writes them.
    Anything not in the plain stored form (classified, sealed or malformed values) is decoded and
    checked by ``decode_stored``."""
    try:
        out = []
        for item in raw:
            data = item["data"]
            if "classification" in item or data["format"] == SEALED:
                return decode_stored(raw)  # classified values: their level and sealing checked
            perms = item.get("permissions")
            refs = item.get("references")
            out.append(
                HandleValue(
                    item["index"],
                    item["type"],
                    data["format"],
                    data["value"],
                    item["ttl"],
                    _stored_time(item["timestamp"]),
                    PUBLIC if perms is None else _stored_permissions(perms),
                    tuple((r["handle"], r["index"]) for r in refs) if refs else (),
                )
            )
        return out
    except (KeyError, TypeError, ValueError, InvalidValue):
        return decode_stored(raw)


def encode_values(values: list[HandleValue], public_only: bool = False) -> list[dict[str, Any]]:
    """JSON form of a value list, optionally keeping only publicly readable values."""
    return [v.to_json() for v in sorted(values, key=lambda v: v.index) if v.public or not public_only]


def string_value(index: int, vtype: str, text: str, ttl: int = DEFAULT_TTL) -> HandleValue:
    """A public string value (``URL``, industry types...)."""
    return HandleValue(index=index, type=vtype, format="string", value=text, ttl=ttl)


def admin_value(admin_handle: str, admin_index: int = 200, index: int = 100) -> HandleValue:
    """An ``HS_ADMIN`` value granting the named admin every right."""
    return HandleValue(
        index=index,
        type="HS_ADMIN",
        format="admin",
        value={"handle": admin_handle, "index": admin_index, "permissions": "011111110011"},
    )


def site_value(
    address: str, port: int, protocol: str = "HTTP", index: int = 1, ttl: int = 3600
) -> HandleValue:
    """An ``HS_SITE`` value naming one server that answers over HTTP(S)."""
    value = decode_data(
        "site",
        {
            "servers": [
                {"serverId": 1, "address": address, "interfaces": [{"protocol": protocol, "port": port}]}
            ]
        },
    )
    return HandleValue(index=index, type="HS_SITE", format="site", value=value, ttl=ttl)


def site_urls(value: HandleValue) -> list[str]:
    """Base URLs (``http://host:port``) of the HTTP(S) query interfaces in an ``HS_SITE`` value."""
    urls = []
    for server in value.value.get("servers", []):
        for iface in server.get("interfaces", []):
            if iface.get("query", True) and iface.get("protocol") in {"HTTP", "HTTPS"}:
                host = server["address"]
                host = f"[{host}]" if ":" in host else host
                urls.append(f"{iface['protocol'].lower()}://{host}:{iface['port']}")
    return urls
