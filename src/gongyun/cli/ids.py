"""``gongyun ids``: decode captures, check rules, and run a passive sensor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from gongyun.cli.common import STATE, console, settings

ids_app = typer.Typer(help="Industrial intrusion detection: sensors, decoding, rules.", no_args_is_help=True)
sensor_app = typer.Typer(help="Passive sensors.", no_args_is_help=True)
ids_app.add_typer(sensor_app, name="sensor")

ZEEK_HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tmodbus_detailed\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\ttid\tunit\tfunc\taddress\tquantity\t"
    "request_values\tresponse_values\tmodbus_detailed_link_id\tmatched\trequest_subfunction_code\t"
    "response_subfunction_code\trequest_data\tresponse_data\texception_code\tmei_type\n"
)


def _ports(specs: list[str] | None) -> dict[int, str] | None:
    if not specs:
        return None
    from gongyun.security.ids.decoder import DEFAULT_PORTS

    ports = dict(DEFAULT_PORTS)
    for spec in specs:
        port, _, proto = spec.partition("=")
        if proto not in ("modbus", "opcua", "mqtt"):
            raise typer.BadParameter(f"--port takes PORT=modbus|opcua|mqtt, got {spec!r}")
        ports[int(port)] = proto
    return ports


PortsOpt = Annotated[
    list[str] | None, typer.Option("--port", help="Extra server port: PORT=modbus|opcua|mqtt.")
]


@ids_app.command("decode")
def decode(
    capture: Annotated[Path, typer.Argument(help="pcap or pcapng file.", exists=True, dir_okay=False)],
    fmt: Annotated[
        str, typer.Option("--format", help="zeek (modbus_detailed) or json (every record).")
    ] = "zeek",
    port: PortsOpt = None,
) -> None:
    """Decode a capture: Zeek-style modbus_detailed lines or JSON lines of every record; skips on stderr."""
    from gongyun.security.ids.capture import read_capture
    from gongyun.security.ids.decoder import Decoder
    from gongyun.security.ids.modbus import ModbusRecord
    from gongyun.security.ids.stats import Stats

    stats = Stats()
    records = Decoder(_ports(port), stats).frames(read_capture(capture, stats))
    out = sys.stdout
    if fmt == "zeek":
        out.write(ZEEK_HEADER)
        for r in records:
            if isinstance(r, ModbusRecord):
                out.write("\t".join(r.zeek_row()) + "\n")
    elif fmt == "json":
        for r in records:
            out.write(
                json.dumps(r.to_dict(), default=lambda o: o.hex() if isinstance(o, bytes) else str(o)) + "\n"
            )
    else:
        raise typer.BadParameter("--format is zeek or json")
    print(json.dumps(stats.to_dict()), file=sys.stderr)


@ids_app.command("rules")
def rules(files: Annotated[list[Path] | None, typer.Argument(help="Rules files to check.")] = None) -> None:
    """Check rules files and list the rules (the starter set included)."""
    from gongyun.security.ids.rules import load_rules

    for r in load_rules(files or []):
        console.print(f"{r.sid:>6}  {r.severity:<8} {r.technique:<6} {r.proto:<8} {r.msg}", highlight=False)


@sensor_app.callback(invoke_without_command=True)
def sensor(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read a pcap/pcapng file instead of a live interface.")
    ] = None,
    interface: Annotated[
        str, typer.Option("--interface", "-i", help="Interface to capture on (AF_PACKET).")
    ] = "lo",
    name: Annotated[str, typer.Option("--name", help="Sensor name.")] = "sensor-1",
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id the sensor reports to.")] = "",
    bus: Annotated[
        str | None, typer.Option("--bus", help="Bus URL (default: the settings' bus_url).")
    ] = None,
    learn: Annotated[
        float, typer.Option("--learn", help="Learning period in seconds (0: no allow-list).")
    ] = 0.0,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Baseline file (read, and written after learning).")
    ] = None,
    rules_file: Annotated[
        list[Path] | None, typer.Option("--rules", help="Extra rules file (repeatable).")
    ] = None,
    outbox: Annotated[
        Path | None, typer.Option("--outbox", help="Outbox file (default DATA_DIR/ids/NAME.outbox).")
    ] = None,
    port: PortsOpt = None,
    duration: Annotated[
        float, typer.Option("--duration", help="Stop after this many seconds (0: run until interrupted).")
    ] = 0.0,
    no_records: Annotated[bool, typer.Option("--no-records", help="Ship events and health only.")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not ship: print events as JSON lines.")
    ] = False,
    api: Annotated[
        str | None, typer.Option("--api", help="Ship to this platform URL over HTTP instead of the bus.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="GONGYUN_API_KEY", help="API key for --api.")
    ] = None,
) -> None:
    """Run a passive sensor on a live interface or a capture file, shipping to the bus."""
    if ctx.invoked_subcommand is not None:
        return
    from gongyun.security.ids.sensor import Sensor, SensorConfig

    logging.basicConfig(
        level="DEBUG" if STATE.debug else "INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = settings()
    box = str(outbox) if outbox else str(cfg.ensure_data_dir() / "ids" / f"{name}.outbox")
    if offline:
        box = ":memory:"
    config = SensorConfig(
        name=name,
        tenant=tenant or "offline",
        rules=[str(p) for p in rules_file or []],
        learn_s=learn,
        baseline_path=str(baseline) if baseline else None,
        outbox_path=box,
        ship_records=not no_records,
    )
    if _ports(port):
        config.ports = _ports(port) or config.ports
    sensor = Sensor(config)
    if offline:
        sensor.on_event = lambda ev: print(json.dumps(ev.to_dict(), default=str), flush=True)
    target = None if offline else (f"http:{api}" if api else (bus or cfg.effective_bus_url))
    asyncio.run(_run_sensor(sensor, file, interface, target, cfg.deployment_id, duration, api_key))
    h = sensor.health()
    console.print(
        f"sensor {name}: {h['packets']} packets, {sensor.stats.counts['events']} events, "
        f"{sum(sensor.stats.skips.values())} skipped, {h['outbox']} waiting in the outbox",
        highlight=False,
    )


def open_shipping(url: str, namespace: str, api_key: str | None = None) -> Any:
    """A bus for ``url``, or an HTTP shipper for ``http:<platform URL>`` (needs an API key)."""
    from gongyun.bus import open_bus
    from gongyun.security.ids.sensor import HttpBus

    if url.startswith("http:"):
        if not api_key:
            raise typer.BadParameter("--api needs --api-key (or GONGYUN_API_KEY)")
        return HttpBus(url[5:], api_key)
    return open_bus(url, namespace=namespace)


async def _run_sensor(
    sensor: Any,
    file: Path | None,
    interface: str,
    bus_url: str | None,
    namespace: str,
    duration: float,
    api_key: str | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    done = asyncio.Event()

    def capture() -> None:
        try:
            if file is not None:
                sensor.run_file(file)
            else:
                sensor.run_live(interface)
        finally:
            loop.call_soon_threadsafe(done.set)

    thread = threading.Thread(target=capture, name="ids-capture", daemon=True)
    thread.start()
    bus = None
    ship_stop = asyncio.Event()
    shipper = None
    if bus_url is not None:
        bus = open_shipping(bus_url, namespace, api_key)
        if hasattr(bus, "connect"):
            with contextlib.suppress(Exception):
                await bus.connect()
            with contextlib.suppress(Exception):
                await sensor.control(bus)
        shipper = asyncio.create_task(sensor.ship(bus, ship_stop))
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(done.wait())]
    await asyncio.wait(waits, timeout=duration or None, return_when=asyncio.FIRST_COMPLETED)
    sensor.stop_flag.set()
    await done.wait()
    for w in waits:
        w.cancel()
    if shipper is not None:
        ship_stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(shipper, 30)
    if bus is not None:
        with contextlib.suppress(Exception):
            await bus.close()
