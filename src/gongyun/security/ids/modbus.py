"""Modbus/TCP: MBAP framing, PDU decoding of every function code, request/response pairing.

Records follow Zeek's ICSNPP ``modbus_detailed`` log: one per request/response pair (paired by
transaction id on the connection), with unit, function, start address, quantity, values,
sub-function, raw data, exception and MEI type. Function codes Zeek does not pair (read
exception status, report server id, comm event counter/log, unknown codes) give one record per
message with ``matched`` unset, exactly as Zeek does. Pure functions and plain classes: no I/O.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

from gongyun.security.ids.stats import Stats

FUNCTIONS: dict[int, str] = {
    1: "READ_COILS",
    2: "READ_DISCRETE_INPUTS",
    3: "READ_HOLDING_REGISTERS",
    4: "READ_INPUT_REGISTERS",
    5: "WRITE_SINGLE_COIL",
    6: "WRITE_SINGLE_REGISTER",
    7: "READ_EXCEPTION_STATUS",
    8: "DIAGNOSTICS",
    11: "GET_COMM_EVENT_COUNTER",
    12: "GET_COMM_EVENT_LOG",
    15: "WRITE_MULTIPLE_COILS",
    16: "WRITE_MULTIPLE_REGISTERS",
    17: "REPORT_SLAVE_ID",
    20: "READ_FILE_RECORD",
    21: "WRITE_FILE_RECORD",
    22: "MASK_WRITE_REGISTER",
    23: "READ_WRITE_MULTIPLE_REGISTERS",
    24: "READ_FIFO_QUEUE",
    43: "ENCAP_INTERFACE_TRANSPORT",
}
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16, 21, 22, 23})
EXCEPTIONS: dict[int, str] = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SLAVE_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SLAVE_DEVICE_BUSY",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}
DIAGNOSTIC_SUBFUNCTIONS: dict[int, str] = {
    0: "Return Query Data",
    1: "Restart Communications Option",
    2: "Return Diagnostic Register",
    3: "Change ASCII Input Delimiter",
    4: "Force Listen Only Mode",
    10: "Clear Counters and Diagnostic Register",
    11: "Return Bus Message Count",
    12: "Return Bus Communication Error Count",
    13: "Return Bus Exception Error Count",
    14: "Return Slave Message Count",
    15: "Return Slave No Response Count",
    16: "Return Slave NAK Count",
    17: "Return Slave Busy Count",
    18: "Return Bus Character Overrun Count",
    20: "Clear Overrun Counter and Flag",
}
MEI_TYPES = {13: "CANopen General Reference", 14: "Read Device Identification"}
DEVICE_ID_OBJECTS = {
    0: "VendorName",
    1: "ProductCode",
    2: "MajorMinorRevision",
    3: "VendorUrl",
    4: "ProductName",
}
UNPAIRED = frozenset({7, 11, 12, 17})  # Zeek logs these request and response separately
LINKED = frozenset({22, 23, 43})  # Zeek writes their details to a separate log, linked by id
MAX_ADU = 260  # MBAP header 7 + PDU 253


def function_name(fc: int) -> str:
    """Zeek's name for a function code (exception bit ignored)."""
    return FUNCTIONS.get(fc & 0x7F, f"unknown-{fc & 0x7F}")


def zeek_escape(data: bytes) -> str:
    """Bytes as Zeek's ASCII writer shows a string: printable ASCII kept, others ``\\xNN``."""
    out = []
    for b in data:
        if 0x20 <= b < 0x7F and b != 0x5C:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


_BITS = [[(b >> i) & 1 for i in range(8)] for b in range(256)]


def _bits(data: bytes) -> list[int]:
    out: list[int] = []
    for byte in data:
        out += _BITS[byte]
    return out


def _regs(data: bytes) -> list[int]:
    n = len(data) // 2
    return list(struct.unpack_from(f">{n}H", data)) if n else []


def _u16(data: bytes, off: int) -> int | None:
    return int.from_bytes(data[off : off + 2], "big") if len(data) >= off + 2 else None


@dataclass(slots=True)
class ModbusRecord:
    """One request/response pair (or one unpaired message), like Zeek's ``modbus_detailed``."""

    ts: float
    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    tid: int
    unit: int
    fc: int
    func: str
    address: int | None = None
    quantity: int | None = None
    request_values: list[int] | None = None
    response_values: list[int] | None = None
    link_id: str | None = None
    matched: bool | None = None
    request_subfunction: str | None = None
    response_subfunction: str | None = None
    request_data: str | None = None
    response_data: str | None = None
    exception: str | None = None
    mei_type: str | None = None
    is_request: bool = True  # for unpaired messages: which side this one is
    resp_ts: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw_request: bytes = b""  # the request PDU (function code onwards): replay detection

    proto = "modbus"

    @property
    def write(self) -> bool:
        """True if the function changes the server's data."""
        return self.fc in WRITE_FUNCTIONS

    def zeek_row(self) -> list[str]:
        """The columns of Zeek's ``modbus_detailed`` log, ``-`` for unset."""

        def s(v: Any) -> str:
            if v is None:
                return "-"
            if isinstance(v, bool):
                return "T" if v else "F"
            if isinstance(v, list):
                return ",".join(str(x) for x in v) if v else "(empty)"
            return str(v)

        return [
            f"{self.ts:.6f}",
            self.uid,
            self.orig_h,
            str(self.orig_p),
            self.resp_h,
            str(self.resp_p),
            str(self.tid),
            str(self.unit),
            self.func,
            s(self.address),
            s(self.quantity),
            s(self.request_values),
            s(self.response_values),
            s(self.link_id),
            s(self.matched),
            s(self.request_subfunction),
            s(self.response_subfunction),
            s(self.request_data),
            s(self.response_data),
            s(self.exception),
            s(self.mei_type),
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (bytes as hex)."""
        d = {k: getattr(self, k) for k in self.__slots__ if k not in ("raw_request",)}
        d["proto"] = "modbus"
        d["raw_request"] = self.raw_request.hex()
        return d


def _decode_request(rec: ModbusRecord, pdu: bytes) -> None:
    """Fill the request side of ``rec`` from a request PDU (function code first)."""
    fc = pdu[0]
    body = pdu[1:]
    if fc in (1, 2, 3, 4):
        rec.address, rec.quantity = _u16(body, 0), _u16(body, 2)
    elif fc == 5:
        rec.address, v = _u16(body, 0), _u16(body, 2)
        rec.quantity = 1
        rec.request_values = None if v is None else [1 if v == 0xFF00 else 0]
        if v not in (0xFF00, 0x0000, None):
            rec.extra["bad_coil_value"] = v
    elif fc == 6:
        rec.address, v = _u16(body, 0), _u16(body, 2)
        rec.quantity = 1
        rec.request_values = None if v is None else [v]
    elif fc == 8:
        sub = _u16(body, 0)
        if sub is not None:
            rec.request_subfunction = DIAGNOSTIC_SUBFUNCTIONS.get(sub, f"unknown-{sub}")
            rec.request_data = zeek_escape(body[2:])
            rec.extra["subfunction"] = sub
    elif fc == 15:
        rec.address, rec.quantity = _u16(body, 0), _u16(body, 2)
        if len(body) >= 5 and rec.quantity is not None:
            rec.request_values = _bits(body[5 : 5 + body[4]])[: rec.quantity]
    elif fc == 16:
        rec.address, rec.quantity = _u16(body, 0), _u16(body, 2)
        if len(body) >= 5:
            rec.request_values = _regs(body[5 : 5 + body[4]])
    elif fc in (20, 21):
        count = body[0] if body else 0
        refs = []
        i = 1
        while i + 7 <= 1 + count and i + 7 <= len(body):
            ref_type, file_no, rec_no, length = (
                body[i],
                _u16(body, i + 1),
                _u16(body, i + 3),
                _u16(body, i + 5),
            )
            refs.append({"type": ref_type, "file": file_no, "record": rec_no, "length": length})
            i += 7 + (2 * (length or 0) if fc == 21 else 0)
        rec.quantity = len(refs)
        rec.extra["references"] = refs
    elif fc == 22:
        rec.address = _u16(body, 0)
        rec.extra["and_mask"], rec.extra["or_mask"] = _u16(body, 2), _u16(body, 4)
    elif fc == 23:
        rec.extra["read_address"], rec.extra["read_quantity"] = _u16(body, 0), _u16(body, 2)
        rec.extra["write_address"], rec.extra["write_quantity"] = _u16(body, 4), _u16(body, 6)
        if len(body) >= 9:
            rec.extra["write_values"] = _regs(body[9 : 9 + body[8]])
    elif fc == 24:
        rec.address = _u16(body, 0)
    elif fc == 43 and body:
        rec.mei_type = MEI_TYPES.get(body[0], f"unknown-{body[0]}")
        rec.extra["mei"] = body[0]
        if body[0] == 14 and len(body) >= 3:
            rec.extra["read_device_id_code"], rec.extra["object_id"] = body[1], body[2]


def _decode_response(rec: ModbusRecord, pdu: bytes) -> None:
    """Fill the response side of ``rec`` from a response PDU."""
    fc = pdu[0]
    body = pdu[1:]
    if fc & 0x80:
        code = body[0] if body else 0
        rec.exception = EXCEPTIONS.get(code, f"unknown-{code}")
        return
    if fc in (1, 2):
        if body:
            bits = _bits(body[1 : 1 + body[0]])
            q = rec.quantity if rec.quantity is not None else len(bits)
            rec.response_values = bits[:q]
            rest = bits[q:]
            rec.response_data = ",".join(str(b) for b in rest) if rest else None
    elif fc in (3, 4):
        if body:
            rec.response_values = _regs(body[1 : 1 + body[0]])
    elif fc == 5:
        v = _u16(body, 2)
        rec.response_values = None if v is None else [1 if v == 0xFF00 else 0]
    elif fc == 6:
        v = _u16(body, 2)
        rec.response_values = None if v is None else [v]
    elif fc == 8:
        sub = _u16(body, 0)
        if sub is not None:
            rec.response_subfunction = DIAGNOSTIC_SUBFUNCTIONS.get(sub, f"unknown-{sub}")
            rec.response_data = zeek_escape(body[2:])
    elif fc == 23:
        if body:
            rec.extra["read_values"] = _regs(body[1 : 1 + body[0]])
    elif fc == 24:
        rec.quantity = _u16(body, 2)
        if rec.quantity is not None:
            rec.extra["fifo_values"] = _regs(body[4 : 4 + 2 * rec.quantity])
    elif fc == 43 and len(body) >= 6 and body[0] == 14:
        objects: dict[str, str] = {}
        n, i = body[5], 6
        for _ in range(n):
            if i + 2 > len(body):
                break
            oid, ln = body[i], body[i + 1]
            objects[DEVICE_ID_OBJECTS.get(oid, f"object-{oid}")] = body[i + 2 : i + 2 + ln].decode("latin-1")
            i += 2 + ln
        rec.extra["device_id"] = objects


_FIXED_REQUEST = {1: 5, 2: 5, 3: 5, 4: 5, 5: 5, 6: 5, 7: 1, 11: 1, 12: 1, 17: 1, 22: 7, 24: 3}


def pdu_problem(pdu: bytes, request: bool) -> str | None:
    """Why a PDU is malformed for its function code (length, byte count, coil value), or None."""
    fc = pdu[0]
    if fc == 0:
        return "function code 0"
    if fc & 0x80:
        return None if len(pdu) == 2 or request else "exception response of wrong length"
    if not request:
        if fc in (1, 2, 3, 4, 23) and (len(pdu) < 2 or len(pdu) != 2 + pdu[1]):
            return "byte count disagrees with length"
        return None
    want = _FIXED_REQUEST.get(fc)
    if want is not None and len(pdu) != want:
        return f"request of {len(pdu)} bytes, expected {want}"
    if fc in (1, 2) and not 1 <= int.from_bytes(pdu[3:5], "big") <= 2000:
        return "quantity out of range"
    if fc in (3, 4) and not 1 <= int.from_bytes(pdu[3:5], "big") <= 125:
        return "quantity out of range"
    if fc == 5 and pdu[3:5] not in (b"\xff\x00", b"\x00\x00"):
        return "coil value neither 0xFF00 nor 0x0000"
    if fc in (15, 16) and (len(pdu) < 6 or len(pdu) != 6 + pdu[5]):
        return "byte count disagrees with length"
    if fc == 16 and len(pdu) >= 6 and pdu[5] != 2 * int.from_bytes(pdu[3:5], "big"):
        return "byte count disagrees with quantity"
    if fc == 23 and (len(pdu) < 10 or len(pdu) != 10 + pdu[9]):
        return "byte count disagrees with length"
    if fc == 8 and len(pdu) < 3:
        return "diagnostics without sub-function"
    return None


def _link_id(uid: str, tid: int, ts: float) -> str:
    return hashlib.blake2b(f"{uid}/{tid}/{ts}".encode(), digest_size=12).hexdigest()[:16]


@dataclass(slots=True)
class _Pending:
    ts: float
    unit: int
    pdu: bytes


class ModbusSession:
    """Modbus state of one TCP connection: frames both directions, pairs by transaction id."""

    __slots__ = ("anomalies", "orig", "pending", "resp", "stats", "uid")

    def __init__(self, uid: str, orig: tuple[str, int], resp: tuple[str, int], stats: Stats) -> None:
        self.uid, self.orig, self.resp, self.stats = uid, orig, resp, stats
        self.pending: dict[int, _Pending] = {}
        self.anomalies: list[dict[str, Any]] = []

    def _record(self, ts: float, tid: int, unit: int, fc: int) -> ModbusRecord:
        o, r = self.orig, self.resp
        return ModbusRecord(ts, self.uid, o[0], o[1], r[0], r[1], tid, unit, fc & 0x7F, function_name(fc))

    def feed(self, buf: bytearray, from_orig: bool, ts: float, out: list[Any]) -> None:
        """Consume whole ADUs from ``buf`` (one direction's stream), appending records to ``out``."""
        pos, n = 0, len(buf)
        while n - pos >= 7:
            tid = (buf[pos] << 8) | buf[pos + 1]
            proto = (buf[pos + 2] << 8) | buf[pos + 3]
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            if proto != 0 or length < 2 or length > MAX_ADU - 6:
                reason = "modbus.not_modbus" if proto != 0 else "modbus.bad_length"
                self.stats.skip(reason)
                self.anomalies.append(
                    {
                        "kind": reason,
                        "ts": ts,
                        "from_orig": from_orig,
                        "length": length,
                        "proto_id": proto,
                        "bytes": bytes(buf[pos : pos + 16]).hex(),
                    }
                )
                pos = n  # resynchronising inside a byte stream is guesswork: drop what is buffered
                break
            if n - pos < 6 + length:
                break
            unit = buf[pos + 6]
            pdu = bytes(buf[pos + 7 : pos + 6 + length])
            pos += 6 + length
            self._message(ts, tid, unit, pdu, from_orig, out)
        if pos:
            del buf[:pos]
        if len(buf) > 4 * MAX_ADU:  # never grow without bound on a stream that never frames
            self.stats.skip("modbus.unframed")
            buf.clear()

    def _message(self, ts: float, tid: int, unit: int, pdu: bytes, from_orig: bool, out: list[Any]) -> None:
        fc = pdu[0]
        self.stats.count("modbus.messages")
        problem = pdu_problem(pdu, from_orig)
        if problem:
            self.stats.skip("modbus.malformed_pdu")
            self.anomalies.append(
                {
                    "kind": "modbus.malformed_pdu",
                    "ts": ts,
                    "from_orig": from_orig,
                    "tid": tid,
                    "unit": unit,
                    "function": fc,
                    "problem": problem,
                    "length": len(pdu),
                }
            )
        base = fc & 0x7F
        try:
            if base in UNPAIRED or base not in FUNCTIONS:
                rec = self._record(ts, tid, unit, fc)
                rec.is_request = from_orig
                if from_orig:
                    rec.raw_request = pdu
                if fc & 0x80 and not from_orig:
                    _decode_response(rec, pdu)
                if base not in FUNCTIONS:
                    rec.extra["unknown_function"] = True
                out.append(rec)
                return
            if from_orig:
                if tid in self.pending:  # a request never answered, then the tid is reused
                    out.append(self._unmatched(tid, self.pending.pop(tid)))
                self.pending[tid] = _Pending(ts, unit, pdu)
                if len(self.pending) > 1024:
                    old = next(iter(self.pending))
                    out.append(self._unmatched(old, self.pending.pop(old)))
                return
            req = self.pending.pop(tid, None)
            if req is None:
                rec = self._record(ts, tid, unit, fc)
                rec.matched = False
                rec.is_request = False
                _decode_response(rec, pdu)
                self.stats.count("modbus.response_without_request")
                out.append(rec)
                return
            rec = self._record(req.ts, tid, req.unit, fc)
            rec.raw_request = req.pdu
            _decode_request(rec, req.pdu)
            _decode_response(rec, pdu)
            rec.matched = True
            rec.resp_ts = ts
            if base in LINKED:
                rec.link_id = _link_id(self.uid, tid, req.ts)
            out.append(rec)
        except (IndexError, ValueError) as exc:  # pragma: no cover - the decoders check lengths
            self.stats.skip(f"modbus.decode_error.{type(exc).__name__}")

    def _unmatched(self, tid: int, req: _Pending) -> ModbusRecord:
        rec = self._record(req.ts, tid, req.unit, req.pdu[0])
        rec.raw_request = req.pdu
        _decode_request(rec, req.pdu)
        rec.matched = False
        return rec

    def close(self, out: list[Any]) -> None:
        """Emit requests still waiting for a response as unmatched."""
        for tid, req in self.pending.items():
            out.append(self._unmatched(tid, req))
        self.pending.clear()
