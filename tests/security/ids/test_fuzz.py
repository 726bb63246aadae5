"""Robustness: truncated, oversize and garbage frames, corrupt captures never crash the decoder."""

from __future__ import annotations

import random
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongyun.security.ids.capture import read_capture_bytes
from gongyun.security.ids.decoder import Decoder
from gongyun.security.ids.modbus import ModbusRecord
from gongyun.security.ids.stats import Stats

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _frames(ics_dir: Path) -> list[tuple[float, int, bytes]]:
    return list(read_capture_bytes((ics_dir / "modbus_example.pcap").read_bytes(), Stats()))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.randrange(5)
    if op == 0 and b:  # flip bytes
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1:  # truncate
        del b[rng.randrange(len(b) + 1) :]
    elif op == 2:  # oversize: append garbage
        b += rng.randbytes(rng.randint(1, 3000))
    elif op == 3 and len(b) > 54:  # garbage payload behind valid headers
        b[54:] = rng.randbytes(rng.randint(0, 400))
    else:  # zero a span
        i = rng.randrange(len(b) + 1)
        b[i : i + rng.randint(1, 20)] = bytes(min(20, len(b) - i))
    return bytes(b)


def test_mutated_frames_never_crash_and_good_frames_after_still_decode(ics_dir: Path) -> None:
    frames = _frames(ics_dir)
    rng = random.Random(14)
    for _ in range(300):
        stats = Stats()
        dec = Decoder(stats=stats)
        mutated = [
            (ts, link, _mutate(rng, data) if rng.random() < 0.3 else data) for ts, link, data in frames
        ]
        out = dec.frames(mutated)
        assert stats.counts["packets"] == len(frames)
        assert all(hasattr(r, "proto") for r in out)
    # after garbage, a fresh connection decodes normally on the same decoder
    stats = Stats()
    dec = Decoder(stats=stats)
    junk = [(0.0, 1, rng.randbytes(rng.randint(0, 200))) for _ in range(500)]
    out = dec.frames(junk + frames)
    assert len([r for r in out if isinstance(r, ModbusRecord)]) == 26
    assert sum(stats.skips.values()) >= 400  # each junk frame counted with a reason


@FUZZ
@given(payload=st.binary(max_size=600), sport=st.sampled_from([502, 4840, 1883, 5020]))
def test_any_payload_on_a_server_port(payload: bytes, sport: int) -> None:
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 1, 0, 64, 6, 0, b"\x7f\0\0\1", b"\x7f\0\0\2"
    )
    tcp = struct.pack("!HHIIBBHHH", 40000, sport, 1000, 0, 0x50, 0x18, 1024, 0, 0)
    frame = bytes(12) + b"\x08\x00" + ip + tcp + payload
    stats = Stats()
    dec = Decoder(stats=stats)
    out: list[object] = []
    for i in range(3):  # the same bytes again and again, as a stream
        seq_frame = frame[:38] + struct.pack("!I", 1000 + i * len(payload)) + frame[42:]
        dec.frame(float(i), 1, seq_frame, out)
    dec.flush(out)
    assert stats.counts["packets"] == 3


@FUZZ
@given(data=st.binary(max_size=2000))
def test_garbage_capture_files(data: bytes) -> None:
    for head in (
        b"",
        b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8) + b"\xff\xff\x00\x00\x01\x00\x00\x00",
        b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a",
    ):
        stats = Stats()
        frames = list(read_capture_bytes(head + data, stats))
        Decoder(stats=stats).frames(frames)


def test_truncated_and_corrupt_pcap_keeps_reading(ics_dir: Path) -> None:
    image = (ics_dir / "modbus_example.pcap").read_bytes()
    for cut in range(0, len(image), 97):  # truncated anywhere
        stats = Stats()
        frames = list(read_capture_bytes(image[:cut], stats))
        Decoder(stats=stats).frames(frames)
        if 24 < cut < len(image):
            assert stats.skips or len(frames) < 100
    # a record header with an impossible length in the middle: the records after it are still read
    off, n = 24, 0
    while n < 40:
        caplen = struct.unpack_from("<I", image, off + 8)[0]
        off += 16 + caplen
        n += 1
    bad = bytearray(image)
    struct.pack_into("<I", bad, off + 8, 0x7FFFFFFF)
    stats = Stats()
    frames = list(read_capture_bytes(bytes(bad), stats))
    assert stats.skips["pcap.corrupt_record"] == 1
    assert 90 <= len(frames) < 100
    recs = [r for r in Decoder(stats=stats).frames(frames) if isinstance(r, ModbusRecord)]
    assert len(recs) >= 20


def test_corrupt_pcapng_block_is_skipped(ics_dir: Path) -> None:
    import io

    import dpkt

    frames = _frames(ics_dir)
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf, linktype=1)
    for ts, _, data in frames:
        w.writepkt(data, ts=ts)
    image = bytearray(buf.getvalue())
    # find the 50th enhanced packet block and break its length
    off, seen = 0, 0
    while off < len(image):
        btype, blen = struct.unpack_from("<II", image, off)
        if btype == 6:
            seen += 1
            if seen == 50:
                struct.pack_into("<I", image, off + 4, 0xFFFFFFF0)
                break
        off += blen
    stats = Stats()
    got = list(read_capture_bytes(bytes(image), stats))
    assert stats.skips["pcapng.truncated_block"] + stats.skips["pcapng.corrupt_block"] == 1
    assert len(got) == 99
