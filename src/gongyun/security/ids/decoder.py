"""Frames in, protocol records out: TCP flow tracking, stream reassembly and protocol dispatch.

Each TCP connection to a known server port (Modbus 502/5020, OPC UA 4840, MQTT 1883 by
default) gets a flow: both directions are reassembled in sequence order (retransmissions
trimmed, out-of-order segments held up to a bound, gaps counted and skipped) and handed to the
protocol's session object, which frames messages and emits records. Everything is counted in
:class:`Stats`; nothing raises on bad input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from gongyun.security.ids.capture import Frame, Segment, addr_str, parse_tcp
from gongyun.security.ids.modbus import ModbusSession
from gongyun.security.ids.mqtt import MqttSession
from gongyun.security.ids.opcua import OpcUaSession
from gongyun.security.ids.stats import Stats

DEFAULT_PORTS: dict[int, str] = {502: "modbus", 5020: "modbus", 4840: "opcua", 1883: "mqtt"}
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
MAX_OOO = 64  # out-of-order segments held per direction before the gap is skipped
MAX_FLOWS = 65536


class Session(Protocol):
    """A protocol's per-connection state."""

    def feed(self, buf: bytearray, from_orig: bool, ts: float, out: list[Any]) -> None: ...

    def close(self, out: list[Any]) -> None: ...


@dataclass(slots=True)
class Anomaly:
    """Something wrong on the wire that is no protocol record: malformed, non-protocol bytes ..."""

    kind: str
    ts: float
    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    service: str
    detail: dict[str, Any]

    proto = "anomaly"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        d = {k: getattr(self, k) for k in self.__slots__}
        d["proto"] = "anomaly"
        return d


class _Dir:
    __slots__ = ("buf", "next_seq", "ooo")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.buf = bytearray()
        self.ooo: dict[int, bytes] = {}


class Flow:
    """One TCP connection: endpoints (orig = client), both directions' streams, its session."""

    __slots__ = (
        "bytes",
        "dirs",
        "fins",
        "first_ts",
        "key",
        "last_ts",
        "orig",
        "packets",
        "resp",
        "service",
        "session",
        "uid",
    )

    def __init__(
        self,
        key: tuple[bytes, int, bytes, int],
        uid: str,
        orig: tuple[str, int],
        resp: tuple[str, int],
        service: str,
        session: Session,
        ts: float,
    ) -> None:
        self.key, self.uid, self.orig, self.resp, self.service, self.session = (
            key,
            uid,
            orig,
            resp,
            service,
            session,
        )
        self.fins = 0
        self.dirs = (_Dir(), _Dir())  # [0] from orig, [1] from resp
        self.first_ts = self.last_ts = ts
        self.packets = self.bytes = 0


def make_uid(key: tuple[bytes, int, bytes, int], ts: float) -> str:
    """A Zeek-like connection uid (C + 17 base62 chars) from the 4-tuple and start time."""
    h = int.from_bytes(hashlib.blake2b(repr((key, ts)).encode(), digest_size=13).digest(), "big")
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(17):
        h, r = divmod(h, 62)
        out.append(chars[r])
    return "C" + "".join(out)


class Decoder:
    """Stateful decoder of a packet stream (one sensor); ``frame()`` per packet, ``flush()`` at the end."""

    def __init__(self, ports: dict[int, str] | None = None, stats: Stats | None = None) -> None:
        self.ports = dict(DEFAULT_PORTS if ports is None else ports)
        self.stats = stats or Stats()
        self.flows: dict[tuple[bytes, int, bytes, int], tuple[Flow, int]] = {}
        self.talkers: dict[
            tuple[str, str, str], list[float]
        ] = {}  # (orig, resp, service) -> [pkts, bytes, last]

    def _session(self, service: str, uid: str, orig: tuple[str, int], resp: tuple[str, int]) -> Session:
        if service == "modbus":
            return ModbusSession(uid, orig, resp, self.stats)
        if service == "opcua":
            return OpcUaSession(uid, orig, resp, self.stats)
        return MqttSession(uid, orig, resp, self.stats)

    def frames(self, frames: Iterable[Frame]) -> list[Any]:
        """Decode many frames; return every record (flushes at the end)."""
        out: list[Any] = []
        for ts, link, data in frames:
            self.frame(ts, link, data, out)
        self.flush(out)
        return out

    def frame(self, ts: float, link: int, data: bytes, out: list[Any]) -> None:
        """Decode one frame, appending any records it completes to ``out``."""
        self.stats.count("packets")
        seg = parse_tcp(link, data, self.stats)
        if seg is not None:
            self.segment(ts, seg, out)

    def _new_flow(self, ts: float, seg: Segment) -> tuple[Flow, int] | None:
        ports = self.ports
        syn_only = seg.flags & (SYN | ACK) == SYN
        if seg.dport in ports and (syn_only or seg.sport not in ports or seg.dport <= seg.sport):
            key = (seg.src, seg.sport, seg.dst, seg.dport)
            service, direction = ports[seg.dport], 0
        elif seg.sport in ports:
            key = (seg.dst, seg.dport, seg.src, seg.sport)
            service, direction = ports[seg.sport], 1
        else:
            self.stats.count("ignored.tcp_other_port")  # not monitored: no error
            return None
        if not seg.payload and not syn_only:
            return None  # a bare ACK/FIN/RST: the tail of a connection we never saw, or one just closed
        if len(self.flows) >= 2 * MAX_FLOWS:  # evict the oldest connections (two keys each)
            self.stats.skip("tcp.flow_evicted")
            for k in list(self.flows)[: MAX_FLOWS // 4]:
                self.flows.pop(k, None)
        uid = make_uid(key, ts)
        orig, resp = (addr_str(key[0]), key[1]), (addr_str(key[2]), key[3])
        flow = Flow(key, uid, orig, resp, service, self._session(service, uid, orig, resp), ts)
        self.flows[key] = (flow, 0)
        self.flows[(key[2], key[3], key[0], key[1])] = (flow, 1)
        self.stats.count(f"flows.{service}")
        return flow, direction

    def segment(self, ts: float, seg: Segment, out: list[Any]) -> None:
        """Feed one TCP segment."""
        entry = self.flows.get((seg.src, seg.sport, seg.dst, seg.dport))
        if entry is None:
            entry = self._new_flow(ts, seg)
            if entry is None:
                return
        flow, direction = entry
        flow.last_ts = ts
        flow.packets += 1
        payload = seg.payload
        d = flow.dirs[direction]
        if seg.flags & SYN:
            d.next_seq = (seg.seq + 1) & 0xFFFFFFFF
        if payload:
            flow.bytes += len(payload)
            self._data(flow, d, direction, seg.seq, payload, ts, out)
        if seg.flags & (FIN | RST):
            flow.fins |= 1 << direction
            if seg.flags & RST or flow.fins == 3:
                self._close(flow, out)

    def _data(
        self, flow: Flow, d: _Dir, direction: int, seq: int, payload: bytes, ts: float, out: list[Any]
    ) -> None:
        if d.next_seq is None:
            d.next_seq = seq
        ahead = (seq - d.next_seq) & 0xFFFFFFFF
        if ahead == 0:
            d.buf += payload
            d.next_seq = (seq + len(payload)) & 0xFFFFFFFF
            if d.ooo:
                self._drain(d)
        elif ahead >= 0x80000000:  # before next_seq: a retransmission, maybe with new bytes at its end
            behind = 0x100000000 - ahead
            if behind >= len(payload):
                self.stats.skip("tcp.retransmission")
                return
            d.buf += payload[behind:]
            d.next_seq = (seq + len(payload)) & 0xFFFFFFFF
            if d.ooo:
                self._drain(d)
        else:
            d.ooo[seq] = payload
            if len(d.ooo) <= MAX_OOO:
                return
            self.stats.skip("tcp.gap")  # a lost segment: skip to the earliest held one
            d.buf.clear()
            d.next_seq = min(d.ooo, key=lambda s: (s - d.next_seq) & 0xFFFFFFFF)  # type: ignore[operator]
            self._drain(d)
        try:
            flow.session.feed(d.buf, direction == 0, ts, out)
        except Exception as exc:  # a decoder bug must never stop the sensor: count it, drop the bytes
            self.stats.skip(f"{flow.service}.decoder_error.{type(exc).__name__}")
            d.buf.clear()
        anomalies = getattr(flow.session, "anomalies", None)
        if anomalies:
            for a in anomalies:
                kind = a.pop("kind")
                at = a.pop("ts", ts)
                out.append(Anomaly(kind, at, flow.uid, *flow.orig, *flow.resp, flow.service, a))
            anomalies.clear()

    def _drain(self, d: _Dir) -> None:
        while d.ooo:
            nxt = d.next_seq
            data = d.ooo.pop(nxt, None)  # type: ignore[arg-type]
            if data is None:
                # drop held segments that are now entirely behind
                for s in [s for s in d.ooo if (s - nxt) & 0xFFFFFFFF >= 0x80000000]:  # type: ignore[operator]
                    data = d.ooo.pop(s)
                    behind = (nxt - s) & 0xFFFFFFFF  # type: ignore[operator]
                    if behind < len(data):
                        d.buf += data[behind:]
                        d.next_seq = (s + len(data)) & 0xFFFFFFFF
                        break
                else:
                    return
                continue
            d.buf += data
            d.next_seq = (nxt + len(data)) & 0xFFFFFFFF  # type: ignore[operator]

    def _close(self, flow: Flow, out: list[Any]) -> None:
        k = flow.key
        if self.flows.pop(k, None) is None:
            return
        self.flows.pop((k[2], k[3], k[0], k[1]), None)
        flow.session.close(out)
        self._talk(flow)

    def _talk(self, flow: Flow) -> None:
        k = (flow.orig[0], f"{flow.resp[0]}:{flow.resp[1]}", flow.service)
        t = self.talkers.setdefault(k, [0.0, 0.0, 0.0])
        t[0] += flow.packets
        t[1] += flow.bytes
        t[2] = max(t[2], flow.last_ts)
        flow.packets = flow.bytes = 0

    def flush(self, out: list[Any]) -> None:
        """Close every open flow: pending requests come out unmatched."""
        seen: set[int] = set()
        for flow, _ in list(self.flows.values()):
            if id(flow) in seen:
                continue
            seen.add(id(flow))
            flow.session.close(out)
            self._talk(flow)
        self.flows.clear()

    def communication(self) -> list[dict[str, Any]]:
        """Who talked to whom, by protocol (closed flows plus open ones)."""
        seen: set[int] = set()
        for flow, _ in self.flows.values():
            if id(flow) not in seen:
                seen.add(id(flow))
                self._talk(flow)
        return [
            {"orig": o, "resp": r, "service": s, "packets": int(v[0]), "bytes": int(v[1]), "last": v[2]}
            for (o, r, s), v in self.talkers.items()
        ]
