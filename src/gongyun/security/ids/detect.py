"""Detection: signature rules, learned allow-lists and behaviours over decoded records.

Every detection is an :class:`Event` with a rule id (a signature's ``sid``, ``B-...`` for a
behaviour, ``L-...`` for an allow-list deviation), a severity and a MITRE ATT&CK for ICS
technique. The detector keeps only bounded sliding windows; it does no I/O.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from gongyun.security.ids.modbus import WRITE_FUNCTIONS, ModbusRecord
from gongyun.security.ids.rules import Rule, topic_matches


@dataclass(slots=True)
class Event:
    """One detection."""

    rule_id: str
    msg: str
    severity: str
    technique: str
    ts: float
    proto: str
    src: str
    dst: str
    key: str  # de-duplication key: same rule, same endpoints
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sensor: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A behaviour detector's id, message, severity and technique."""

    id: str
    msg: str
    severity: str
    technique: str


BEHAVIOURS = {
    b.id: b
    for b in (
        Behaviour("B-FC-SCAN", "Modbus function-code scan", "medium", "T0888"),
        Behaviour("B-UNIT-SCAN", "Modbus unit-id scan", "medium", "T0846"),
        Behaviour("B-ADDR-SCAN", "Modbus points-list (address) scan", "medium", "T0861"),
        Behaviour("B-WRITE-FLOOD", "Modbus write flood", "high", "T0806"),
        Behaviour("B-REPLAY", "Replay of a captured Modbus write", "high", "T0855"),
        Behaviour("B-MALFORMED", "Malformed or oversize Modbus PDU", "medium", "T0866"),
        Behaviour("B-NOT-MODBUS", "Non-Modbus payload on a Modbus port", "medium", "T0885"),
        Behaviour(
            "B-OPCUA-NONE", "OPC UA session with security None where signing is required", "high", "T0886"
        ),
        Behaviour("B-OPCUA-NEW-CLIENT", "New OPC UA client", "medium", "T0886"),
        Behaviour(
            "B-MQTT-ROGUE-CMD", "MQTT command published by a client that is not the platform", "high", "T0848"
        ),
        Behaviour("L-NEW-FLOW", "Communication outside the learned baseline", "medium", "T0886"),
        Behaviour("L-NEW-FUNCTION", "Modbus function outside the learned baseline", "medium", "T0855"),
        Behaviour("L-ADDRESS", "Modbus address outside the learned range", "medium", "T0861"),
        Behaviour("L-VALUE", "Modbus write value outside the learned range", "high", "T0836"),
    )
}


@dataclass
class DetectorConfig:
    """Thresholds and site facts for the behaviours."""

    window_s: float = 30.0
    fc_scan: int = 5  # distinct function codes from one client to one server in the window
    unit_scan: int = 6  # distinct unit ids
    addr_scan: int = 12  # distinct start addresses read
    exception_scan: int = 3  # illegal function / address exceptions answered to one client
    write_flood: int = 20  # writes from one client within flood_s
    flood_s: float = 10.0
    replay_after_s: float = 2.0  # the same write PDU on another connection this much later is a replay
    opcua_require_signing: list[str] = field(default_factory=list)  # "host:port" or "*"; learned too
    mqtt_command_clients: list[str] = field(default_factory=list)  # client ids allowed to send NCMD/DCMD
    mqtt_command_learn: bool = True  # clients seen sending commands while learning are allowed too


class Baseline:
    """The learned allow-list: flows, function codes, address ranges and write value ranges."""

    def __init__(self) -> None:
        self.flows: set[str] = set()  # "proto orig_h resp_h:resp_p"
        self.functions: set[str] = set()  # "orig_h resp_h:port unit fc"
        self.addresses: dict[str, list[int]] = {}  # same key -> [lo, hi]
        self.values: dict[str, list[int]] = {}  # "resp_h:port unit addr" -> [lo, hi]
        self.opcua_clients: set[str] = set()  # "orig_h resp_h:port"
        self.mqtt_commanders: set[str] = set()  # client ids
        self.opcua_servers: dict[
            str, bool
        ] = {}  # "host:port" -> every channel seen while learning was signed

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "flows": sorted(self.flows),
            "functions": sorted(self.functions),
            "addresses": self.addresses,
            "values": self.values,
            "opcua_clients": sorted(self.opcua_clients),
            "mqtt_commanders": sorted(self.mqtt_commanders),
            "opcua_servers": self.opcua_servers,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Baseline:
        """Inverse of :meth:`to_dict`."""
        b = cls()
        b.flows = set(d.get("flows", []))
        b.functions = set(d.get("functions", []))
        b.addresses = {k: list(v) for k, v in d.get("addresses", {}).items()}
        b.values = {k: list(v) for k, v in d.get("values", {}).items()}
        b.opcua_clients = set(d.get("opcua_clients", []))
        b.mqtt_commanders = set(d.get("mqtt_commanders", []))
        b.opcua_servers = dict(d.get("opcua_servers", {}))
        return b

    def accept(self, event: Event | dict[str, Any]) -> bool:
        """Extend the baseline so that this deviation is normal from now on; True if it applied."""
        d = event.to_dict() if isinstance(event, Event) else event
        learn = d.get("detail", {}).get("learn")
        if not learn:
            return False
        kind, key = learn["kind"], learn["key"]
        if kind in ("flows", "functions", "opcua_clients", "mqtt_commanders"):
            getattr(self, kind).add(key)
        elif kind in ("addresses", "values"):
            lo, hi = learn["range"]
            cur = getattr(self, kind).get(key)
            getattr(self, kind)[key] = [min(lo, cur[0]), max(hi, cur[1])] if cur else [lo, hi]
        else:
            return False
        return True


def _widen(table: dict[str, list[int]], key: str, lo: int, hi: int) -> None:
    cur = table.get(key)
    if cur is None:
        table[key] = [lo, hi]
    else:
        cur[0], cur[1] = min(cur[0], lo), max(cur[1], hi)


class Detector:
    """Rules + allow-list + behaviours; ``process(record)`` returns the events it raises."""

    def __init__(
        self,
        rules: list[Rule] | None = None,
        config: DetectorConfig | None = None,
        *,
        learn_s: float = 0.0,
        baseline: Baseline | None = None,
        sensor: str = "",
    ) -> None:
        self.rules = rules or []
        self.by_proto: dict[str, list[Rule]] = defaultdict(list)
        for r in self.rules:
            self.by_proto[r.proto].append(r)
        self.config = config or DetectorConfig()
        self.baseline = baseline or Baseline()
        self.allowlist = learn_s > 0 or baseline is not None  # deviations only against a baseline
        self.learn_s = learn_s
        self.learn_until: float | None = None if learn_s > 0 else 0.0
        self.sensor = sensor
        self._win: dict[tuple[str, str], deque[tuple[float, Any]]] = defaultdict(deque)
        self._fired: dict[tuple[str, str], float] = {}
        self._writes: dict[bytes, tuple[float, str]] = {}

    @property
    def learning(self) -> bool:
        """True while the learning period runs (it starts with the first record)."""
        return self.learn_until is None or (self.learn_until > 0 and self._now < self.learn_until)

    _now = 0.0

    def process(self, rec: Any) -> list[Event]:
        """Detections raised by one record."""
        self._now = ts = rec.ts if getattr(rec, "resp_ts", None) is None else rec.resp_ts
        if self.learn_until is None:
            self.learn_until = ts + self.learn_s
        events: list[Event] = []
        for rule in self.by_proto.get(rec.proto, ()):
            if rule.matches(rec):
                events.append(
                    self._event(
                        str(rule.sid), rule.msg, rule.severity, rule.technique, rec, {"rule": rule.text}
                    )
                )
        proto = rec.proto
        if proto == "modbus":
            self._modbus(rec, events)
        elif proto == "anomaly":
            kind = rec.kind
            if kind == "modbus.not_modbus":
                events.append(self._behaviour("B-NOT-MODBUS", rec, {"bytes": rec.detail.get("bytes")}))
            elif kind.startswith("modbus."):
                events.append(self._behaviour("B-MALFORMED", rec, dict(rec.detail)))
        elif proto == "opcua":
            self._opcua(rec, events)
        elif proto == "mqtt":
            self._mqtt(rec, events)
        return events

    # -- helpers -------------------------------------------------------------------------
    def _event(self, rule_id: str, msg: str, sev: str, tech: str, rec: Any, detail: dict[str, Any]) -> Event:
        src = f"{rec.orig_h}:{rec.orig_p}" if rec.orig_p else rec.orig_h
        dst = f"{rec.resp_h}:{rec.resp_p}"
        key = hashlib.blake2b(
            f"{self.sensor}|{rule_id}|{rec.orig_h}|{dst}".encode(), digest_size=10
        ).hexdigest()
        detail = {**detail, "record": _summary(rec)}
        return Event(rule_id, msg, sev, tech, self._now, rec.proto, src, dst, key, detail, sensor=self.sensor)

    def _behaviour(self, bid: str, rec: Any, detail: dict[str, Any]) -> Event:
        b = BEHAVIOURS[bid]
        return self._event(b.id, b.msg, b.severity, b.technique, rec, detail)

    def _window(self, name: str, key: str, ts: float, item: Any, span: float) -> deque[tuple[float, Any]]:
        w = self._win[(name, key)]
        w.append((ts, item))
        while w and w[0][0] < ts - span:
            w.popleft()
        if len(w) > 10000:
            w.popleft()
        return w

    def _once(self, name: str, key: str, ts: float) -> bool:
        """True at most once per window for (behaviour, key): a scan raises one event, not hundreds."""
        last = self._fired.get((name, key))
        if last is not None and ts - last < self.config.window_s:
            return False
        self._fired[(name, key)] = ts
        return True

    # -- Modbus --------------------------------------------------------------------------
    def _modbus(self, rec: ModbusRecord, events: list[Event]) -> None:
        ts = self._now
        server = f"{rec.resp_h}:{rec.resp_p}"
        pair = f"{rec.orig_h} {server}"
        fkey = f"{pair} {rec.unit} {rec.fc}"
        addr_lo = rec.address if rec.address is not None else rec.extra.get("write_address")
        qty = rec.quantity if rec.quantity is not None else rec.extra.get("write_quantity")
        addr_hi = None if addr_lo is None else addr_lo + max(int(qty or 1), 1) - 1
        values = rec.request_values if rec.request_values is not None else rec.extra.get("write_values")
        is_write = rec.fc in WRITE_FUNCTIONS
        b = self.baseline
        if self.learning:
            b.flows.add(f"modbus {pair}")
            b.functions.add(fkey)
            if addr_lo is not None and addr_hi is not None and rec.exception is None:
                _widen(b.addresses, fkey, addr_lo, addr_hi)
            if is_write and values and addr_lo is not None and rec.exception is None:
                for i, v in enumerate(values if rec.fc in (16, 23) else values[:1]):
                    _widen(b.values, f"{server} {rec.unit} {rec.fc in (5, 15)} {addr_lo + i}", v, v)
        elif self.allowlist:
            new_flow = f"modbus {pair}" not in b.flows
            learn: dict[str, Any]
            if new_flow and self._once("L-NEW-FLOW", pair, ts):
                learn = {"kind": "flows", "key": f"modbus {pair}"}
                events.append(self._behaviour("L-NEW-FLOW", rec, {"learn": learn}))
            if fkey not in b.functions:
                if (not new_flow or is_write) and self._once("L-NEW-FUNCTION", fkey, ts):
                    learn = {"kind": "functions", "key": fkey}
                    events.append(self._behaviour("L-NEW-FUNCTION", rec, {"learn": learn}))
            else:
                rng = b.addresses.get(fkey)
                if (
                    rng
                    and addr_lo is not None
                    and addr_hi is not None
                    and (addr_lo < rng[0] or addr_hi > rng[1])
                ) and self._once("L-ADDRESS", fkey, ts):
                    learn = {"kind": "addresses", "key": fkey, "range": [addr_lo, addr_hi]}
                    events.append(self._behaviour("L-ADDRESS", rec, {"learned": rng, "learn": learn}))
                if is_write and values and addr_lo is not None:
                    for i, v in enumerate(values if rec.fc in (16, 23) else values[:1]):
                        vkey = f"{server} {rec.unit} {rec.fc in (5, 15)} {addr_lo + i}"
                        vr = b.values.get(vkey)
                        if vr is not None and not vr[0] <= v <= vr[1] and self._once("L-VALUE", vkey, ts):
                            learn = {"kind": "values", "key": vkey, "range": [v, v]}
                            detail: dict[str, Any] = {"learned": vr, "value": v, "learn": learn}
                            events.append(self._behaviour("L-VALUE", rec, detail))
        if not self.learning and not self._known(fkey, addr_lo, addr_hi):
            self._scans(rec, pair, ts, is_write, events)
        self._exceptions_floods_replays(rec, pair, server, ts, is_write, events)

    def _known(self, fkey: str, lo: int | None, hi: int | None) -> bool:
        """True if a request is inside the learned baseline (normal polling is no scan)."""
        if not self.allowlist or fkey not in self.baseline.functions:
            return False
        rng = self.baseline.addresses.get(fkey)
        return lo is None or hi is None or (rng is not None and rng[0] <= lo and hi <= rng[1])

    def _scans(self, rec: ModbusRecord, pair: str, ts: float, is_write: bool, events: list[Event]) -> None:
        c = self.config
        # scans: distinct function codes / units / addresses from one client to one server
        w = self._window("fc", pair, ts, rec.fc, c.window_s)
        if len({x for _, x in w}) >= c.fc_scan and self._once("B-FC-SCAN", pair, ts):
            events.append(self._behaviour("B-FC-SCAN", rec, {"functions": sorted({x for _, x in w})}))
        w = self._window("unit", pair, ts, rec.unit, c.window_s)
        if len({x for _, x in w}) >= c.unit_scan and self._once("B-UNIT-SCAN", pair, ts):
            events.append(self._behaviour("B-UNIT-SCAN", rec, {"units": sorted({x for _, x in w})[:50]}))
        if rec.address is not None and not is_write:
            w = self._window("addr", pair, ts, (rec.fc, rec.address), c.window_s)
            if len({x for _, x in w}) >= c.addr_scan and self._once("B-ADDR-SCAN", pair, ts):
                events.append(self._behaviour("B-ADDR-SCAN", rec, {"addresses": len({x for _, x in w})}))

    def _exceptions_floods_replays(
        self, rec: ModbusRecord, pair: str, server: str, ts: float, is_write: bool, events: list[Event]
    ) -> None:
        c = self.config
        if rec.exception in ("ILLEGAL_FUNCTION", "ILLEGAL_DATA_ADDRESS"):
            w = self._window("exc", f"{rec.exception} {pair}", ts, 1, c.window_s)
            bid = "B-FC-SCAN" if rec.exception == "ILLEGAL_FUNCTION" else "B-ADDR-SCAN"
            if len(w) >= c.exception_scan and self._once(bid, pair, ts):
                events.append(self._behaviour(bid, rec, {"exceptions": len(w), "exception": rec.exception}))
        if is_write:
            w = self._window("write", f"{rec.orig_h} {server}", ts, 1, c.flood_s)
            if len(w) >= c.write_flood and self._once("B-WRITE-FLOOD", pair, ts):
                events.append(self._behaviour("B-WRITE-FLOOD", rec, {"writes": len(w), "seconds": c.flood_s}))
            if rec.raw_request:
                pkey = server.encode() + bytes([rec.unit]) + rec.raw_request
                seen = self._writes.get(pkey)
                replayed = seen is not None and seen[1] != rec.uid and ts - seen[0] >= c.replay_after_s
                if replayed and seen is not None and self._once("B-REPLAY", pair, ts):
                    detail = {"first_seen": seen[0], "pdu": rec.raw_request.hex()}
                    events.append(self._behaviour("B-REPLAY", rec, detail))
                if seen is None or seen[1] != rec.uid:
                    self._writes[pkey] = (ts, rec.uid) if seen is None else seen
                if len(self._writes) > 50000:
                    self._writes.pop(next(iter(self._writes)))

    # -- OPC UA and MQTT -----------------------------------------------------------------
    def _opcua(self, rec: Any, events: list[Event]) -> None:
        server = f"{rec.resp_h}:{rec.resp_p}"
        client = f"{rec.orig_h} {server}"
        if rec.msg_type == "OPN" and rec.from_client and rec.security_policy:
            unsigned = rec.security_policy == "None"
            if self.learning:
                self.baseline.opcua_servers[server] = (
                    self.baseline.opcua_servers.get(server, True) and not unsigned
                )
            req = self.config.opcua_require_signing
            signing = "*" in req or server in req or self.baseline.opcua_servers.get(server, False)
            if unsigned and signing and not self.learning and self._once("B-OPCUA-NONE", rec.uid, self._now):
                events.append(self._behaviour("B-OPCUA-NONE", rec, {"policy": rec.security_policy}))
        if rec.from_client and self.learning:
            # any client message counts: a client connected before the sensor started shows only
            # MSG chunks while it learns, and its next reconnect (HEL/OPN) is not a new client
            self.baseline.opcua_clients.add(client)
        elif (
            rec.from_client
            and rec.msg_type in ("HEL", "OPN")
            and (
                self.allowlist
                and client not in self.baseline.opcua_clients
                and self._once("B-OPCUA-NEW-CLIENT", client, self._now)
            )
        ):
            learn = {"kind": "opcua_clients", "key": client}
            events.append(self._behaviour("B-OPCUA-NEW-CLIENT", rec, {"learn": learn}))

    def _mqtt(self, rec: Any, events: list[Event]) -> None:
        sp = rec.sparkplug
        if (
            rec.msg_type != "PUBLISH"
            or not rec.from_client
            or not sp
            or sp.get("type") not in ("NCMD", "DCMD")
        ):
            return
        cid = rec.client_id or ""
        allowed = cid in self.config.mqtt_command_clients or cid in self.baseline.mqtt_commanders
        if self.learning and self.config.mqtt_command_learn:
            self.baseline.mqtt_commanders.add(cid)
        elif not allowed and self._once("B-MQTT-ROGUE-CMD", f"{cid} {rec.topic}", self._now):
            learn = {"kind": "mqtt_commanders", "key": cid}
            events.append(
                self._behaviour(
                    "B-MQTT-ROGUE-CMD", rec, {"client_id": cid, "topic": rec.topic, "learn": learn}
                )
            )


def _summary(rec: Any) -> dict[str, Any]:
    """The fields of a record worth keeping on an event (small, JSON-able)."""
    keep = (
        "uid",
        "orig_h",
        "orig_p",
        "resp_h",
        "resp_p",
        "tid",
        "unit",
        "func",
        "address",
        "quantity",
        "request_values",
        "exception",
        "msg_type",
        "service",
        "security_policy",
        "security_mode",
        "identity",
        "client_id",
        "topic",
        "kind",
        "nodes",
    )
    d = {k: getattr(rec, k) for k in keep if getattr(rec, k, None) is not None}
    if isinstance(d.get("request_values"), list):
        d["request_values"] = d["request_values"][:32]
    json.dumps(d, default=str)
    return d


def topic_allowed(filters: list[str], topic: str) -> bool:
    """True if ``topic`` matches one of the MQTT filters."""
    return any(topic_matches(f, topic) for f in filters)


def now() -> float:
    """Wall clock seconds (the sensor's)."""
    return time.time()
