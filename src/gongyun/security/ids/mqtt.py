"""MQTT 3.1.1/5 control packets: CONNECT (client id, user), PUBLISH (topic, QoS, Sparkplug B) ...

A record per CONNECT, CONNACK, PUBLISH, SUBSCRIBE and DISCONNECT; the connection's client id
and user are carried onto every later record of that connection. Sparkplug B topics are parsed
(group, message type, edge node, device) and NCMD/DCMD payloads decoded to their metric names
and values. Pure decoding: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gongyun.security.ids.stats import Stats

TYPES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "AUTH",
}
RECORDED = frozenset({1, 2, 3, 8, 14})
MAX_PACKET = 1 << 20  # a sensor's own bound: larger packets are counted and the stream dropped


class _Short(Exception):
    pass


@dataclass(slots=True)
class MqttRecord:
    """One MQTT control packet of interest."""

    ts: float
    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    msg_type: str
    from_client: bool
    client_id: str | None = None
    username: str | None = None
    topic: str | None = None
    qos: int | None = None
    retain: bool | None = None
    payload_len: int | None = None
    return_code: int | None = None
    protocol_level: int | None = None
    topics: list[str] | None = None  # SUBSCRIBE filters
    sparkplug: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    proto = "mqtt"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        d = {k: getattr(self, k) for k in self.__slots__}
        d["proto"] = "mqtt"
        return d


def _varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """(value, next position) of an MQTT variable byte integer; (-1, pos) when incomplete, -2 if bad."""
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(buf):
            return -1, pos
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    return -2, pos


class _R:
    __slots__ = ("b", "p")

    def __init__(self, b: bytes, p: int = 0) -> None:
        self.b, self.p = b, p

    def u8(self) -> int:
        if self.p >= len(self.b):
            raise _Short
        self.p += 1
        return self.b[self.p - 1]

    def u16(self) -> int:
        if self.p + 2 > len(self.b):
            raise _Short
        self.p += 2
        return int.from_bytes(self.b[self.p - 2 : self.p], "big")

    def blob(self) -> bytes:
        n = self.u16()
        if self.p + n > len(self.b):
            raise _Short
        self.p += n
        return self.b[self.p - n : self.p]

    def text(self) -> str:
        return self.blob().decode("utf-8", "replace")

    def skip_props(self) -> None:
        n, nxt = _varint(self.b, self.p)
        if n < 0 or nxt + n > len(self.b):
            raise _Short
        self.p = nxt + n


def sparkplug_info(topic: str, payload: bytes) -> dict[str, Any] | None:
    """Group, type, node, device of a Sparkplug B topic; metric names/values of commands."""
    from gongyun.sparkplug.topics import parse_topic

    t = parse_topic(topic)
    if t is None:
        return None
    info: dict[str, Any] = {"group": t.group, "type": t.kind, "node": t.node, "device": t.device}
    if t.kind in ("NCMD", "DCMD"):
        from gongyun.errors import GongyunError
        from gongyun.sparkplug.payload import metric_value, parse

        try:
            msg = parse(payload)
            info["metrics"] = {m.name: metric_value(m) for m in msg.metrics}
        except (GongyunError, ValueError, TypeError):
            info["invalid_payload"] = True
    return info


class MqttSession:
    """MQTT state of one TCP connection."""

    __slots__ = ("anomalies", "client_id", "level", "orig", "resp", "stats", "uid", "username")

    def __init__(self, uid: str, orig: tuple[str, int], resp: tuple[str, int], stats: Stats) -> None:
        self.uid, self.orig, self.resp, self.stats = uid, orig, resp, stats
        self.client_id: str | None = None
        self.username: str | None = None
        self.level = 4
        self.anomalies: list[dict[str, Any]] = []

    def feed(self, buf: bytearray, from_orig: bool, ts: float, out: list[Any]) -> None:
        """Consume whole control packets from one direction's stream."""
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length, body = _varint(buf, pos + 1)
            if length == -1:
                break
            if length == -2 or length > MAX_PACKET or buf[pos] >> 4 == 0:
                self.stats.skip("mqtt.malformed")
                self.anomalies.append(
                    {
                        "kind": "mqtt.malformed",
                        "ts": ts,
                        "from_orig": from_orig,
                        "bytes": bytes(buf[pos : pos + 16]).hex(),
                    }
                )
                pos = n
                break
            if body + length > n:
                break
            first = buf[pos]
            packet = bytes(buf[body : body + length])
            pos = body + length
            self.stats.count("mqtt.packets")
            ptype = first >> 4
            if ptype in RECORDED:
                try:
                    out.append(self._packet(ts, first, packet, from_orig))
                except _Short:
                    self.stats.skip("mqtt.truncated_packet")
                    self.anomalies.append(
                        {"kind": "mqtt.malformed", "ts": ts, "from_orig": from_orig, "type": TYPES.get(ptype)}
                    )
        if pos:
            del buf[:pos]

    def _packet(self, ts: float, first: int, body: bytes, from_orig: bool) -> MqttRecord:
        ptype = first >> 4
        o, r = self.orig, self.resp
        rec = MqttRecord(ts, self.uid, o[0], o[1], r[0], r[1], TYPES[ptype], from_orig)
        rd = _R(body)
        if ptype == 1:
            rd.text()  # protocol name
            self.level = rec.protocol_level = rd.u8()
            flags = rd.u8()
            rec.extra["keepalive"] = rd.u16()
            if self.level >= 5:
                rd.skip_props()
            self.client_id = rd.text()
            if flags & 0x04:
                if self.level >= 5:
                    rd.skip_props()
                rec.extra["will_topic"] = rd.text()
                rd.blob()
            if flags & 0x80:
                self.username = rd.text()
            rec.extra["password"] = bool(flags & 0x40)
            rec.extra["clean"] = bool(flags & 0x02)
        elif ptype == 2:
            rd.u8()
            rec.return_code = rd.u8()
        elif ptype == 3:
            qos = (first >> 1) & 3
            rec.qos, rec.retain = qos, bool(first & 1)
            rec.topic = rd.text()
            if qos:
                rec.extra["packet_id"] = rd.u16()
            if self.level >= 5:
                rd.skip_props()
            payload = body[rd.p :]
            rec.payload_len = len(payload)
            if rec.topic.startswith("spBv1.0/"):
                rec.sparkplug = sparkplug_info(rec.topic, payload)
        elif ptype == 8:
            rd.u16()
            if self.level >= 5:
                rd.skip_props()
            topics = []
            while rd.p < len(body):
                topics.append(rd.text())
                rd.u8()
            rec.topics = topics
        rec.client_id, rec.username = self.client_id, self.username
        return rec

    def close(self, out: list[Any]) -> None:
        """Nothing is pending in MQTT."""
