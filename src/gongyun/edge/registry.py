"""The gateways a platform process knows: those it runs itself and remote ones reporting their status
over the bus (:func:`watch_remote_gateways`) or over Sparkplug B (:func:`receive_sparkplug`).

:func:`watch_remote_gateways` (a start hook of the runtime) also starts the Sparkplug receivers of
``sparkplug_groups`` (:func:`start_sparkplug_receivers`), feeding the process's telemetry ingest."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gongyun.config import Profile, SparkplugReceiver
from gongyun.core.types import Sample
from gongyun.edge.broker import mqtt_address
from gongyun.edge.fleet import RemoteGateway, RemoteGateways
from gongyun.edge.receiver import Store, UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.errors import ConfigError, NotFound
from gongyun.runtime import MQTT_BROKER_KEY, Runtime

if TYPE_CHECKING:
    from gongyun.telemetry.ingest import Ingestor

log = logging.getLogger(__name__)

GATEWAYS_KEY = "gateways"


@dataclass
class GatewayRegistry:
    """Gateways running in this process, per tenant, and remote ones known from their uplink status
    (what the devices API reports on)."""

    by_tenant: dict[str, list[Gateway]] = field(default_factory=dict)
    remote: RemoteGateways = field(default_factory=RemoteGateways)
    receivers: list[tuple[UplinkReceiver, asyncio.Task[None]]] = field(default_factory=list)

    def add(self, tenant_id: str, gateway: Gateway) -> None:
        """Register a running gateway for a tenant."""
        self.by_tenant.setdefault(tenant_id, []).append(gateway)

    def of(self, tenant_id: str) -> list[Gateway | RemoteGateway]:
        """The tenant's gateways: in-process ones, then remote ones (not those running here)."""
        local = list(self.by_tenant.get(tenant_id, []))
        here = {gw.config.gateway.id for gw in local}
        return [*local, *(gw for gw in self.remote.of(tenant_id) if gw.name not in here)]

    def gateway_for(self, tenant_id: str, device: str) -> Gateway:
        """The tenant's in-process gateway that drives ``device``."""
        for gw in self.by_tenant.get(tenant_id, []):
            if device in gw.drivers:
                return gw
        raise NotFound(f"device {device!r} is not connected to a gateway")

    async def stop(self) -> None:
        """Stop following remote gateways and stop every local one."""
        await self.remote.stop()
        for _, task in self.receivers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.receivers.clear()
        for gateways in self.by_tenant.values():
            for gw in gateways:
                await gw.stop()
        self.by_tenant.clear()


def gateways(runtime: Runtime) -> GatewayRegistry:
    """The process's gateway registry (created on first use)."""
    reg = runtime.extras.get(GATEWAYS_KEY)
    if reg is None:
        reg = runtime.extras[GATEWAYS_KEY] = GatewayRegistry()
    assert isinstance(reg, GatewayRegistry)
    return reg


async def watch_remote_gateways(runtime: Runtime) -> None:
    """Start hook: follow remote gateways' status messages on the bus (``gwstatus.>``)."""
    reg = gateways(runtime)
    if reg.remote.subscription is None:
        await reg.remote.subscribe(runtime.bus)
    await start_sparkplug_receivers(runtime)


def sparkplug_receiver_enabled(runtime: Runtime) -> bool:
    """Whether this process receives ``sparkplug_groups`` (``auto``: in the embedded profile only)."""
    settings = runtime.settings
    mode = settings.sparkplug_receiver
    if mode is SparkplugReceiver.off or not settings.sparkplug_groups:
        return False
    if mode is SparkplugReceiver.auto and settings.profile is Profile.server:
        log.info(
            "sparkplug_groups set but not received here: in the server profile set "
            "sparkplug_receiver = 'on' in exactly one process"
        )
        return False
    return True


async def start_sparkplug_receivers(runtime: Runtime) -> list[UplinkReceiver]:
    """Receive each group of ``sparkplug_groups`` into telemetry ingest under its tenant's id.

    Receipt is confirmed to a gateway once its samples are stored. Unknown tenant names raise
    ConfigError. Nothing starts when the receiver is off here (see
    :func:`sparkplug_receiver_enabled`) or when this process's receivers run already.
    """
    from gongyun.security.accounts import get_tenant_by_name
    from gongyun.telemetry.service import get_service

    reg = gateways(runtime)
    if reg.receivers or not sparkplug_receiver_enabled(runtime):
        return []
    settings = runtime.settings
    ingestor = get_service(runtime).ingestor
    tenants: dict[str, str] = {}
    async with runtime.db.session() as session:
        for group, name in settings.sparkplug_groups.items():
            try:
                tenants[group] = str((await get_tenant_by_name(session, name)).id)
            except NotFound:
                raise ConfigError(
                    f"sparkplug_groups: group {group!r} names tenant {name!r}, which does not exist"
                ) from None
    embedded = runtime.extras.get(MQTT_BROKER_KEY)
    broker: tuple[str, int] = embedded.address if embedded is not None else mqtt_address(settings.mqtt_url)
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    started = []
    for group, tenant_id in tenants.items():
        store = functools.partial(_submit, ingestor, tenant_id)
        started.append(
            receive_sparkplug(
                runtime,
                tenant_id,
                group,
                broker,
                None,
                host_id=settings.sparkplug_host_id,
                store=store,
                username=settings.mqtt_username,
                password=password,
            )
        )
        log.info("receiving Sparkplug group %s for tenant %s at %s:%d", group, tenant_id, *broker)
    return started


async def _submit(ingestor: Ingestor, tenant_id: str, _node: str, samples: list[Sample]) -> Awaitable[object]:
    """Queue samples for ingest; the returned future completes once they are stored."""
    submitted = await ingestor.submit(tenant_id, samples)
    stored: Awaitable[object] = submitted.stored
    return stored


def receive_sparkplug(
    runtime: Runtime,
    tenant_id: str,
    group: str,
    broker: tuple[str, int],
    on_samples: Callable[[str, list[Sample]], None] | None,
    *,
    host_id: str | None = None,
    confirm: bool = True,
    store: Store | None = None,
    username: str | None = None,
    password: str | None = None,
) -> UplinkReceiver:
    """Start receiving the Sparkplug B uplinks of ``group`` for the tenant with id ``tenant_id``.

    The gateways' and devices' states go to this process's registry under ``tenant_id`` (so the
    devices API lists them). Without ``store``, ``on_samples`` must keep the samples, since receipt
    is confirmed to the gateway, which then drops them from its buffer; with ``store`` receipt is
    confirmed once ``store`` has stored them. Stopped with the registry.
    """
    reg = gateways(runtime)
    receiver = UplinkReceiver(
        broker,
        group,
        on_samples,
        host_id=host_id,
        confirm=confirm,
        fleet=reg.remote,
        tenant_id=tenant_id,
        store=store,
        username=username,
        password=password,
    )
    reg.receivers.append((receiver, asyncio.create_task(receiver.run(), name=f"sparkplug-uplink-{group}")))
    return receiver
