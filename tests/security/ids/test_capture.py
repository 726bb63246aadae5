"""Packet sources: pcap/pcapng readers and link/IP/TCP parsing, cross-checked against dpkt."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import dpkt

from gongyun.security.ids.capture import LINK_ETHERNET, parse_tcp, read_capture, read_capture_bytes
from gongyun.security.ids.decoder import Decoder
from gongyun.security.ids.modbus import ModbusRecord
from gongyun.security.ids.stats import Stats


def _to_pcapng(frames: list[tuple[float, int, bytes]]) -> bytes:
    """Write frames as pcapng with dpkt's writer (an independent implementation)."""
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf, linktype=LINK_ETHERNET)
    for ts, _, data in frames:
        w.writepkt(data, ts=ts)
    return buf.getvalue()


def test_tcp_parsing_agrees_with_dpkt(ics_dir: Path) -> None:
    stats = Stats()
    frames = list(read_capture(ics_dir / "modbus_example.pcap", stats))
    with open(ics_dir / "modbus_example.pcap", "rb") as f:
        ref = list(dpkt.pcap.Reader(f))
    assert len(frames) == len(ref) == 100
    for (ts, link, data), (rts, rbuf) in zip(frames, ref, strict=True):
        assert abs(ts - rts) < 1e-6 and data == rbuf
        seg = parse_tcp(link, data, stats)
        tcp = dpkt.ethernet.Ethernet(rbuf).data.data
        assert seg is not None
        assert (seg.sport, seg.dport, seg.seq, seg.flags) == (tcp.sport, tcp.dport, tcp.seq, tcp.flags)
        assert seg.payload == bytes(tcp.data)


def test_pcapng_gives_the_same_records(ics_dir: Path) -> None:
    stats = Stats()
    frames = list(read_capture(ics_dir / "modbus_example.pcap", stats))
    image = _to_pcapng(frames)
    ng_stats = Stats()
    ng_frames = list(read_capture_bytes(image, ng_stats))
    assert [f[2] for f in ng_frames] == [f[2] for f in frames]
    a = [r.zeek_row()[2:] for r in Decoder().frames(frames) if isinstance(r, ModbusRecord)]
    b = [r.zeek_row()[2:] for r in Decoder().frames(ng_frames) if isinstance(r, ModbusRecord)]
    assert len(a) == 26
    assert [x[:11] for x in a] == [x[:11] for x in b]


def test_nanosecond_and_big_endian_pcap() -> None:
    frame = bytes(12) + b"\x08\x00" + bytes(20)
    for magic, endian in ((0xA1B23C4D, ">"), (0xA1B2C3D4, ">")):
        head = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
        rec = struct.pack(endian + "IIII", 10, 500, len(frame), len(frame)) + frame
        stats = Stats()
        [(ts, link, data)] = list(read_capture_bytes(head + rec, stats))
        assert link == 1 and data == frame
        assert ts == 10 + (500e-9 if magic == 0xA1B23C4D else 500e-6)
