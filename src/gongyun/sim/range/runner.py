"""The cyber range: scripted attack scenarios against the virtual factory, scored against the IDS.

A run starts a sensor on the loopback interface (AF_PACKET), lets it learn the factory's normal
traffic, watches a quiet period for false alarms, then plays the scenario's steps from the
attacker's address, each labelled with ground truth (start, end, technique, target). The report
says per step whether the IDS detected it and how fast, and counts false alarms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from gongyun.security.ids.detect import DetectorConfig, Event
from gongyun.security.ids.sensor import Sensor, SensorConfig
from gongyun.sim.range import attacks
from gongyun.sim.range.attacks import ATTACKER, ModbusRaw

log = logging.getLogger("gongyun.sim.range")


@dataclass
class Target:
    """Where the virtual factory listens (loopback)."""

    host: str = "127.0.0.1"
    modbus_port: int = 5020
    opcua_port: int = 4840
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    group: str = "Gongyun"


@dataclass
class Step:
    """One attack step with its ground truth."""

    name: str
    technique: str
    target: str
    run: Callable[[Target], Any]
    start: float = 0.0
    end: float = 0.0
    skipped: str = ""


def _fc_scan(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    for fc in [1, 2, 3, 4, 7, 8, 11, 12, 17, 20, 24, 43, 65, 66, 90, 100]:
        pdu = (
            attacks.read_pdu(fc, 0, 1) if fc <= 4 else bytes([fc]) + (b"\x00\x00\x00\x00" if fc == 8 else b"")
        )
        m.request(1, pdu)
    m.close()


def _unit_scan(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    for unit in range(1, 21):
        m.request(unit, attacks.read_pdu(4, 0, 1))
    m.close()


def _address_scan(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    for addr in range(0, 400, 16):
        m.request(1, attacks.read_pdu(3, addr, 4))
    m.close()


def _setpoint_write(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    m.request(1, attacks.write_register_pdu(0, 1790))
    m.close()


def _coil_forcing(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    m.request(1, attacks.write_coil_pdu(0, False))
    time.sleep(0.2)
    m.request(1, attacks.write_coil_pdu(0, True))
    m.close()


LEGIT_WRITE = attacks.write_register_pdu(0, 1200)  # what the engineer wrote during normal operation


def _replay(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    m.request(1, LEGIT_WRITE)
    m.close()


def _write_flood(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    deadline = time.monotonic() + 5.0
    for i in range(40):  # bounded in count and in time
        if time.monotonic() > deadline:
            break
        m.request(1, attacks.write_register_pdu(0, 1000 + (i % 5) * 10))
    m.close()


def _malformed(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port)
    m.raw(bytes.fromhex("0001000000ff01030000"))  # MBAP length 255: oversize
    m.close()
    m.raw(bytes.fromhex("000200000002010f"))  # write multiple coils with no body
    m.close()
    m.raw(b"GET / HTTP/1.0\r\nHost: pump\r\n\r\n")  # not Modbus at all
    m.close()


def _opcua_none(t: Target) -> None:
    attacks.opcua_none_session(t.host, t.opcua_port)


def _mqtt_command(t: Target) -> str:
    topic = f"spBv1.0/{t.group}/DCMD/PackLine1/Filler"
    ok = attacks.mqtt_rogue_command(
        t.mqtt_host, t.mqtt_port, topic, attacks.sparkplug_command("Speed", 590.0)
    )
    return "" if ok else "the MQTT broker refused or is not there"


def scenario(name: str = "full") -> list[Step]:
    """The steps of a scenario (``full``, ``recon``, ``modbus``, ``protocols``)."""
    pump, cnc, mqtt = "pump (Modbus/TCP)", "CNC (OPC UA)", "packaging line (MQTT/Sparkplug B)"
    steps = {
        "fc-scan": Step("function-code scan", "T0888", pump, _fc_scan),
        "unit-scan": Step("unit-id scan", "T0846", pump, _unit_scan),
        "address-scan": Step("points-list (address) scan", "T0861", pump, _address_scan),
        "setpoint": Step("unauthorised setpoint write to the pump", "T0836", pump, _setpoint_write),
        "coils": Step("coil forcing (run command)", "T0831", pump, _coil_forcing),
        "replay": Step("replay of a captured write", "T0855", pump, _replay),
        "flood": Step("write flood (40 writes, at most 5 s)", "T0806", pump, _write_flood),
        "malformed": Step("malformed and non-Modbus frames", "T0866", pump, _malformed),
        "opcua-none": Step("OPC UA session with security None", "T0886", cnc, _opcua_none),
        "mqtt-command": Step("rogue MQTT command (Sparkplug DCMD)", "T0848", mqtt, _mqtt_command),
    }
    plans = {
        "full": list(steps),
        "recon": ["fc-scan", "unit-scan", "address-scan"],
        "modbus": [
            "fc-scan",
            "unit-scan",
            "address-scan",
            "setpoint",
            "coils",
            "replay",
            "flood",
            "malformed",
        ],
        "protocols": ["opcua-none", "mqtt-command"],
    }
    if name not in plans:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(plans)}")
    return [steps[k] for k in plans[name]]


async def normal_traffic(t: Target, stop: asyncio.Event, period: float = 0.5) -> None:
    """The plant's own polling from 127.0.0.1 (used when the range runs without ``gongyun demo``)."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(t.host, port=t.modbus_port)
    await client.connect()
    try:
        first = True
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await client.read_input_registers(0, count=24, device_id=1)
                await client.read_holding_registers(0, count=2, device_id=1)
                await client.read_coils(0, count=1, device_id=1)
                await client.read_discrete_inputs(0, count=2, device_id=1)
                if first:  # the engineer sets the speed once: the write the attacker will replay
                    await client.write_register(0, 1200, device_id=1)
                    first = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
    finally:
        client.close()


@dataclass
class RangeReport:
    """The outcome of one run."""

    scenario: str
    learn_s: float
    quiet_s: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    false_alarms: list[dict[str, Any]] = field(default_factory=list)
    packets: int = 0
    drops: int = 0

    @property
    def recall(self) -> float:
        """Detected steps / steps run."""
        run = [s for s in self.steps if not s["skipped"]]
        return sum(1 for s in run if s["detected"]) / len(run) if run else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**asdict(self), "recall": self.recall}

    def table(self) -> str:
        """A plain-text report."""
        lines = [
            f"scenario {self.scenario}: learning {self.learn_s:.0f} s, "
            f"normal traffic watched {self.quiet_s:.0f} s"
        ]
        for s in self.steps:
            if s["skipped"]:
                verdict = f"SKIPPED ({s['skipped']})"
            elif s["detected"]:
                verdict = f"DETECTED in {s['time_to_detect_s']:.3f} s by {', '.join(s['rules'])}"
            else:
                verdict = "MISSED"
            lines.append(f"  {s['technique']:<6} {s['name']:<42} {verdict}")
        lines.append(
            f"recall {self.recall:.0%}, false alarms {len(self.false_alarms)}, "
            f"packets {self.packets}, drops {self.drops}"
        )
        return "\n".join(lines)


def score(steps: list[Step], events: list[Event], quiet_from: float, attacker: str = ATTACKER) -> RangeReport:
    """Attribute events to steps (attacker events inside a step's window) and count false alarms."""
    report = RangeReport("", 0, 0)
    windows = []
    for i, s in enumerate(steps):
        nxt = steps[i + 1].start if i + 1 < len(steps) else s.end + 5.0
        windows.append((s, s.start - 0.05, max(nxt, s.end + 0.5)))
    used: set[int] = set()
    for s, lo, hi in windows:
        mine = [e for e in events if e.src.startswith(attacker + ":") or e.src == attacker]
        hits = [e for e in mine if lo <= e.ts < hi]
        used.update(id(e) for e in hits)
        first = min((e.ts for e in hits), default=None)
        report.steps.append(
            {
                "name": s.name,
                "technique": s.technique,
                "target": s.target,
                "start": s.start,
                "end": s.end,
                "skipped": s.skipped,
                "detected": bool(hits),
                "time_to_detect_s": None if first is None else max(first - s.start, 0.0),
                "rules": sorted({e.rule_id for e in hits}),
                "techniques_seen": sorted({e.technique for e in hits}),
            }
        )
    report.false_alarms = [
        {"rule_id": e.rule_id, "msg": e.msg, "src": e.src, "dst": e.dst, "ts": e.ts}
        for e in events
        if id(e) not in used and e.ts >= quiet_from
    ]
    return report


async def run_range(
    target: Target,
    *,
    scenario_name: str = "full",
    learn_s: float = 15.0,
    quiet_s: float = 15.0,
    gap_s: float = 1.5,
    interface: str = "lo",
    standalone: bool = True,
    sensor_config: SensorConfig | None = None,
    ship: Callable[[Sensor], Any] | None = None,
) -> RangeReport:
    """Run a scenario: (start the factory,) learn, watch, attack, score."""
    steps = scenario(scenario_name)
    cfg = sensor_config or SensorConfig(name="range", tenant="range")
    cfg.ports = {target.modbus_port: "modbus", target.opcua_port: "opcua", target.mqtt_port: "mqtt"}
    cfg.learn_s = learn_s
    cfg.detector = DetectorConfig()
    sensor = Sensor(cfg)
    factory = None
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    capture = threading.Thread(target=sensor.run_live, args=(interface,), name="range-sensor", daemon=True)
    capture.start()
    await asyncio.sleep(0.3)  # the socket is open before the first packet
    try:
        if standalone:
            from gongyun.sim.factory import Factory, FactoryConfig

            fc = FactoryConfig(
                modbus_port=target.modbus_port,
                opcua_port=target.opcua_port,
                mqtt_host=target.mqtt_host,
                mqtt_port=target.mqtt_port,
                group=target.group,
                hosts=("127.0.0.1",),
                packaging=_reachable(target.mqtt_host, target.mqtt_port),
            )
            factory = Factory(fc)
            await factory.start()
            tasks.append(asyncio.create_task(normal_traffic(target, stop)))
        if ship is not None:
            tasks.append(asyncio.create_task(ship(sensor)))
        if not standalone:  # the engineer's own write during normal operation: what the attacker replays
            await asyncio.sleep(1.0)
            await asyncio.to_thread(_engineer_write, target)
        log.info("learning the normal traffic for %.0f s", learn_s)
        await asyncio.sleep(learn_s + 0.5)
        quiet_from = time.time()
        log.info("watching normal traffic for %.0f s", quiet_s)
        await asyncio.sleep(quiet_s)
        for step in steps:
            step.start = time.time()
            log.info("attack step: %s (%s)", step.name, step.technique)
            try:
                result = await asyncio.to_thread(step.run, target)
            except OSError as exc:
                result = f"could not reach the target: {exc}"
            step.skipped = result if isinstance(result, str) else ""
            step.end = time.time()
            await asyncio.sleep(gap_s)
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        sensor.stop_flag.set()
        await asyncio.to_thread(capture.join, 5)
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 30)
        if factory is not None:
            await factory.stop()
    report = score(steps, list(sensor.events), quiet_from)
    report.scenario, report.learn_s, report.quiet_s = scenario_name, learn_s, quiet_s
    report.packets, report.drops = sensor.stats.counts["packets"], sensor.drops
    return report


def _engineer_write(t: Target) -> None:
    m = ModbusRaw(t.host, t.modbus_port, src="127.0.0.1")
    m.request(1, LEGIT_WRITE)
    m.close()


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
