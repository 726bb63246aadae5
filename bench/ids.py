"""bench-ids: decode a >= 1 M packet capture of the demo's Modbus traffic, beside tshark, and the
live sensor's packets/s on loopback before it drops any.

1. Records the demo pump's traffic on loopback (a gateway-like client polling as fast as it can).
2. Replays it into a large capture: each copy on a new client port (its own TCP connections),
   shifted in time, until ``--packets`` frames.
3. Decodes the capture with the sensor's decoder (packets/s, records), then runs
   ``tshark -r FILE -Y modbus -T fields ...`` on the same file in the same run.
4. Injects frames on ``lo`` at rising rates with a sensor in another process, and reports the
   highest rate at which the kernel dropped nothing for it.

The last line is the summary with the ratio (decoder packets/s over tshark packets/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gongyun.security.ids.capture import LiveCapture, parse_tcp, read_capture, write_pcap
from gongyun.security.ids.decoder import Decoder
from gongyun.security.ids.modbus import ModbusRecord
from gongyun.security.ids.stats import Stats

Frame = tuple[float, int, bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _poll(port: int, seconds: float) -> int:
    from pymodbus.client import AsyncModbusTcpClient

    from gongyun.sim.pump import PumpServer

    pump = PumpServer(port=port, hosts=("127.0.0.1",))
    await pump.start()
    n = 0
    try:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await client.read_input_registers(0, count=24, device_id=1)
            await client.read_holding_registers(0, count=2, device_id=1)
            await client.read_coils(0, count=1, device_id=1)
            await client.read_discrete_inputs(0, count=2, device_id=1)
            n += 4
            if n % 400 == 0:
                await client.write_register(0, 1000 + n % 500, device_id=1)
        client.close()
        await asyncio.sleep(0.2)
    finally:
        await pump.stop()
    return n


def record_seed(seconds: float) -> tuple[list[Frame], int]:
    """Frames of the pump's traffic captured on lo, and the server port."""
    port = _free_port()
    cap = LiveCapture("lo")
    frames: list[Frame] = []
    stop = threading.Event()
    stats = Stats()

    def run() -> None:
        for item in cap.frames():
            if item is not None:
                seg = parse_tcp(item[1], item[2], stats)
                if seg is not None and port in (seg.sport, seg.dport):
                    frames.append(item)
            if stop.is_set():
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    asyncio.run(_poll(port, seconds))
    time.sleep(0.3)
    stop.set()
    t.join(2)
    cap.close()
    return frames, port


def expand(seed: list[Frame], port: int, want: int) -> list[Frame]:
    """Copies of the seed, each with its own client port and later timestamps, to ``want`` frames."""
    span = (seed[-1][0] - seed[0][0]) + 0.01
    out: list[Frame] = []
    copy = 0
    while len(out) < want:
        client = 10000 + (copy * 7) % 50000
        shift = copy * span
        for ts, link, data in seed:
            ihl = (data[14] & 0x0F) * 4
            t = 14 + ihl
            sport = struct.unpack_from("!H", data, t)[0]
            b = bytearray(data)
            if sport == port:
                struct.pack_into("!H", b, t + 2, client)
            else:
                struct.pack_into("!H", b, t, client)
            out.append((ts + shift, link, bytes(b)))
            if len(out) >= want:
                break
        copy += 1
    return out


def decode(path: Path, port: int) -> tuple[float, int, int]:
    """(seconds, packets, Modbus records) decoding the file."""
    stats = Stats()
    dec = Decoder({port: "modbus"}, stats)
    out: list[Any] = []
    records = 0
    t0 = time.perf_counter()
    for ts, link, data in read_capture(path, stats):
        dec.frame(ts, link, data, out)
        if out:
            records += sum(1 for r in out if isinstance(r, ModbusRecord))
            out.clear()
    dec.flush(out)
    records += sum(1 for r in out if isinstance(r, ModbusRecord))
    return time.perf_counter() - t0, stats.counts["packets"], records


def tshark(path: Path, port: int) -> tuple[float, int] | None:
    """(seconds, Modbus PDUs) for tshark's fields output on the same file."""
    if shutil.which("tshark") is None:
        return None
    args = [
        "tshark",
        "-r",
        str(path),
        "-o",
        f"mbtcp.tcp.port:{port}",
        "-Y",
        "modbus",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "mbtcp.trans_id",
        "-e",
        "mbtcp.unit_id",
        "-e",
        "modbus.func_code",
        "-e",
        "modbus.reference_num",
        "-e",
        "modbus.word_cnt",
        "-e",
        "modbus.exception_code",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = sum(1 for _ in proc.stdout)
    proc.wait()
    return time.perf_counter() - t0, lines


def _live_sensor(port: int, seconds: float, q: Any) -> None:
    from gongyun.security.ids.sensor import Sensor, SensorConfig

    s = Sensor(SensorConfig(name="bench", tenant="bench", ship_records=False, heartbeat_s=3600))
    s.decoder.ports = {port: "modbus"}
    cap = LiveCapture("lo", bufsize=4 << 20)
    cap.drops()  # reset the kernel counters
    q.put("ready")
    hard_end = time.monotonic() + seconds + 60
    idle_since: float | None = None
    out: list[Any] = []
    for item in cap.frames():  # until 1 s without frames after the injection, so the backlog is done
        now = time.monotonic()
        if item is None:
            idle_since = idle_since or now
            if now - idle_since > 1.0 and now > hard_end - 60 - seconds + 1.0:
                break
        else:
            idle_since = None
            s.decoder.frame(item[0], item[1], item[2], out)
            if out:
                s.handle(out)
                out = []
        if now > hard_end:
            break
    c = s.stats.counts
    monitored = c["packets"] - c["ignored.tcp_other_port"] - c["ignored.ip_not_tcp"]
    q.put({"packets": monitored, "records": c["modbus.messages"], "drops": cap.drops()})
    cap.close()


def live_rate(frames: list[Frame], port: int, rate: int, seconds: float) -> dict[str, Any]:
    """Inject frames on lo at ``rate`` per second for ``seconds``; what the sensor saw and dropped."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_live_sensor, args=(port, seconds, q))
    proc.start()
    q.get(timeout=30)
    total = int(rate * seconds)
    frames = expand(frames, port, total)  # distinct connections, as a real plant's traffic would be
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind(("lo", 0))
    sent, t0 = 0, time.perf_counter()
    batch = max(rate // 100, 1)
    while sent < total:
        for _ in range(min(batch, total - sent)):
            tx.send(frames[sent][2])
            sent += 1
        ahead = sent / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.perf_counter() - t0
    tx.close()
    result: dict[str, Any] = q.get(timeout=120)
    proc.join(10)
    result.update(rate=rate, sent=sent, achieved=sent / elapsed)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed-seconds", type=float, default=4.0)
    ap.add_argument("--live-seconds", type=float, default=2.0)
    ap.add_argument("--rates", default="2000,5000,10000,20000,50000,100000")
    ap.add_argument("--out", type=Path, default=Path("var/bench-ids"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seed, port = record_seed(args.seed_seconds)
    print(f"seed: {len(seed)} frames of the demo pump's traffic recorded on lo (port {port})", flush=True)
    frames = expand(seed, port, args.packets)
    pcap = args.out / "modbus-replay.pcap"
    write_pcap(pcap, frames)
    print(f"capture: {len(frames)} frames, {pcap.stat().st_size / 1e6:.0f} MB at {pcap}", flush=True)
    del frames
    secs, packets, records = decode(pcap, port)
    ours = packets / secs
    print(f"gongyun decoder: {packets} packets in {secs:.2f} s = {ours:,.0f} packets/s, {records} records")
    ts = tshark(pcap, port)
    theirs = None
    if ts is None:
        print("tshark: not installed (apt-get install -y tshark)")
    else:
        theirs = packets / ts[0]
        print(f"tshark -Y modbus -T fields: {ts[1]} Modbus PDUs in {ts[0]:.2f} s = {theirs:,.0f} packets/s")
    live_best, live = 0, []
    for rate in (int(r) for r in args.rates.split(",")):
        res = live_rate(seed, port, rate, args.live_seconds)
        live.append(res)
        ok = res["drops"] == 0 and res["packets"] >= res["sent"] * 0.99
        print(
            f"live sensor on lo at {rate:,}/s (achieved {res['achieved']:,.0f}/s): saw {res['packets']}, "
            f"kernel drops {res['drops']}{'' if ok else '  <- loses packets'}",
            flush=True,
        )
        if not ok:
            break
        live_best = int(res["achieved"])
    summary = {
        "packets": packets,
        "decoder_pps": ours,
        "tshark_pps": theirs,
        "records": records,
        "ratio": None if theirs is None else ours / theirs,
        "live_pps_without_drops": live_best,
        "live": live,
    }
    (args.out / "result.json").write_text(json.dumps(summary, indent=1))
    if theirs is None:
        versus = "tshark not run (not installed), no ratio"
    else:
        versus = (
            f"tshark {theirs:,.0f} pkt/s, ratio {ours / theirs:.2f}x "
            f"({'faster' if ours > theirs else 'slower'} than tshark)"
        )
    print(
        f"bench-ids: {packets} packets, decoder {ours:,.0f} pkt/s, {versus}, "
        f"live sensor {live_best:,} pkt/s without drops"
    )


if __name__ == "__main__":
    sys.exit(main())
