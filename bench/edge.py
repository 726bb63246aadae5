"""bench/edge: samples/s through the gateway, and the store-and-forward replay rate, beside a bare subscriber.

In one run, against the Mosquitto at 127.0.0.1:1883:

* modbus  - the pump simulator polled as fast as the driver can (profile poll interval 1 ms), samples
            counted where the platform receives them (gateway -> buffer -> Sparkplug uplink -> host);
* opcua   - the CNC simulator (updating every 10 ms) polled as fast as possible, same path;
* replay  - a buffer filled while the primary host was offline, drained when it comes online;
* bare    - reference: ``mosquitto_pub -l`` sends one small message per line (QoS 0) and a bare aiomqtt
            subscriber counts what it receives.

    .venv/bin/python bench/edge.py [--seconds 5] [--replay 50000] [--bare 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gongyun.core.types import Sample, TagRef  # noqa: E402
from gongyun.edge.config import DeviceConfig, EdgeConfig, GatewaySection, UplinkSection  # noqa: E402
from gongyun.edge.profiles import Profile, load_profile  # noqa: E402
from gongyun.edge.receiver import UplinkReceiver  # noqa: E402
from gongyun.edge.runtime import Gateway  # noqa: E402
from gongyun.sim.cnc import CncServer  # noqa: E402
from gongyun.sim.pump import PumpServer  # noqa: E402

HOST, PORT = "127.0.0.1", 1883
PROFILES = ROOT / "src" / "gongyun" / "sim" / "profiles"
logging.basicConfig(level=logging.ERROR)
for noisy in ("asyncua", "pymodbus", "gongyun"):
    logging.getLogger(noisy).setLevel(logging.CRITICAL)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fast(profile: Profile, poll: float, mode: str | None = None) -> Profile:
    """The same profile polled every ``poll`` seconds (and every OPC UA tag polled when ``mode``)."""
    header = profile.profile.model_copy(update={"poll_interval": poll})
    tags = [t.model_copy(update={"mode": mode} if mode else {}) for t in profile.tags]
    return profile.model_copy(update={"profile": header, "tags": tags})


def gateway(tmp: Path, group: str, devices: list[DeviceConfig], profiles: dict[str, Profile]) -> Gateway:
    config = EdgeConfig(
        gateway=GatewaySection(id="bench", buffer=tmp / f"{group}.db"),
        uplink=UplinkSection(
            url=f"mqtt://{HOST}:{PORT}", group=group, primary_host=f"host-{group}", confirm=True
        ),
        devices=devices,
    )
    return Gateway(config, profiles)


async def through_gateway(
    tmp: Path, device: DeviceConfig, profile: Profile, seconds: float
) -> dict[str, float]:
    """Samples/s received by the platform host from one device, end to end."""
    group = f"b{uuid.uuid4().hex[:8]}"
    got: list[int] = [0]
    receiver = UplinkReceiver(
        (HOST, PORT), group, lambda k, s: got.__setitem__(0, got[0] + len(s)), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    gw = gateway(tmp, group, [device], {device.name: profile})
    await gw.start()
    try:
        await asyncio.sleep(2.0)  # connect, subscribe, birth
        start_count, start, reads0 = got[0], time.perf_counter(), gw.drivers[device.name].status.reads
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - start
        reads = gw.drivers[device.name].status.reads - reads0
        return {"samples_per_s": (got[0] - start_count) / elapsed, "reads_per_s": reads / elapsed}
    finally:
        await gw.stop()
        rx.cancel()


async def replay(tmp: Path, count: int) -> dict[str, float]:
    """Fill the buffer while the host is offline, then time the drain once it is online."""
    group = f"b{uuid.uuid4().hex[:8]}"
    gen = tmp / "gen.toml"
    gen.write_text(
        '[profile]\nname = "g"\nprotocol = "mqtt"\n'
        + "".join(f'[[tags]]\nname = "t{i}"\ntopic = "x"\ntype = "float64"\n' for i in range(20))
    )
    gw = gateway(tmp, group, [], {"gen": load_profile(gen)})
    now = datetime.now(UTC)
    for start in range(0, count, 5000):
        gw.buffer.append(
            [
                Sample(TagRef("gen", f"t{i % 20}"), float(i), now)
                for i in range(start, min(count, start + 5000))
            ]
        )
    await gw.start()
    got: list[int] = [0]
    done = asyncio.Event()

    def on_samples(key: str, samples: list[Sample]) -> None:
        got[0] += len(samples)
        if got[0] >= count:
            done.set()

    receiver = UplinkReceiver((HOST, PORT), group, on_samples, host_id=f"host-{group}")
    try:
        await asyncio.sleep(1.0)
        start = time.perf_counter()
        rx = asyncio.create_task(receiver.run())
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
        return {"samples": count, "seconds": elapsed, "samples_per_s": count / elapsed}
    finally:
        await gw.stop()
        rx.cancel()


async def bare(count: int) -> dict[str, float]:
    """Messages/s a bare aiomqtt subscriber receives from ``mosquitto_pub -l`` (QoS 0)."""
    topic = f"bench/bare/{uuid.uuid4().hex[:8]}"
    line = json.dumps({"device": "d", "tag": "t", "value": 1.2345, "ts": 1700000000000}) + "\n"
    received = 0
    first = last = 0.0
    async with aiomqtt.Client(HOST, PORT, max_queued_incoming_messages=0) as client:
        await client.subscribe(topic, qos=0)
        pub = subprocess.Popen(  # noqa: ASYNC220 - started once, fed in one write
            ["mosquitto_pub", "-h", HOST, "-p", str(PORT), "-t", topic, "-q", "0", "-l"],
            stdin=subprocess.PIPE,
        )
        assert pub.stdin is not None
        pub.stdin.write((line * count).encode())
        pub.stdin.close()
        try:
            async with asyncio.timeout(60):
                async for _ in client.messages:
                    received += 1
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    if received >= count:
                        break
        except TimeoutError:
            pass
        pub.wait(10)
    elapsed = max(last - first, 1e-9)
    return {"sent": count, "received": received, "messages_per_s": received / elapsed}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    pump, cnc = PumpServer(port=free_port()), CncServer(port=free_port(), interval=0.01)
    await pump.start()
    await cnc.start()
    try:
        modbus = await through_gateway(
            tmp,
            DeviceConfig(name="pump1", profile=Path("p"), port=pump.port, timeout=1.0),
            fast(load_profile(PROFILES / "pump.toml"), 0.001),
            args.seconds,
        )
        opcua = await through_gateway(
            tmp,
            DeviceConfig(name="cnc1", profile=Path("p"), url=cnc.url),
            fast(load_profile(PROFILES / "cnc.toml"), 0.001, mode="poll"),
            args.seconds,
        )
    finally:
        await pump.stop()
        await cnc.stop()
    drained = await replay(tmp, args.replay)
    reference = await bare(args.bare)
    return {"modbus": modbus, "opcua": opcua, "replay": drained, "bare_subscriber": reference}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--replay", type=int, default=50_000)
    parser.add_argument("--bare", type=int, default=50_000)
    result = asyncio.run(main(parser.parse_args()))
    result["when"] = datetime.now(UTC).isoformat()
    out = ROOT / "bench" / "results" / "edge.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    ref = result["bare_subscriber"]["messages_per_s"]
    print(
        f"edge: modbus {result['modbus']['samples_per_s']:,.0f} samples/s "
        f"({result['modbus']['reads_per_s']:,.0f} block reads/s), "
        f"opcua {result['opcua']['samples_per_s']:,.0f} samples/s, "
        f"replay {result['replay']['samples_per_s']:,.0f} samples/s "
        f"= {result['replay']['samples_per_s'] / ref:.2f} x bare subscriber ({ref:,.0f} msg/s)"
    )
