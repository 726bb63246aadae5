"""Metadata templates per prefix: the industry templates a secondary node keeps.

A template is versioned (``name`` + ``version``, saving a new definition adds a version)
and lists items: a value type, whether it is required, its data format, length rules, an
optional pattern and enumeration, and how often it may occur. A record names its
template with a ``GY_TEMPLATE`` value (``pump`` = latest version, ``pump@2`` = version 2);
``validate`` returns every violation and ``check`` raises ``TemplateViolation`` listing
them all. ``parse_template`` does the same for a template definition itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gongyun.errors import MalformedIdentifier, ValidationFailed
from gongyun.idres.syntax import check_prefix
from gongyun.idres.values import FORMATS, MAX_TYPE_LEN, HandleValue

TEMPLATE_TYPE = "GY_TEMPLATE"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ITEM_KEYS = {
    "type",
    "required",
    "format",
    "minLength",
    "maxLength",
    "pattern",
    "enum",
    "maxCount",
    "description",
}
_TEMPLATE_KEYS = {"prefix", "name", "version", "description", "items", "allowExtra"}


class InvalidTemplate(ValidationFailed):
    """A template definition is invalid; ``errors`` lists every problem."""

    code = "identifier_template_invalid"
    title = "Invalid identifier template"


class TemplateViolation(ValidationFailed):
    """A record does not satisfy its template; ``errors`` lists every violation."""

    code = "identifier_template_violation"
    title = "Record violates its template"


@dataclass(frozen=True, slots=True)
class TemplateItem:
    """One rule: a value type and its constraints."""

    type: str
    required: bool = False
    format: str = "string"
    min_length: int = 0
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    max_count: int | None = 1
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form (camelCase like the Handle API)."""
        out: dict[str, Any] = {"type": self.type, "required": self.required, "format": self.format}
        if self.min_length:
            out["minLength"] = self.min_length
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.enum:
            out["enum"] = list(self.enum)
        out["maxCount"] = self.max_count
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class Template:
    """A versioned metadata template of one prefix."""

    prefix: str
    name: str
    version: int
    items: tuple[TemplateItem, ...]
    allow_extra: bool = True
    description: str = ""
    _patterns: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        """JSON form of the definition."""
        return {
            "prefix": self.prefix,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "allowExtra": self.allow_extra,
            "items": [i.to_json() for i in self.items],
        }

    def validate(self, values: list[HandleValue]) -> list[dict[str, Any]]:
        """Every violation of this template by a record's values (empty when it conforms)."""
        errors: list[dict[str, Any]] = []
        by_type: dict[str, list[HandleValue]] = {}
        for v in values:
            by_type.setdefault(v.type, []).append(v)
        known = {i.type for i in self.items} | {TEMPLATE_TYPE, "HS_ADMIN", "HS_SECKEY", "HS_PUBKEY"}
        for item in self.items:
            found = by_type.get(item.type, [])
            if item.required and not found:
                errors.append({"type": item.type, "rule": "required", "message": f"{item.type} is required"})
            if item.max_count is not None and len(found) > item.max_count:
                errors.append(
                    {
                        "type": item.type,
                        "rule": "maxCount",
                        "message": f"{item.type} occurs {len(found)} times, at most {item.max_count} allowed",
                    }
                )
            for v in found:
                errors.extend(self._check_value(item, v))
        if not self.allow_extra:
            for v in values:
                if v.type not in known:
                    errors.append(
                        {
                            "type": v.type,
                            "index": v.index,
                            "rule": "allowExtra",
                            "message": f"type {v.type} is not part of template {self.ref}",
                        }
                    )
        return errors

    def _check_value(self, item: TemplateItem, v: HandleValue) -> list[dict[str, Any]]:
        errs: list[dict[str, Any]] = []

        def err(rule: str, message: str) -> None:
            errs.append({"type": item.type, "index": v.index, "rule": rule, "message": message})

        if v.format != item.format:
            err("format", f"{item.type} must have format {item.format}, got {v.format}")
            return errs
        if not isinstance(v.value, str):
            return errs
        n = len(v.value)
        if n < item.min_length:
            err("minLength", f"{item.type} is {n} characters, at least {item.min_length} required")
        if item.max_length is not None and n > item.max_length:
            err("maxLength", f"{item.type} is {n} characters, at most {item.max_length} allowed")
        if item.pattern is not None:
            rx = self._patterns.get(item.pattern)
            if rx is None:
                rx = self._patterns[item.pattern] = re.compile(item.pattern)
            if not rx.fullmatch(v.value):
                err("pattern", f"{item.type} {v.value[:60]!r} does not match {item.pattern}")
        if item.enum and v.value not in item.enum:
            err("enum", f"{item.type} {v.value[:60]!r} is not one of {list(item.enum)}")
        return errs

    def check(self, values: list[HandleValue]) -> None:
        """Raise ``TemplateViolation`` listing every violation, if any."""
        errors = self.validate(values)
        if errors:
            raise TemplateViolation(
                f"record violates template {self.ref}: {len(errors)} violation(s)", errors=errors
            )


def _parse_item(raw: Any, where: str, errors: list[dict[str, Any]]) -> TemplateItem | None:
    def err(fieldname: str, message: str) -> None:
        errors.append({"field": f"{where}.{fieldname}" if fieldname else where, "message": message})

    if not isinstance(raw, dict):
        err("", "an item must be an object")
        return None
    for key in sorted(set(raw) - _ITEM_KEYS):
        err(str(key), "unknown key")
    vtype = raw.get("type")
    if not isinstance(vtype, str) or not vtype or len(vtype) > MAX_TYPE_LEN or not vtype.isprintable():
        err("type", "type must be a non-empty printable string")
    fmt = raw.get("format", "string")
    if fmt not in FORMATS:
        err("format", f"format must be one of {list(FORMATS)}")
    ints: dict[str, int | None] = {}
    for key, default in (("minLength", 0), ("maxLength", None), ("maxCount", 1)):
        value = raw.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            err(key, f"{key} must be a non-negative integer")
            value = default
        ints[key] = value
    lo, hi = ints["minLength"] or 0, ints["maxLength"]
    if hi is not None and lo > hi:
        err("minLength", f"minLength {lo} is greater than maxLength {hi}")
    pattern = raw.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or len(pattern) > 500:
            err("pattern", "pattern must be a regular expression of at most 500 characters")
            pattern = None
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                err("pattern", f"pattern does not compile: {exc}")
                pattern = None
    enum = raw.get("enum", [])
    if not isinstance(enum, list) or not all(isinstance(e, str) for e in enum):
        err("enum", "enum must be a list of strings")
        enum = []
    required = raw.get("required", False)
    if not isinstance(required, bool):
        err("required", "required must be true or false")
    if not isinstance(vtype, str) or fmt not in FORMATS:
        return None
    desc = raw.get("description", "")
    return TemplateItem(
        type=vtype,
        required=bool(required),
        format=str(fmt),
        min_length=lo,
        max_length=hi,
        pattern=pattern,
        enum=tuple(enum),
        max_count=ints["maxCount"],
        description=desc if isinstance(desc, str) else "",
    )


def parse_template(raw: Any, version: int | None = None) -> Template:
    """Parse a template definition; raise ``InvalidTemplate`` listing every problem."""
    errors: list[dict[str, Any]] = []
    if not isinstance(raw, dict):
        raise InvalidTemplate(
            "a template must be an object", errors=[{"field": "", "message": "not an object"}]
        )
    for key in sorted(set(raw) - _TEMPLATE_KEYS):
        errors.append({"field": str(key), "message": "unknown key"})
    prefix = raw.get("prefix")
    try:
        check_prefix(prefix if isinstance(prefix, str) else "")
    except MalformedIdentifier as exc:
        errors.append({"field": "prefix", "message": exc.message})
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        errors.append({"field": "name", "message": "name must be 1..64 of letters, digits, '_', '.', '-'"})
    ver = raw.get("version", version if version is not None else 1)
    if isinstance(ver, bool) or not isinstance(ver, int) or ver < 1:
        errors.append({"field": "version", "message": "version must be a positive integer"})
        ver = 1
    items_raw = raw.get("items")
    items: list[TemplateItem] = []
    if not isinstance(items_raw, list) or not items_raw:
        errors.append({"field": "items", "message": "items must be a non-empty list"})
    else:
        seen: set[str] = set()
        for i, item_raw in enumerate(items_raw):
            item = _parse_item(item_raw, f"items[{i}]", errors)
            if item is None:
                continue
            if item.type in seen:
                errors.append({"field": f"items[{i}].type", "message": f"type {item.type} is listed twice"})
            seen.add(item.type)
            items.append(item)
    allow_extra = raw.get("allowExtra", True)
    if not isinstance(allow_extra, bool):
        errors.append({"field": "allowExtra", "message": "allowExtra must be true or false"})
    if errors:
        raise InvalidTemplate(f"template is invalid: {len(errors)} problem(s)", errors=errors)
    desc = raw.get("description", "")
    return Template(
        prefix=str(prefix),
        name=str(name),
        version=ver,
        items=tuple(items),
        allow_extra=bool(allow_extra),
        description=desc if isinstance(desc, str) else "",
    )


def template_ref(values: list[HandleValue]) -> tuple[str, int | None] | None:
    """The ``(name, version)`` a record names in its ``GY_TEMPLATE`` value, if any."""
    for v in values:
        if v.type == TEMPLATE_TYPE and isinstance(v.value, str):
            name, _, ver = v.value.partition("@")
            return name, int(ver) if ver.isdigit() else None
    return None
