"""The whole virtual factory: pump station, CNC cell and packaging line started together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from gongyun.sim.cnc import CncServer
from gongyun.sim.packaging import PackagingServer
from gongyun.sim.pump import PumpServer
from gongyun.sparkplug.tls import client_context

log = logging.getLogger(__name__)
PROFILES = Path(__file__).parent / "profiles"


def profiles_dir() -> Path:
    """Directory of the device profiles for the simulated machines (pump, cnc, packaging)."""
    return PROFILES


@dataclass
class FactoryConfig:
    """Ports, hosts and options of the virtual factory."""

    hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    modbus_port: int = 5020
    opcua_port: int = 4840
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    group: str = "Gongyun"
    time_scale: float = 1.0
    opcua_cert: Path | None = None
    opcua_key: Path | None = None
    opcua_users: dict[str, str] = field(default_factory=dict)
    packaging: bool = True
    # the packaging line's MQTT over TLS: CA bundle of the broker, and its client certificate and key
    mqtt_ca: Path | None = None
    mqtt_cert: Path | None = None
    mqtt_key: Path | None = None


@dataclass
class Factory:
    """Start and stop every simulator of a :class:`FactoryConfig`."""

    config: FactoryConfig
    pump: PumpServer = field(init=False)
    cnc: CncServer = field(init=False)
    packaging: PackagingServer | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        c = self.config
        self.pump = PumpServer(port=c.modbus_port, hosts=c.hosts, time_scale=c.time_scale)
        self.cnc = CncServer(
            port=c.opcua_port,
            hosts=c.hosts,
            time_scale=c.time_scale,
            cert=c.opcua_cert,
            key=c.opcua_key,
            users=c.opcua_users,
        )
        if c.packaging:
            tls = client_context(c.mqtt_ca, c.mqtt_cert, c.mqtt_key) if c.mqtt_ca else None
            self.packaging = PackagingServer(
                mqtt_host=c.mqtt_host,
                mqtt_port=c.mqtt_port,
                group=c.group,
                time_scale=c.time_scale,
                tls=tls,
            )

    async def start(self) -> None:
        """Start all simulators (stopping those already started if one fails)."""
        try:
            await self.pump.start()
            await self.cnc.start()
            if self.packaging is not None:
                await self.packaging.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop all simulators."""
        if self.packaging is not None:
            await self.packaging.stop()
        await self.cnc.stop()
        await self.pump.stop()

    async def serve_forever(self) -> None:
        """Start, run until cancelled, stop."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


def edge_config(config: FactoryConfig, buffer: Path, uplink: str = "") -> str:
    """An ``edge.toml`` connecting a gateway to this factory (``uplink`` is an ``[uplink]`` table body)."""
    host = config.hosts[0]
    url_host = f"[{host}]" if ":" in host else host
    text = f'[gateway]\nid = "demo-gateway"\nbuffer = "{buffer}"\n\n'
    text += "[uplink]\n" + (uplink or 'kind = "none"') + "\n\n"
    text += (
        f'[[devices]]\nname = "pump-1"\nprofile = "{PROFILES / "pump.toml"}"\nhost = "{host}"\n'
        f"port = {config.modbus_port}\n\n"
        f'[[devices]]\nname = "cnc-1"\nprofile = "{PROFILES / "cnc.toml"}"\n'
        f'url = "opc.tcp://{url_host}:{config.opcua_port}/gongyun/cnc"\n'
    )
    if config.packaging:
        text += (
            f'\n[[devices]]\nname = "packline-1"\nprofile = "{PROFILES / "packaging.toml"}"\n'
            f'broker = "{config.mqtt_host}:{config.mqtt_port}"\ngroup = "{config.group}"\n'
            'node = "PackLine1"\nsparkplug_device = "Filler"\n'
        )
    return text
