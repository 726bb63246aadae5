"""``gongyun range``: scripted attacks on the virtual factory, scored against the IDS."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from gongyun.cli.common import STATE, console, settings

range_app = typer.Typer(
    help="Cyber range: attack scenarios with ground truth against the virtual factory.", no_args_is_help=True
)


@range_app.command("list")
def list_scenarios() -> None:
    """List the scenarios and their steps."""
    from gongyun.sim.range.runner import scenario

    for name in ("full", "recon", "modbus", "protocols"):
        console.print(f"[bold]{name}[/]", highlight=False)
        for s in scenario(name):
            console.print(f"  {s.technique:<6} {s.name}  → {s.target}", highlight=False)


@range_app.command("run")
def run(
    scenario: Annotated[str, typer.Option(help="full, recon, modbus or protocols.")] = "full",
    learn: Annotated[float, typer.Option(help="Seconds of normal traffic the sensor learns from.")] = 15.0,
    quiet: Annotated[float, typer.Option(help="Seconds of normal traffic watched for false alarms.")] = 15.0,
    attach: Annotated[
        bool, typer.Option(help="Attack a running `gongyun demo` instead of starting simulators.")
    ] = False,
    modbus_port: Annotated[int, typer.Option(help="Modbus/TCP port of the pump.")] = 5020,
    opcua_port: Annotated[int, typer.Option(help="OPC UA port of the CNC cell.")] = 4840,
    mqtt: Annotated[
        str, typer.Option(help="MQTT broker host:port of the packaging line.")
    ] = "127.0.0.1:1883",
    interface: Annotated[str, typer.Option(help="Interface the sensor captures on.")] = "lo",
    tenant: Annotated[str, typer.Option(help="Ship the sensor's events to this tenant over the bus.")] = "",
    bus: Annotated[str | None, typer.Option(help="Bus URL for --tenant (default: settings).")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the report as JSON here.")] = None,
    api: Annotated[
        str | None, typer.Option(help="With --tenant: ship to this platform URL over HTTP.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="GONGYUN_API_KEY", help="API key for --api.")] = None,
) -> None:
    """Run a scenario with a sensor on the loopback interface; print detected/missed per step."""
    from gongyun.sim.range.runner import Target, run_range

    logging.basicConfig(
        level="DEBUG" if STATE.debug else "INFO", format="%(asctime)s %(levelname)s %(message)s"
    )
    host, _, port = mqtt.rpartition(":")
    target = Target(
        modbus_port=modbus_port, opcua_port=opcua_port, mqtt_host=host or "127.0.0.1", mqtt_port=int(port)
    )
    ship = None
    if tenant:
        from gongyun.security.ids.sensor import SensorConfig

        cfg = settings()
        url = bus or cfg.effective_bus_url
        sensor_cfg = SensorConfig(name="range", tenant=tenant, ship_records=False)

        async def ship(sensor: Any) -> None:
            from gongyun.cli.ids import open_shipping

            b = open_shipping(f"http:{api}" if api else url, cfg.deployment_id, api_key)
            if hasattr(b, "connect"):
                await b.connect()
            stop = asyncio.Event()
            task = asyncio.create_task(sensor.ship(b, stop))
            await asyncio.to_thread(sensor.stop_flag.wait)
            stop.set()
            await asyncio.wait_for(task, 30)
            await b.close()
    else:
        sensor_cfg = None
    result = asyncio.run(
        run_range(
            target,
            scenario_name=scenario,
            learn_s=learn,
            quiet_s=quiet,
            interface=interface,
            standalone=not attach,
            sensor_config=sensor_cfg,
            ship=ship,
        )
    )
    console.print(result.table(), highlight=False)
    if report is not None:
        report.write_text(json.dumps(result.to_dict(), indent=1))
    if result.recall < 1.0 or result.false_alarms:
        raise typer.Exit(1)
