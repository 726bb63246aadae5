"""Attack primitives of the cyber range: raw Modbus/TCP, OPC UA and MQTT from an attacker address.

Every primitive is bounded in count and time, talks only to loopback addresses, and binds its
socket to the attacker's own loopback address (``127.0.0.66`` by default) so that the ground
truth (who attacked) is visible on the wire.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

ATTACKER = "127.0.0.66"
TIMEOUT_S = 1.0


def _loopback(host: str) -> None:
    if not (host.startswith("127.") or host in ("::1", "localhost")):
        raise ValueError(f"the cyber range only targets loopback addresses, not {host!r}")


def connect(host: str, port: int, src: str = ATTACKER) -> socket.socket:
    """A TCP connection from ``src`` (a loopback address) to ``host:port``."""
    _loopback(host)
    _loopback(src)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT_S)
    s.bind((src, 0))
    s.connect((host, port))
    return s


@dataclass
class ModbusRaw:
    """A hand-driven Modbus/TCP client: any PDU, any unit, and deliberately broken frames."""

    host: str
    port: int
    src: str = ATTACKER
    tid: int = 0
    sock: socket.socket | None = field(default=None, repr=False)
    sent: int = 0

    def _sock(self) -> socket.socket:
        if self.sock is None:
            self.sock = connect(self.host, self.port, self.src)
        return self.sock

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def raw(self, data: bytes, *, expect_answer: bool = False) -> bytes:
        """Send bytes as they are; return what comes back within the timeout."""
        s = self._sock()
        try:
            s.sendall(data)
            self.sent += 1
            return s.recv(4096) if expect_answer else b""
        except OSError:
            self.close()
            return b""

    def request(self, unit: int, pdu: bytes) -> bytes | None:
        """Send one request PDU; return the response PDU (None on timeout or a dropped connection)."""
        self.tid = (self.tid + 1) & 0xFFFF
        adu = struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit) + pdu
        for attempt in range(2):
            try:
                s = self._sock()
                s.sendall(adu)
                self.sent += 1
                head = s.recv(7)
                if len(head) < 7:
                    raise OSError("closed")
                length = struct.unpack(">H", head[4:6])[0]
                body = b""
                while len(body) < length - 1:
                    chunk = s.recv(length - 1 - len(body))
                    if not chunk:
                        raise OSError("closed")
                    body += chunk
                return body
            except OSError:
                self.close()
                if attempt:
                    return None
        return None


def read_pdu(fc: int, address: int, count: int) -> bytes:
    """A read request PDU (functions 1-4)."""
    return struct.pack(">BHH", fc, address, count)


def write_register_pdu(address: int, value: int) -> bytes:
    """Write single register (6)."""
    return struct.pack(">BHH", 6, address, value)


def write_coil_pdu(address: int, on: bool) -> bytes:
    """Write single coil (5)."""
    return struct.pack(">BHH", 5, address, 0xFF00 if on else 0)


def opcua_none_session(host: str, port: int, src: str = ATTACKER, path: str = "/gongyun/cnc") -> list[str]:
    """Hello and OpenSecureChannel with security policy None (what a rogue client sends first)."""
    from asyncua import ua
    from asyncua.ua.ua_binary import struct_to_binary

    got: list[str] = []
    s = connect(host, port, src)
    try:
        hello = ua.Hello()
        hello.EndpointUrl = f"opc.tcp://{host}:{port}{path}"  # type: ignore[assignment]
        body = struct_to_binary(hello)
        s.sendall(b"HELF" + struct.pack("<I", 8 + len(body)) + body)
        got.append(s.recv(4096)[:3].decode("latin-1"))
        req = ua.OpenSecureChannelRequest()
        req.Parameters.SecurityMode = ua.MessageSecurityMode.None_
        req.Parameters.RequestedLifetime = 60000
        req.Parameters.ClientNonce = b""
        policy = b"http://opcfoundation.org/UA/SecurityPolicy#None"
        head = struct.pack("<I", 0) + struct.pack("<i", len(policy)) + policy + struct.pack("<ii", -1, -1)
        msg = head + struct.pack("<II", 1, 1) + struct_to_binary(req)
        s.sendall(b"OPNF" + struct.pack("<I", 8 + len(msg)) + msg)
        got.append(s.recv(4096)[:3].decode("latin-1"))
    except OSError:
        pass
    finally:
        s.close()
    return got


def _mqtt_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _mqtt_packet(first: int, body: bytes) -> bytes:
    n, length = len(body), b""
    while True:
        byte, n = n & 0x7F, n >> 7
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


def mqtt_rogue_command(host: str, port: int, topic: str, payload: bytes, client_id: str = "rogue-hmi",
                       src: str = ATTACKER) -> bool:  # fmt: skip
    """CONNECT as an unknown client and PUBLISH a command; True if the broker accepted the session."""
    s = connect(host, port, src)
    try:
        connect_body = _mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 30) + _mqtt_str(client_id)
        s.sendall(_mqtt_packet(0x10, connect_body))
        ack = s.recv(4)
        ok = len(ack) == 4 and ack[0] == 0x20 and ack[3] == 0
        if ok:
            s.sendall(_mqtt_packet(0x30, _mqtt_str(topic) + payload))
            s.sendall(_mqtt_packet(0xE0, b""))
            time.sleep(0.05)
        return ok
    except OSError:
        return False
    finally:
        s.close()


def sparkplug_command(metric: str, value: float) -> bytes:
    """A Sparkplug B command payload setting one metric."""
    from gongyun.sparkplug.payload import Payload, SpbType, now_ms, set_metric_value

    msg = Payload()
    msg.timestamp = now_ms()
    m = msg.metrics.add()
    m.name = metric
    m.datatype = int(SpbType.Double)
    m.timestamp = now_ms()
    set_metric_value(m, value, SpbType.Double)
    return bytes(msg.SerializeToString())
