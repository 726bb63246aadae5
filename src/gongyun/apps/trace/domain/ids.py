"""Product identifiers: templates (GTIN + lot/serial, SSCC, the tenant's own scheme) and minting.

An item's ``key`` is its canonical identifier: the GS1 Digital Link path for GS1 keys
(``/01/{gtin}/10/{lot}``, ``/01/{gtin}/21/{serial}``, ``/00/{sscc}``) or ``own:{value}`` for
the tenant's own scheme. EPC URIs (``urn:epc:id:sgtin:…``, ``urn:epc:class:lgtin:…``,
``urn:epc:id:sscc:…``) and Digital Link URIs map onto the same keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gongyun.apps.trace.errors import TraceTemplateInvalid
from gongyun.errors import GongyunError
from gongyun.idres.schemes.gs1 import check_digit, normalise_gtin

_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")
_OWN = re.compile(r"[0-9A-Za-z._\-]{1,80}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")


class Kind(StrEnum):
    """What an item is."""

    material_lot = "material_lot"
    order = "order"
    batch = "batch"
    serial = "serial"
    package = "package"
    pallet = "pallet"
    shipment = "shipment"
    asset = "asset"


class Scheme(StrEnum):
    """How a template builds identifiers."""

    gtin_lot = "gtin_lot"
    gtin_serial = "gtin_serial"
    sscc = "sscc"
    own = "own"


@dataclass(frozen=True, slots=True)
class Template:
    """An identifier template of a tenant."""

    name: str
    kind: Kind
    scheme: Scheme
    gtin: str | None = None
    company_prefix: str | None = None
    extension: str = "0"
    pattern: str = "{seq:06d}"

    def to_json(self) -> dict[str, Any]:
        """The template as stored and shown."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "scheme": self.scheme.value,
            "gtin": self.gtin,
            "company_prefix": self.company_prefix,
            "extension": self.extension,
            "pattern": self.pattern,
        }


@dataclass(frozen=True, slots=True)
class Minted:
    """One identifier made from a template."""

    kind: Kind
    key: str
    gtin: str | None = None
    lot: str | None = None
    serial: str | None = None
    sscc: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def parse_template(raw: Any) -> Template:
    """Validate a template body; ``TraceTemplateInvalid`` lists every problem."""
    errors: list[dict[str, str]] = []
    if not isinstance(raw, dict):
        raise TraceTemplateInvalid(
            "a template is a JSON object", errors=[{"field": "", "message": "not an object"}]
        )

    def bad(name: str, message: str) -> None:
        errors.append({"field": name, "message": message})

    name = str(raw.get("name", ""))
    if not _NAME.fullmatch(name):
        bad("name", "1-64 of a-z 0-9 _ -, starting with a letter or digit")
    try:
        kind = Kind(str(raw.get("kind")))
    except ValueError:
        kind = Kind.serial
        bad("kind", f"one of {', '.join(k.value for k in Kind)}")
    try:
        scheme = Scheme(str(raw.get("scheme")))
    except ValueError:
        scheme = Scheme.own
        bad("scheme", f"one of {', '.join(s.value for s in Scheme)}")
    gtin = raw.get("gtin")
    if scheme in {Scheme.gtin_lot, Scheme.gtin_serial}:
        try:
            gtin = normalise_gtin(str(gtin or ""))
        except GongyunError as exc:
            bad("gtin", exc.message)
    else:
        gtin = None
    company_prefix = raw.get("company_prefix")
    extension = str(raw.get("extension", "0"))
    if scheme is Scheme.sscc:
        cp = str(company_prefix or "")
        if not cp.isdigit() or not 6 <= len(cp) <= 12:
            bad("company_prefix", "a GS1 company prefix of 6 to 12 digits")
        if not (extension.isdigit() and len(extension) == 1):
            bad("extension", "one digit")
    pattern = str(raw.get("pattern", "{seq:06d}"))
    try:
        sample = pattern.format(seq=1, date=date(2026, 1, 1).strftime("%Y%m%d"))
        if scheme in {Scheme.gtin_lot, Scheme.gtin_serial} and not _CSET82.fullmatch(sample):
            bad("pattern", "a lot or serial is 1-20 characters of GS1 character set 82")
        elif scheme is Scheme.own and not _OWN.fullmatch(sample):
            bad("pattern", "an own identifier is 1-80 of 0-9 A-Z a-z . _ -")
    except (KeyError, ValueError, IndexError):
        bad("pattern", "uses only {seq} (with a format such as {seq:06d}) and {date}")
    if errors:
        raise TraceTemplateInvalid(f"the template has {len(errors)} problem(s)", errors=errors)
    return Template(
        name, kind, scheme, gtin, str(company_prefix) if company_prefix else None, extension, pattern
    )


def sscc(company_prefix: str, extension: str, serial_ref: int) -> str:
    """An 18-digit SSCC: extension digit, company prefix, serial reference, check digit."""
    width = 16 - len(company_prefix)
    ref = str(serial_ref)
    if len(ref) > width:
        raise TraceTemplateInvalid(f"serial reference {serial_ref} does not fit in {width} digits")
    body = extension + company_prefix + ref.zfill(width)
    return body + str(check_digit(body))


def mint(template: Template, start: int, count: int, *, today: date | None = None) -> list[Minted]:
    """``count`` identifiers from sequence number ``start`` on."""
    stamp = (today or date.today()).strftime("%Y%m%d")
    out: list[Minted] = []
    for seq in range(start, start + count):
        value = template.pattern.format(seq=seq, date=stamp)
        if template.scheme is Scheme.gtin_lot:
            assert template.gtin is not None
            out.append(Minted(template.kind, dl_key(template.gtin, lot=value), template.gtin, lot=value))
        elif template.scheme is Scheme.gtin_serial:
            assert template.gtin is not None
            out.append(
                Minted(template.kind, dl_key(template.gtin, serial=value), template.gtin, serial=value)
            )
        elif template.scheme is Scheme.sscc:
            assert template.company_prefix is not None
            code = sscc(template.company_prefix, template.extension, seq)
            out.append(Minted(template.kind, f"/00/{code}", sscc=code))
        else:
            out.append(Minted(template.kind, f"own:{value}"))
    return out


def dl_key(gtin: str, lot: str | None = None, serial: str | None = None) -> str:
    """The Digital Link path of a GTIN with an optional lot or serial."""
    key = f"/01/{gtin}"
    if lot:
        key += f"/10/{quote(lot, safe='')}"
    if serial:
        key += f"/21/{quote(serial, safe='')}"
    return key


def _epc_gtin(company_prefix: str, item_ref: str) -> str:
    body = item_ref[0] + company_prefix + item_ref[1:]
    return body + str(check_digit(body))


def key_of(identifier: str) -> str:
    """The canonical key of an EPC URI, a Digital Link URI or path, or an own ``own:`` key.

    Raises ``ValueError`` for anything else.
    """
    s = identifier.strip()
    if s.startswith("own:"):
        if not _OWN.fullmatch(s[4:]):
            raise ValueError(f"{s[:60]!r} is not an own identifier")
        return s
    if s.startswith("urn:epc:id:sgtin:") or s.startswith("urn:epc:class:lgtin:"):
        kind = "sgtin" if s.startswith("urn:epc:id:") else "lgtin"
        parts = s.split(":", 4)[4].split(".", 2)
        if len(parts) != 3 or not (parts[0] + parts[1]).isdigit() or len(parts[0] + parts[1]) != 13:
            raise ValueError(f"{s[:80]!r} is not an {kind} EPC URI")
        gtin = _epc_gtin(parts[0], parts[1])
        value = unquote(parts[2])
        return dl_key(gtin, serial=value) if kind == "sgtin" else dl_key(gtin, lot=value)
    if s.startswith("urn:epc:idpat:sgtin:") or s.startswith("urn:epc:class:"):
        raise ValueError(f"{s[:80]!r}: only sgtin, lgtin and sscc EPC URIs are supported")
    if s.startswith("urn:epc:id:giai:"):
        parts = s.split(":", 4)[4].split(".", 1)
        giai = parts[0] + unquote(parts[1]) if len(parts) == 2 and parts[0].isdigit() else ""
        if not _CSET82.fullmatch(giai[:20]) or not 1 <= len(giai) <= 30:
            raise ValueError(f"{s[:80]!r} is not a GIAI EPC URI")
        return f"/8004/{quote(giai, safe='')}"
    if s.startswith("urn:epc:id:sscc:"):
        parts = s.split(":", 4)[4].split(".")
        if len(parts) != 2 or not (parts[0] + parts[1]).isdigit() or len(parts[0] + parts[1]) != 17:
            raise ValueError(f"{s[:80]!r} is not an SSCC EPC URI")
        body = parts[1][0] + parts[0] + parts[1][1:]
        return f"/00/{body}{check_digit(body)}"
    path = urlsplit(s).path if "://" in s else s
    m = re.search(r"/(01|00|8004)/", path)
    if m is None:
        raise ValueError(f"{s[:80]!r} is neither an EPC URI nor a GS1 Digital Link")
    segs = path[m.start() + 1 :].split("/")
    if segs[0] == "8004":
        if len(segs) != 2 or not 1 <= len(unquote(segs[1])) <= 30:
            raise ValueError(f"{s[:80]!r}: a GIAI is 1-30 characters")
        return f"/8004/{quote(unquote(segs[1]), safe='')}"
    if segs[0] == "00":
        if len(segs) != 2 or not segs[1].isdigit() or len(segs[1]) != 18:
            raise ValueError(f"{s[:80]!r}: an SSCC is 18 digits")
        return f"/00/{segs[1]}"
    try:
        gtin = normalise_gtin(segs[1] if len(segs) > 1 else "")
    except GongyunError as exc:
        raise ValueError(exc.message) from None
    quals = dict(zip(segs[2::2], segs[3::2], strict=False))
    lot = unquote(quals["10"]) if "10" in quals else None
    serial = unquote(quals["21"]) if "21" in quals else None
    if serial:
        return dl_key(gtin, serial=serial)
    return dl_key(gtin, lot=lot)


def split_key(key: str) -> dict[str, str | None]:
    """GTIN, lot, serial and SSCC of a canonical key (None where absent)."""
    out: dict[str, str | None] = {"gtin": None, "lot": None, "serial": None, "sscc": None}
    if key.startswith("/00/"):
        out["sscc"] = key[4:]
    elif key.startswith("/01/"):
        segs = key[1:].split("/")
        out["gtin"] = segs[1]
        quals = dict(zip(segs[2::2], segs[3::2], strict=False))
        out["lot"] = unquote(quals["10"]) if "10" in quals else None
        out["serial"] = unquote(quals["21"]) if "21" in quals else None
    return out


def epc_uri(key: str, gcp_length: int = 7) -> str:
    """The EPC URI of a key (``sgtin``/``lgtin``/``sscc``) for a company prefix length; DL otherwise."""
    parts = split_key(key)
    if parts["sscc"]:
        code = parts["sscc"]
        return f"urn:epc:id:sscc:{code[1 : 1 + gcp_length]}.{code[0]}{code[1 + gcp_length : 17]}"
    if parts["gtin"]:
        g = parts["gtin"]
        cp, ref = g[1 : 1 + gcp_length], g[0] + g[1 + gcp_length : 13]
        if parts["serial"]:
            return f"urn:epc:id:sgtin:{cp}.{ref}.{quote(parts['serial'], safe='')}"
        if parts["lot"]:
            return f"urn:epc:class:lgtin:{cp}.{ref}.{quote(parts['lot'], safe='')}"
    return key
