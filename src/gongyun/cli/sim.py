"""``gongyun sim``: run the virtual factory (pump on Modbus TCP, CNC on OPC UA, packaging on Sparkplug B)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from gongyun.cli.common import STATE
from gongyun.log import quiet_libraries
from gongyun.sim.factory import Factory, FactoryConfig, edge_config

app = typer.Typer(help="Run the virtual factory simulators.")
sim_app = app  # the name gongyun.cli.main looks for


@app.callback(invoke_without_command=True)
def sim(
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP port of the pump station.")] = 5020,
    opcua_port: Annotated[int, typer.Option(help="OPC UA port of the CNC cell.")] = 4840,
    mqtt: Annotated[
        str, typer.Option(help="MQTT broker host:port for the packaging line.")
    ] = "127.0.0.1:1883",
    group: Annotated[str, typer.Option(help="Sparkplug group id.")] = "Gongyun",
    time_scale: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 1.0,
    no_packaging: Annotated[bool, typer.Option(help="Do not start the MQTT packaging line.")] = False,
    opcua_cert: Annotated[
        Path | None, typer.Option(help="Server certificate (DER): enables Basic256Sha256.")
    ] = None,
    opcua_key: Annotated[Path | None, typer.Option(help="Server private key (PEM).")] = None,
    opcua_user: Annotated[
        list[str] | None, typer.Option(help="user:password allowed on the secure endpoint.")
    ] = None,
    mqtt_ca: Annotated[
        Path | None, typer.Option(help="CA bundle of the broker's certificate: MQTT over TLS.")
    ] = None,
    mqtt_cert: Annotated[
        Path | None, typer.Option(help="The packaging line's client certificate (gongyun pki device).")
    ] = None,
    mqtt_key: Annotated[Path | None, typer.Option(help="The key of --mqtt-cert.")] = None,
    write_edge_config: Annotated[
        Path | None, typer.Option(help="Also write an edge.toml connecting a gateway to these simulators.")
    ] = None,
) -> None:
    """Start all simulators on 127.0.0.1 and ::1 until interrupted."""
    level = "DEBUG" if STATE.debug else "INFO"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(level)
    host, _, port = mqtt.rpartition(":")
    users = dict(u.split(":", 1) for u in (opcua_user or []) if ":" in u)
    config = FactoryConfig(
        modbus_port=modbus_port,
        opcua_port=opcua_port,
        mqtt_host=host or "127.0.0.1",
        mqtt_port=int(port),
        group=group,
        time_scale=time_scale,
        opcua_cert=opcua_cert,
        opcua_key=opcua_key,
        opcua_users=users,
        packaging=not no_packaging,
        mqtt_ca=mqtt_ca,
        mqtt_cert=mqtt_cert,
        mqtt_key=mqtt_key,
    )
    if write_edge_config is not None:
        buffer = write_edge_config.parent / "edge-buffer.db"
        write_edge_config.write_text(edge_config(config, buffer.resolve(), f'url = "mqtt://{mqtt}"'))
        typer.echo(f"wrote {write_edge_config}: run `gongyun edge --config {write_edge_config}`")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Factory(config).serve_forever())
