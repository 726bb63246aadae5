"""OPC UA binary (UA-TCP/UASC): Hello, OpenSecureChannel, CreateSession, ActivateSession, Write, Call.

A record per message chunk of interest: the message type, the security policy and mode of the
channel (from OpenSecureChannel), the service of a MSG (its type id) and, while the channel is
not encrypted, the service's fields: endpoint and session name, the user identity token type,
the nodes written with their values, the methods called. Pure decoding: no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from gongyun.security.ids.stats import Stats

SERVICES = {
    446: "OpenSecureChannelRequest",
    449: "OpenSecureChannelResponse",
    452: "CloseSecureChannelRequest",
    428: "GetEndpointsRequest",
    431: "GetEndpointsResponse",
    422: "FindServersRequest",
    461: "CreateSessionRequest",
    464: "CreateSessionResponse",
    467: "ActivateSessionRequest",
    470: "ActivateSessionResponse",
    473: "CloseSessionRequest",
    476: "CloseSessionResponse",
    397: "ServiceFault",
    527: "BrowseRequest",
    530: "BrowseResponse",
    631: "ReadRequest",
    634: "ReadResponse",
    673: "WriteRequest",
    676: "WriteResponse",
    712: "CallRequest",
    715: "CallResponse",
    751: "CreateMonitoredItemsRequest",
    787: "CreateSubscriptionRequest",
    826: "PublishRequest",
    829: "PublishResponse",
    554: "TranslateBrowsePathsToNodeIdsRequest",
    488: "AddNodesRequest",
    500: "DeleteNodesRequest",
    700: "HistoryReadRequest",
}
IDENTITY_TOKENS = {321: "Anonymous", 324: "UserName", 327: "X509", 940: "IssuedToken"}
MODES = {1: "None", 2: "Sign", 3: "SignAndEncrypt"}
MAX_CHUNK = 1 << 24
_TYPES = {b"HEL", b"ACK", b"OPN", b"MSG", b"CLO", b"ERR", b"RHE"}


class _Short(Exception):
    pass


@dataclass(slots=True)
class OpcUaRecord:
    """One OPC UA message (chunk) of interest."""

    ts: float
    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    msg_type: str
    from_client: bool
    service: str | None = None
    endpoint_url: str | None = None
    security_policy: str | None = None
    security_mode: str | None = None
    identity: str | None = None
    user: str | None = None
    session_name: str | None = None
    nodes: list[str] | None = None
    values: list[Any] | None = None
    methods: list[str] | None = None
    status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    proto = "opcua"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        d = {k: getattr(self, k) for k in self.__slots__}
        d["proto"] = "opcua"
        return d


class _R:
    __slots__ = ("b", "p")

    def __init__(self, b: bytes, p: int = 0) -> None:
        self.b, self.p = b, p

    def take(self, n: int) -> bytes:
        if n < 0 or self.p + n > len(self.b):
            raise _Short
        self.p += n
        return self.b[self.p - n : self.p]

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def i32(self) -> int:
        return int(struct.unpack("<i", self.take(4))[0])

    def blob(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.take(n)

    def text(self) -> str | None:
        b = self.blob()
        return None if b is None else b.decode("utf-8", "replace")

    def node(self) -> tuple[int, int | str]:
        ident: int | str
        enc = self.u8()
        kind = enc & 0x3F
        if kind == 0:
            ns, ident = 0, self.u8()
        elif kind == 1:
            ns, ident = self.u8(), self.u16()
        elif kind == 2:
            ns, ident = self.u16(), self.u32()
        elif kind == 3:
            ns, s = self.u16(), self.text()
            ident = s or ""
        elif kind == 4:
            ns, ident = self.u16(), self.take(16).hex()
        elif kind == 5:
            ns, b = self.u16(), self.blob()
            ident = (b or b"").hex()
        else:
            raise _Short
        if enc & 0x80:
            self.text()
        if enc & 0x40:
            self.u32()
        return ns, ident

    def extension(self) -> tuple[tuple[int, int | str], bytes | None]:
        type_id = self.node()
        enc = self.u8()
        body = self.blob() if enc in (1, 2) else None
        return type_id, body

    def request_header(self) -> None:
        self.node()  # authentication token
        self.take(8)  # timestamp
        self.take(8)  # request handle, return diagnostics
        self.text()  # audit entry id
        self.take(4)  # timeout hint
        self.extension()

    def array(self) -> int:
        n = self.i32()
        if n > 100000:
            raise _Short
        return max(n, 0)

    def variant(self) -> Any:
        mask = self.u8()
        vtype = mask & 0x3F
        if mask & 0x80:  # arrays: count only
            n = self.array()
            vals = [self._scalar(vtype) for _ in range(n)]
            if mask & 0x40:
                for _ in range(self.array()):
                    self.i32()
            return vals
        return self._scalar(vtype)

    def _scalar(self, vtype: int) -> Any:
        fmt = {
            1: "<?",
            2: "<b",
            3: "<B",
            4: "<h",
            5: "<H",
            6: "<i",
            7: "<I",
            8: "<q",
            9: "<Q",
            10: "<f",
            11: "<d",
            13: "<q",
        }.get(vtype)
        if fmt:
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        if vtype in (12, 15):
            return self.text()
        if vtype == 0:
            return None
        raise _Short  # structured values are not followed


def node_str(node: tuple[int, int | str]) -> str:
    """A node id in the usual text form (``ns=2;i=5``, ``ns=2;s=Name``)."""
    ns, ident = node
    kind = "i" if isinstance(ident, int) else "s"
    return f"ns={ns};{kind}={ident}" if ns else f"{kind}={ident}"


def policy_name(uri: str | None) -> str | None:
    """The short name of a security policy URI (``...#Basic256Sha256`` -> ``Basic256Sha256``)."""
    return None if uri is None else uri.rsplit("#", 1)[-1]


class OpcUaSession:
    """OPC UA state of one TCP connection: its channel's policy and mode."""

    __slots__ = ("anomalies", "mode", "orig", "policy", "resp", "stats", "uid")

    def __init__(self, uid: str, orig: tuple[str, int], resp: tuple[str, int], stats: Stats) -> None:
        self.uid, self.orig, self.resp, self.stats = uid, orig, resp, stats
        self.policy: str | None = None
        self.mode: str | None = None
        self.anomalies: list[dict[str, Any]] = []

    def feed(self, buf: bytearray, from_orig: bool, ts: float, out: list[Any]) -> None:
        """Consume whole chunks from one direction's stream."""
        pos, n = 0, len(buf)
        while n - pos >= 8:
            mtype = bytes(buf[pos : pos + 3])
            size = int.from_bytes(buf[pos + 4 : pos + 8], "little")
            if mtype not in _TYPES or size < 8 or size > MAX_CHUNK:
                self.stats.skip("opcua.malformed")
                self.anomalies.append(
                    {
                        "kind": "opcua.malformed",
                        "ts": ts,
                        "from_orig": from_orig,
                        "bytes": bytes(buf[pos : pos + 16]).hex(),
                    }
                )
                pos = n
                break
            if n - pos < size:
                break
            chunk = bytes(buf[pos : pos + size])
            pos += size
            self.stats.count("opcua.chunks")
            try:
                rec = self._chunk(ts, chunk, from_orig)
            except _Short:
                self.stats.skip("opcua.truncated_message")
                continue
            if rec is not None:
                out.append(rec)
        if pos:
            del buf[:pos]

    def _rec(self, ts: float, mtype: str, from_orig: bool) -> OpcUaRecord:
        o, r = self.orig, self.resp
        return OpcUaRecord(
            ts,
            self.uid,
            o[0],
            o[1],
            r[0],
            r[1],
            mtype,
            from_orig,
            security_policy=self.policy,
            security_mode=self.mode,
        )

    def _chunk(self, ts: float, chunk: bytes, from_orig: bool) -> OpcUaRecord | None:
        mtype = chunk[:3].decode()
        rd = _R(chunk, 8)
        if mtype == "HEL":
            rec = self._rec(ts, mtype, from_orig)
            rd.take(20)
            rec.endpoint_url = rd.text()
            return rec
        if mtype == "ERR":
            rec = self._rec(ts, mtype, from_orig)
            rec.status = rd.u32()
            rec.extra["reason"] = rd.text()
            return rec
        if mtype == "OPN":
            rd.u32()  # secure channel id
            uri = rd.text()
            rd.blob()  # sender certificate
            rd.blob()  # receiver thumbprint
            self.policy = policy_name(uri)
            rec = self._rec(ts, mtype, from_orig)
            rec.extra["policy_uri"] = uri
            if self.policy == "None":
                rd.take(8)  # sequence header
                type_id = rd.node()
                rec.service = SERVICES.get(int(type_id[1]) if isinstance(type_id[1], int) else -1)
                if type_id[1] == 446:
                    rd.request_header()
                    rd.u32()  # client protocol version
                    rec.extra["request_type"] = "Issue" if rd.u32() == 0 else "Renew"
                    self.mode = MODES.get(rd.u32(), "Invalid")
                    rec.security_mode = self.mode
            return rec
        if mtype == "CLO":
            return self._rec(ts, mtype, from_orig)
        if mtype != "MSG":
            return None
        rd.take(8)  # channel id, token id
        if self.mode == "SignAndEncrypt":
            rec = self._rec(ts, mtype, from_orig)
            rec.extra["encrypted"] = True
            return rec
        rd.take(8)  # sequence number, request id
        type_id = rd.node()
        tid = type_id[1] if isinstance(type_id[1], int) and type_id[0] == 0 else -1
        service = SERVICES.get(tid)
        if service is None:
            return None
        rec = self._rec(ts, mtype, from_orig)
        rec.service = service
        if chunk[3:4] != b"F":
            rec.extra["chunked"] = True
            return rec
        if tid == 461:
            rd.request_header()
            rec.extra["application_uri"] = rd.text()
            rd.text()  # product uri
            mask = rd.u8()  # application name (LocalizedText)
            if mask & 1:
                rd.text()
            if mask & 2:
                rec.extra["application_name"] = rd.text()
            rd.u32()
            rd.text()
            rd.text()
            for _ in range(rd.array()):
                rd.text()
            rd.text()  # server uri
            rec.endpoint_url = rd.text()
            rec.session_name = rd.text()
        elif tid == 467:
            rd.request_header()
            rd.text()
            rd.blob()  # client signature
            for _ in range(rd.array()):
                rd.blob()
                rd.blob()
            for _ in range(rd.array()):
                rd.text()
            tok, body = rd.extension()
            rec.identity = IDENTITY_TOKENS.get(int(tok[1]) if isinstance(tok[1], int) else -1, "Unknown")
            if rec.identity == "UserName" and body:
                br = _R(body)
                br.text()  # policy id
                rec.user = br.text()
        elif tid == 673:
            rd.request_header()
            nodes, values = [], []
            for _ in range(rd.array()):
                nodes.append(node_str(rd.node()))
                rd.u32()  # attribute id
                rd.text()  # index range
                mask = rd.u8()  # DataValue
                values.append(rd.variant() if mask & 1 else None)
                if mask & 2:
                    rd.u32()
                for bit, size in ((4, 8), (16, 2), (8, 8), (32, 2)):
                    if mask & bit:
                        rd.take(size)
            rec.nodes, rec.values = nodes, values
        elif tid == 712:
            rd.request_header()
            nodes, methods, values = [], [], []
            for _ in range(rd.array()):
                nodes.append(node_str(rd.node()))
                methods.append(node_str(rd.node()))
                values.append([rd.variant() for _ in range(rd.array())])
            rec.nodes, rec.methods, rec.values = nodes, methods, values
        elif tid == 397:
            rd.take(8 + 4)  # response header: timestamp, request handle
            rec.status = rd.u32()
        return rec

    def close(self, out: list[Any]) -> None:
        """Nothing is pending in OPC UA."""
