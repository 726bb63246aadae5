"""``gongyun demo``: the virtual factory, its gateway and its asset model inside the server.

The simulators (``gongyun.sim``) speak real Modbus TCP, OPC UA and Sparkplug B on loopback;
an edge gateway (``gongyun.edge``) polls them and uplinks over the process's bus; platform
ingest stores what it carries. Nothing here reads a device directly: the demo only starts
the pieces and seeds the asset tree and alarm rules that describe them.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gongyun.alarms import commands
from gongyun.alarms import repo as alarm_repo
from gongyun.apps import AppStatus
from gongyun.apps.trace.demo import seed as seed_trace
from gongyun.assets.seed import Placement, factory_layout, seed
from gongyun.edge.config import load_config
from gongyun.edge.runtime import Gateway
from gongyun.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from gongyun.platform.container import Platform
from gongyun.security.accounts import DEFAULT_TENANT, get_tenant_by_name
from gongyun.sim.factory import Factory, FactoryConfig, profiles_dir

log = logging.getLogger("gongyun.platform.demo")
MACHINES = {"pump": "pump", "cnc": "cnc", "packaging": "packaging"}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _broker_reachable(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return host, port
    except OSError:
        return None


def _edge_toml(layout: list[Placement], fc: FactoryConfig, buffer: Path, tenant_id: str) -> str:
    host = fc.hosts[0]
    url_host = f"[{host}]" if ":" in host else host
    text = (
        f'[gateway]\nid = "demo-gateway"\nbuffer = "{buffer}"\n\n'
        f'[uplink]\nkind = "bus"\nsubject = "telemetry"\ntenant = "{tenant_id}"\n'
    )
    for p in layout:
        text += f'\n[[devices]]\nname = "{p.device}"\nprofile = "{p.profile}"\n'
        if p.profile.name == "pump.toml":
            text += f'host = "{host}"\nport = {fc.modbus_port}\n'
        elif p.profile.name == "cnc.toml":
            text += f'url = "opc.tcp://{url_host}:{fc.opcua_port}/gongyun/cnc"\n'
        else:
            text += (
                f'broker = "{fc.mqtt_host}:{fc.mqtt_port}"\ngroup = "{fc.group}"\n'
                'node = "PackLine1"\nsparkplug_device = "Filler"\n'
            )
    return text


@dataclass
class Demo:
    """The running virtual factory of one tenant."""

    factory: Factory
    gateway: Gateway
    tenant_id: str

    def inject(self, machine: str, fault: str, rate: float | None = None) -> None:
        """Start a fault in a simulated machine (bearing wear, clogging, tool wear, ...)."""
        models: dict[str, Any] = {"pump": self.factory.pump.model, "cnc": self.factory.cnc.model}
        if self.factory.packaging is not None:
            models["packaging"] = self.factory.packaging.model
        model = models.get(machine)
        if model is None:
            raise NotFound(f"no simulated machine {machine!r}; choose from {sorted(models)}")
        try:
            model.inject(fault) if rate is None else model.inject(fault, rate)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from exc

    def machines(self) -> list[dict[str, Any]]:
        """Each simulated machine's state; the pump's with its true time to failure (the simulator's own)."""
        pump = self.factory.pump.model
        out: list[dict[str, Any]] = [
            {
                "machine": "pump",
                "state": pump.state.name,
                "fault_code": pump.fault_code,
                "bearing_wear": round(pump.wear, 4),
                "time_to_failure_s": pump.time_to_failure(),
            },
            {"machine": "cnc", "state": str(self.factory.cnc.model.state)},
        ]
        if self.factory.packaging is not None:
            out.append({"machine": "packaging", "state": str(self.factory.packaging.model.state)})
        return out

    async def stop(self) -> None:
        """Stop the simulators (the platform stops the gateway before them)."""
        await self.factory.stop()


async def load_alarm_rules(platform: Platform, tenant_id: str) -> None:
    """Have the alarm engine load the tenant's rules, here or in the process that leads it.

    A ``reload_rule`` command is queued per rule either way: the engine applies it in order
    with everything else it does, under its lock, so a running engine's live state is never
    replaced by rows read outside it (a rule it runs already keeps its state).
    """
    try:
        engine = platform.running_telemetry().alarms
    except ServiceUnavailable:  # the engine leads in another process: ring the bus
        engine = None
    async with platform.db.session() as session:
        rule_ids = [r.id for r in await alarm_repo.list_rules(session, tenant_id)]
        queued = [await commands.create(session, tenant_id, "reload_rule", rid) for rid in rule_ids]
    for row in queued:
        await commands.dispatch(platform.bus, row, engine)


async def _link_endpoints(
    platform: Platform, tenant_id: str, layout: list[Placement], fc: FactoryConfig
) -> None:
    """Tell the security events centre which device listens on which simulator port."""
    from gongyun.security.ids import store as ids_store
    from gongyun.security.tenancy import scope_session

    ports = {"pump.toml": fc.modbus_port, "cnc.toml": fc.opcua_port, "packaging.toml": fc.mqtt_port}
    async with platform.db.session() as session:
        scope_session(session.sync_session, tenant_id)
        for p in layout:
            port = ports.get(p.profile.name)
            if port is not None:
                host = fc.mqtt_host if p.profile.name == "packaging.toml" else fc.hosts[0]
                path = f"{p.area}/{p.line}/{p.equipment}"
                await ids_store.set_link(
                    session, tenant_id, f"{host}:{port}", device=p.device, asset_path=path
                )


async def _seed_scheduling(platform: Platform, tenant_id: str, layout: list[Placement]) -> None:
    """The scheduling app's machines and orders for the virtual factory (once)."""
    app = platform.apps.get("scheduling") if platform.apps is not None else None
    if app is None or app.manifest is None or app.status is AppStatus.failed:
        log.warning("the scheduling app is not available: no machines or orders are seeded")
        return
    from gongyun.apps.scheduling.demo import seed as seed_scheduling

    by = {p.profile.name: p for p in layout}
    paths = {name: f"{p.area}/{p.line}/{p.equipment}" for name, p in by.items()}
    cnc = by.get("cnc.toml")
    if cnc is None or "pump.toml" not in by:
        return
    pack = paths.get("packaging.toml", "Packaging line")
    if await seed_scheduling(
        platform.db, tenant_id, (cnc.device, paths["cnc.toml"]), paths["pump.toml"], pack
    ):
        log.info("seeded the scheduling app's machines and orders")


async def start_demo(platform: Platform, *, time_scale: float = 1.0) -> Demo:
    """Start simulators and a gateway, seed the default tenant, register both on the platform."""
    settings = platform.settings
    async with platform.db.session() as session:
        tenant_id = (await get_tenant_by_name(session, DEFAULT_TENANT)).id
    # The platform's own broker needs no probing.
    broker = platform.mqtt_address or _broker_reachable(settings.mqtt_url)
    if broker is not None and settings.mqtt_username is not None:
        log.warning("the MQTT broker requires a login and the simulators connect anonymously")
        broker = None
    if broker is not None and settings.mqtt_url.startswith("mqtts://"):
        log.warning("the MQTT broker requires client certificates: the demo's packaging line is left out")
        broker = None
    modbus = 5020 if _port_free(5020) else _free_port()
    opcua = 4840 if _port_free(4840) else _free_port()
    fc = FactoryConfig(
        modbus_port=modbus, opcua_port=opcua, time_scale=time_scale, packaging=broker is not None
    )
    if broker is not None:
        fc.mqtt_host, fc.mqtt_port = broker
    else:
        log.warning("no MQTT broker at %s: the packaging line (Sparkplug B) is left out", settings.mqtt_url)
    layout = [p for p in factory_layout(profiles_dir()) if fc.packaging or p.profile.name != "packaging.toml"]
    try:
        async with platform.db.session() as session:
            await seed(session, tenant_id, layout, minter=platform.objects)
        log.info("seeded the virtual factory's asset model")
    except Conflict:
        log.info("the virtual factory's asset model exists already")
    await load_alarm_rules(platform, tenant_id)
    trace = platform.apps.get("trace") if platform.apps is not None else None
    for p in layout:  # the packaging line's batches and lots become identifiers (the trace app)
        if p.profile.name != "packaging.toml":
            continue
        if trace is None or trace.manifest is None or trace.status is AppStatus.failed:
            log.warning("the trace app is not available: the packaging line's lots are not traced")
        else:
            await seed_trace(platform.db, tenant_id, p.device, settings.effective_public_url)
    await _seed_scheduling(platform, tenant_id, layout)
    factory = Factory(fc)
    await factory.start()
    await _link_endpoints(platform, tenant_id, layout, fc)
    edge_dir = settings.ensure_data_dir() / "edge"
    edge_dir.mkdir(exist_ok=True)
    config_path = edge_dir / "edge.toml"
    config_path.write_text(_edge_toml(layout, fc, edge_dir / "buffer.db", tenant_id))
    config, profiles = load_config(config_path)
    gateway = Gateway(config, profiles, bus=platform.bus)
    await gateway.start()
    platform.gateways.add(tenant_id, gateway)
    demo = Demo(factory, gateway, tenant_id)
    platform.demo = demo

    async def stop_demo() -> None:  # the gateway first: its clients leave before the servers go
        await platform.gateways.stop_gateway(tenant_id, gateway)
        await demo.stop()

    platform.on_close("demo", stop_demo)
    from gongyun.platform.demo_health import watch_pump

    await watch_pump(platform, tenant_id)  # the maintenance app watches the pump
    log.info("virtual factory running: Modbus TCP :%d, OPC UA :%d", modbus, opcua)
    return demo
