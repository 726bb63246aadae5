"""Packet sources: pcap and pcapng files, and a live AF_PACKET socket; link/IP/TCP parsing.

The file readers are written here rather than taken from dpkt because they must survive
corrupt files: a record or block with an impossible length is counted and the reader scans
forward for the next plausible one instead of stopping (dpkt's readers stop at the first bad
header, and its pcapng reader knows one interface only). Link, IP and TCP headers are read
with ``struct`` offsets for speed; ``tests/security/test_ids_capture.py`` cross-checks them
against dpkt on the reference capture. Nothing here raises on bad input: every dropped packet
is counted in :class:`~gongyun.security.ids.stats.Stats` with its reason.
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gongyun.security.ids.stats import Stats

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_IPV4, LINK_IPV6, LINK_SLL2 = (
    0,
    1,
    101,
    108,
    113,
    228,
    229,
    276,
)
MAX_SNAP = 262144
_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_KNOWN = {1, 2, 3, 4, 5, 6, 7, 0x0A0D0D0A, 0x0BAD, 0x0A}

Frame = tuple[float, int, bytes]  # timestamp, link type, frame bytes


def _open(path: str | Path) -> bytes | mmap.mmap:
    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return b""


def read_capture(path: str | Path, stats: Stats) -> Iterator[Frame]:
    """Frames of a pcap or pcapng file; corrupt parts are skipped and counted, never raised."""
    data = _open(path)
    yield from read_capture_bytes(data, stats)


def read_capture_bytes(data: bytes | mmap.mmap, stats: Stats) -> Iterator[Frame]:
    """Frames of a pcap or pcapng image in memory."""
    head = bytes(data[:4])
    if head in _PCAP_MAGIC:
        yield from _read_pcap(data, stats)
    elif len(head) == 4 and struct.unpack("<I", head)[0] == _PCAPNG_SHB:
        yield from _read_pcapng(data, stats)
    else:
        stats.skip("file.not_a_capture")


def _read_pcap(data: bytes | mmap.mmap, stats: Stats) -> Iterator[Frame]:
    if len(data) < 24:
        stats.skip("pcap.truncated_header")
        return
    endian, unit = _PCAP_MAGIC[bytes(data[:4])]
    hdr = struct.Struct(endian + "IIII")
    snaplen, linktype = struct.unpack_from(endian + "II", data, 16)
    linktype &= 0x0FFFFFFF
    limit = max(snaplen, 65535) if 0 < snaplen <= MAX_SNAP else MAX_SNAP
    off, end = 24, len(data)
    last_sec = -1
    unpack = hdr.unpack_from
    while off < end:
        if end - off < 16:
            stats.skip("pcap.truncated_record")
            return
        sec, frac, caplen, origlen = unpack(data, off)
        if caplen > limit or origlen < caplen or (last_sec >= 0 and abs(sec - last_sec) > 86400 * 365):
            stats.skip("pcap.corrupt_record")
            nxt = _pcap_resync(data, off + 1, unpack, limit, last_sec)
            if nxt < 0:
                return
            off = nxt
            continue
        if off + 16 + caplen > end:
            stats.skip("pcap.truncated_record")
            return
        last_sec = sec
        yield sec + frac * unit, linktype, bytes(data[off + 16 : off + 16 + caplen])
        off += 16 + caplen


def _pcap_resync(data: bytes | mmap.mmap, off: int, unpack: object, limit: int, last_sec: int) -> int:
    """The next offset that looks like a record header followed by another (or the end)."""
    end = len(data)
    u = unpack  # struct.Struct.unpack_from
    for pos in range(off, min(end - 16, off + 4 * MAX_SNAP)):
        sec, frac, caplen, origlen = u(data, pos)  # type: ignore[operator]
        if caplen > limit or origlen < caplen or caplen < 14 or frac >= 1_000_000_000:
            continue
        if last_sec >= 0 and abs(sec - last_sec) > 3600:
            continue
        nxt = pos + 16 + caplen
        if nxt == end:
            return pos
        if nxt + 16 <= end:
            s2, _, c2, o2 = u(data, nxt)  # type: ignore[operator]
            if c2 <= limit and o2 >= c2 and abs(s2 - sec) <= 3600:
                return pos
    return -1


def _read_pcapng(data: bytes | mmap.mmap, stats: Stats) -> Iterator[Frame]:
    off, end = 0, len(data)
    endian = "<"
    links: list[tuple[int, float]] = []  # per interface: link type, seconds per tick
    while off < end:
        if end - off < 12:
            stats.skip("pcapng.truncated_block")
            return
        btype, blen = struct.unpack_from(endian + "II", data, off)
        if btype == _PCAPNG_SHB:
            bom = bytes(data[off + 8 : off + 12])
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                stats.skip("pcapng.bad_byte_order")
                endian = "<"
                off = _pcapng_resync(data, off + 4, endian)
                if off < 0:
                    return
                continue
            blen = struct.unpack_from(endian + "I", data, off + 4)[0]
            links = []
        if blen < 12 or blen % 4 or off + blen > end:
            stats.skip(
                "pcapng.truncated_block"
                if off + blen > end and blen >= 12 and not blen % 4
                else "pcapng.corrupt_block"
            )
            off = _pcapng_resync(data, off + 4, endian)
            if off < 0:
                return
            continue
        body = off + 8
        if btype == 1 and blen >= 20:  # interface description
            link = struct.unpack_from(endian + "H", data, body)[0]
            links.append((link, _tsresol(data, body + 8, off + blen - 4, endian)))
        elif btype == 6 and blen >= 32:  # enhanced packet
            ifc, hi, lo, caplen, _orig = struct.unpack_from(endian + "IIIII", data, body)
            if ifc >= len(links) or 28 + caplen > blen:
                stats.skip("pcapng.bad_packet_block")
            else:
                link, tick = links[ifc]
                yield ((hi << 32) | lo) * tick, link, bytes(data[body + 20 : body + 20 + caplen])
        elif btype == 3 and blen >= 16:  # simple packet
            if not links:
                stats.skip("pcapng.bad_packet_block")
            else:
                origlen = struct.unpack_from(endian + "I", data, body)[0]
                n = min(origlen, blen - 16)
                yield 0.0, links[0][0], bytes(data[body + 4 : body + 4 + n])
        elif btype == 2 and blen >= 32:  # obsolete packet block
            ifc, _drops, hi, lo, caplen, _orig = struct.unpack_from(endian + "HHIIII", data, body)
            if ifc >= len(links) or 28 + caplen > blen:
                stats.skip("pcapng.bad_packet_block")
            else:
                link, tick = links[ifc]
                yield ((hi << 32) | lo) * tick, link, bytes(data[body + 20 : body + 20 + caplen])
        off += blen


def _tsresol(data: bytes | mmap.mmap, off: int, end: int, endian: str) -> float:
    """Seconds per timestamp tick from an interface block's options (default microseconds)."""
    while off + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", data, off)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = data[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        off += 4 + ((length + 3) & ~3)
    return 1e-6


def _pcapng_resync(data: bytes | mmap.mmap, off: int, endian: str) -> int:
    """The next 4-aligned offset holding a known block type whose trailing length matches."""
    end = len(data)
    off = (off + 3) & ~3
    while off + 12 <= end:
        btype, blen = struct.unpack_from(endian + "II", data, off)
        plausible = btype in _PCAPNG_KNOWN and 12 <= blen <= MAX_SNAP + 64 and not blen % 4
        if (
            plausible
            and off + blen <= end
            and struct.unpack_from(endian + "I", data, off + blen - 4)[0] == blen
        ):
            return off
        off += 4
    return -1


@dataclass(slots=True)
class Segment:
    """A TCP segment: addresses as packed bytes (16 for IPv6), ports, seq, flags, payload."""

    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    flags: int
    payload: bytes


_ETH_IPV4, _ETH_IPV6, _ETH_VLAN, _ETH_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8
_u16 = struct.Struct("!H").unpack_from
_tcp = struct.Struct("!HHI").unpack_from


def network_offset(link: int, frame: bytes) -> tuple[int, int]:
    """(offset of the IP header, IP version 4/6) for a frame, or (-1, reason index) if none."""
    if link == LINK_ETHERNET:
        if len(frame) < 14:
            return -1, 0
        et, off = _u16(frame, 12)[0], 14
        while et in (_ETH_VLAN, _ETH_QINQ) and len(frame) >= off + 4:
            et, off = _u16(frame, off + 2)[0], off + 4
    elif link in (LINK_NULL, LINK_LOOP):
        if len(frame) < 4:
            return -1, 0
        fam = frame[0] if frame[0] else frame[3]
        return (4, 4) if fam == 2 else (4, 6) if fam in (10, 24, 28, 30) else (-1, 1)
    elif link == LINK_SLL:
        if len(frame) < 16:
            return -1, 0
        et, off = _u16(frame, 14)[0], 16
    elif link == LINK_SLL2:
        if len(frame) < 20:
            return -1, 0
        et, off = _u16(frame, 0)[0], 20
    elif link in (LINK_RAW, LINK_IPV4, LINK_IPV6):
        if not frame:
            return -1, 0
        v = frame[0] >> 4
        return (0, v) if v in (4, 6) else (-1, 1)
    else:
        return -1, 2
    if et == _ETH_IPV4:
        return off, 4
    if et == _ETH_IPV6:
        return off, 6
    return -1, 1


_L2_REASONS = ("link.truncated", "link.not_ip", "link.unsupported")


def parse_tcp(link: int, frame: bytes, stats: Stats) -> Segment | None:
    """The TCP segment in a frame, or None (counted: not TCP, truncated, fragment ...)."""
    off, ver = network_offset(link, frame)
    if off < 0:
        stats.skip(_L2_REASONS[ver])
        return None
    if ver == 4:
        if len(frame) < off + 20:
            stats.skip("ip.truncated")
            return None
        ihl = (frame[off] & 0x0F) * 4
        total = _u16(frame, off + 2)[0]
        if ihl < 20 or total < ihl:
            stats.skip("ip.bad_header")
            return None
        if frame[off + 9] != 6:
            stats.count("ignored.ip_not_tcp")  # not monitored: no error
            return None
        if _u16(frame, off + 6)[0] & 0x3FFF:  # more-fragments flag or an offset
            stats.skip("ip.fragment")
            return None
        src, dst = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
        t = off + ihl
        end = min(len(frame), off + total)
    else:
        if len(frame) < off + 40:
            stats.skip("ip.truncated")
            return None
        if frame[off + 6] != 6:
            stats.count("ignored.ip_not_tcp")  # extension headers are not followed
            return None
        src, dst = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
        t = off + 40
        end = min(len(frame), t + _u16(frame, off + 4)[0])
    if end < t + 20:
        stats.skip("tcp.truncated")
        return None
    sport, dport, seq = _tcp(frame, t)
    doff = (frame[t + 12] >> 4) * 4
    if doff < 20 or t + doff > end:
        stats.skip("tcp.bad_header")
        return None
    return Segment(src, dst, sport, dport, seq, frame[t + 13], frame[t + doff : end])


def addr_str(raw: bytes) -> str:
    """A packed IPv4/IPv6 address as text."""
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


class LiveCapture:
    """Frames from an AF_PACKET socket on one interface (Linux, needs CAP_NET_RAW).

    On loopback every packet is seen twice (outgoing and incoming): outgoing copies are dropped.
    """

    def __init__(self, interface: str = "lo", *, bufsize: int = 8 << 20) -> None:
        self.interface = interface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
        with contextlib.suppress(OSError):  # PACKET_IGNORE_OUTGOING (4.20+): lo's outgoing twins stay out
            self.sock.setsockopt(263, 23, 1)
        self.sock.bind((interface, 0))
        self.sock.settimeout(0.2)

    def frames(self, stop: object = None) -> Iterator[Frame | None]:
        """Frames as they arrive; yields None on each idle timeout so callers can do chores."""
        import time

        recv = self.sock.recvfrom
        while True:
            try:
                data, addr = recv(65535)
            except TimeoutError:
                yield None
                continue
            except OSError:
                return
            if addr[2] == 4:  # PACKET_OUTGOING: its incoming twin follows on loopback
                continue
            yield time.time(), LINK_ETHERNET, data

    def drops(self) -> int:
        """Packets the kernel dropped since the last call (PACKET_STATISTICS)."""
        try:
            raw = self.sock.getsockopt(263, 6, 8)  # SOL_PACKET, PACKET_STATISTICS
        except OSError:
            return 0
        return int(struct.unpack("II", raw)[1])

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def write_pcap(path: str | Path, frames: Iterable[Frame], linktype: int = LINK_ETHERNET) -> int:
    """Write frames to a classic pcap file (microseconds); return how many were written."""
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, MAX_SNAP, linktype))
        rec = struct.Struct("<IIII").pack
        for ts, _, data in frames:
            sec = int(ts)
            f.write(rec(sec, round((ts - sec) * 1e6) % 1_000_000, len(data), len(data)))
            f.write(data)
            n += 1
    return n
