"""Signature rules on decoded fields, in a small language like Suricata's ``modbus:`` keywords.

One rule per line (``#`` starts a comment)::

    alert modbus (sid:1003; msg:"Modbus force listen-only mode"; function:8; subfunction:4;
                  severity:high; technique:T0814;)

``alert PROTO (key:value; ...)`` where PROTO is ``modbus``, ``opcua``, ``mqtt`` or ``anomaly``.
Meta keys: ``sid`` (required, unique), ``msg`` (required), ``severity`` (low, medium, high,
critical), ``technique`` (a MITRE ATT&CK for ICS id, required). Match keys (all must match;
lists are comma-separated; ranges ``a-b``; comparisons ``>n``, ``<n``; ``!`` negates):

* every protocol: ``src`` / ``dst`` (IP address), ``dst_port``
* modbus: ``function`` (codes, names or the groups ``read``, ``write``, ``diagnostic``),
  ``unit``, ``address`` (the request's range [address, address+quantity) overlaps),
  ``value`` (any request value), ``subfunction``, ``exception`` (a name or ``any``), ``mei``
* opcua: ``msgtype`` (HEL, OPN, MSG ...), ``service``, ``node``, ``policy``, ``mode``, ``identity``
* mqtt: ``msgtype``, ``topic`` (a PUBLISH topic matching MQTT filters, ``+`` and ``#``),
  ``filter`` (a SUBSCRIBE filter, literally), ``client``, ``sparkplug``
  (NCMD, DCMD ...), ``metric`` (a metric name in a Sparkplug command)
* anomaly: ``kind`` (``modbus.not_modbus``, ``modbus.bad_length``, ``modbus.malformed_pdu`` ...)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gongyun.errors import ValidationFailed
from gongyun.security.ids.modbus import FUNCTIONS, WRITE_FUNCTIONS

SEVERITIES = ("low", "medium", "high", "critical")
PROTOCOLS = ("modbus", "opcua", "mqtt", "anomaly")
_NAMES = {v: k for k, v in FUNCTIONS.items()}
_GROUPS = {
    "read": {1, 2, 3, 4, 20, 23, 24},
    "write": set(WRITE_FUNCTIONS),
    "diagnostic": {7, 8, 11, 12, 17, 43},
}
_RULE = re.compile(r"^\s*alert\s+(\w+)\s*\((.*)\)\s*$", re.S)
_OPT = re.compile(r'\s*(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*;')
_TECHNIQUE = re.compile(r"^T0\d{3}(\.\d{3})?$")


class RuleInvalid(ValidationFailed):
    """A rule that does not parse or uses an unknown keyword."""

    code = "ids_rule_invalid"


Test = Callable[[Any], bool]


@dataclass(slots=True)
class Rule:
    """A parsed signature."""

    sid: int
    msg: str
    proto: str
    severity: str
    technique: str
    text: str
    tests: list[Test] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    def matches(self, rec: Any) -> bool:
        """True if every condition holds for the record."""
        return rec.proto == self.proto and all(t(rec) for t in self.tests)


def _numbers(spec: str, names: dict[str, int] | None = None) -> Callable[[int | None], bool]:
    """A predicate for ``1,2,5-9,>100,!3`` style lists."""
    spec = spec.strip()
    if spec.startswith("!"):
        inner = _numbers(spec[1:], names)
        return lambda v: v is not None and not inner(v)
    exact: set[int] = set()
    spans: list[tuple[float, float]] = []  # inclusive bounds; > and < become open-ended spans
    for raw in spec.split(","):
        p = raw.strip()
        if not p:
            continue
        if names is not None and p.upper() in names:
            exact.add(names[p.upper()])
        elif names is not None and p.lower() in _GROUPS:
            exact |= _GROUPS[p.lower()]
        elif p[0] == ">":
            spans.append((_int(p[1:]) + 1, float("inf")))
        elif p[0] == "<":
            spans.append((float("-inf"), _int(p[1:]) - 1))
        elif "-" in p[1:]:
            cut = p.index("-", 1)
            spans.append((_int(p[:cut]), _int(p[cut + 1 :])))
        else:
            exact.add(_int(p))
    parts = bool(exact or spans)
    if not parts:
        raise RuleInvalid(f"empty list {spec!r}")
    return lambda v: v is not None and (v in exact or any(lo <= v <= hi for lo, hi in spans))


def _int(s: str) -> int:
    try:
        return int(s.strip(), 0)
    except ValueError:
        raise RuleInvalid(f"not a number: {s!r}") from None


def _strings(spec: str) -> Callable[[str | None], bool]:
    neg = spec.startswith("!")
    wanted = {s.strip().lower() for s in spec.lstrip("!").split(",") if s.strip()}

    def test(v: str | None) -> bool:
        hit = v is not None and v.lower() in wanted
        return hit != neg if v is not None else neg

    return test


def topic_matches(filt: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    fp, tp = filt.split("/"), topic.split("/")
    for i, f in enumerate(fp):
        if f == "#":
            return True
        if i >= len(tp) or (f != "+" and f != tp[i]):
            return False
    return len(fp) == len(tp)


def _overlaps(spec: str) -> Test:
    ranges = []
    for p in spec.split(","):
        a, _, b = p.strip().partition("-")
        ranges.append((_int(a), _int(b) if b else _int(a)))

    def test(rec: Any) -> bool:
        start = rec.address if rec.address is not None else rec.extra.get("write_address")
        if start is None:
            return False
        qty = rec.quantity if rec.quantity is not None else rec.extra.get("write_quantity") or 1
        end = start + max(int(qty), 1) - 1
        return any(start <= hi and end >= lo for lo, hi in ranges)

    return test


def _values(spec: str) -> Test:
    pred = _numbers(spec)

    def test(rec: Any) -> bool:
        vals = rec.request_values if rec.request_values is not None else rec.extra.get("write_values")
        return bool(vals) and any(pred(v) for v in vals)

    return test


def _build(proto: str, key: str, value: str) -> Test:
    s: Callable[[str | None], bool]
    if key in ("src", "dst"):
        wanted = _strings(value)
        attr = "orig_h" if key == "src" else "resp_h"
        return lambda r: wanted(getattr(r, attr))
    if key == "dst_port":
        n = _numbers(value)
        return lambda r: n(r.resp_p)
    if proto == "modbus":
        if key == "function":
            f = _numbers(value, _NAMES)
            return lambda r: f(r.fc)
        if key == "unit":
            u = _numbers(value)
            return lambda r: u(r.unit)
        if key == "address":
            return _overlaps(value)
        if key == "value":
            return _values(value)
        if key == "subfunction":
            sub = _numbers(value)
            return lambda r: sub(r.extra.get("subfunction"))
        if key == "exception":
            if value.strip().lower() == "any":
                return lambda r: r.exception is not None
            e = _strings(value)
            return lambda r: e(r.exception)
        if key == "mei":
            m = _numbers(value)
            return lambda r: m(r.extra.get("mei"))
    if proto == "opcua":
        attrs = {
            "msgtype": "msg_type",
            "service": "service",
            "policy": "security_policy",
            "mode": "security_mode",
            "identity": "identity",
        }
        if key in attrs:
            s, attr = _strings(value), attrs[key]
            return lambda r: s(getattr(r, attr))
        if key == "node":
            wanted_nodes = {v.strip() for v in value.split(",")}
            return lambda r: bool(r.nodes) and any(n in wanted_nodes for n in r.nodes)
    if proto == "mqtt":
        if key == "msgtype":
            s = _strings(value)
            return lambda r: s(r.msg_type)
        if key == "topic":
            filters = [v.strip() for v in value.split(",")]
            return lambda r: bool(r.topic) and any(topic_matches(f, r.topic) for f in filters)
        if key == "filter":  # a SUBSCRIBE's own filters, compared literally
            literal = {v.strip() for v in value.split(",")}
            return lambda r: bool(literal & set(r.topics or []))
        if key == "client":
            s = _strings(value)
            return lambda r: s(r.client_id)
        if key == "sparkplug":
            s = _strings(value)
            return lambda r: s((r.sparkplug or {}).get("type"))
        if key == "metric":
            names = {v.strip() for v in value.split(",")}
            return lambda r: bool(names & set((r.sparkplug or {}).get("metrics") or {}))
    if proto == "anomaly" and key == "kind":
        s = _strings(value)
        return lambda r: s(r.kind)
    raise RuleInvalid(f"unknown keyword {key!r} for {proto} rules")


def parse_rule(text: str) -> Rule:
    """Parse one rule line."""
    m = _RULE.match(text)
    if not m:
        raise RuleInvalid(f"a rule looks like: alert PROTO (key:value; ...): {text[:80]!r}")
    proto, body = m.group(1).lower(), m.group(2).strip()
    if proto not in PROTOCOLS:
        raise RuleInvalid(f"unknown protocol {proto!r} (choose from {', '.join(PROTOCOLS)})")
    opts: dict[str, str] = {}
    pos = 0
    for om in _OPT.finditer(body):
        if body[pos : om.start()].strip():
            raise RuleInvalid(f"cannot read {body[pos : om.start()]!r} in {text[:80]!r}")
        v = om.group(2).strip()
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"')
        opts[om.group(1).lower()] = v
        pos = om.end()
    if body[pos:].strip():
        raise RuleInvalid(f"options end with ';': {body[pos:]!r}")
    for need in ("sid", "msg", "technique"):
        if need not in opts:
            raise RuleInvalid(f"rule without {need}: {text[:80]!r}")
    severity = opts.pop("severity", "medium").lower()
    if severity not in SEVERITIES:
        raise RuleInvalid(f"severity must be one of {', '.join(SEVERITIES)}")
    technique = opts.pop("technique").upper()
    if not _TECHNIQUE.match(technique):
        raise RuleInvalid(f"technique must be an ATT&CK for ICS id like T0855, got {technique!r}")
    rule = Rule(_int(opts.pop("sid")), opts.pop("msg"), proto, severity, technique, text.strip())
    rule.options = dict(opts)
    rule.tests = [_build(proto, k, v) for k, v in opts.items()]
    return rule


def parse_rules(text: str) -> list[Rule]:
    """Parse a rules file (continuation lines end with ``\\``; ``#`` comments)."""
    rules: list[Rule] = []
    buf = ""
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        rules.append(parse_rule(buf + s))
        buf = ""
    sids = [r.sid for r in rules]
    dup = {s for s in sids if sids.count(s) > 1}
    if dup:
        raise RuleInvalid(f"duplicate sid {sorted(dup)}")
    return rules


def starter_rules() -> list[Rule]:
    """The starter rule set shipped with Gongyun (``starter.rules`` beside this module)."""
    return parse_rules((Path(__file__).parent / "starter.rules").read_text(encoding="utf-8"))


def load_rules(paths: Iterable[str | Path], *, starter: bool = True) -> list[Rule]:
    """The starter set (unless ``starter`` is false) plus rules files."""
    text = (Path(__file__).parent / "starter.rules").read_text(encoding="utf-8") if starter else ""
    for p in paths:
        text += "\n" + Path(p).read_text(encoding="utf-8")
    return parse_rules(text)
