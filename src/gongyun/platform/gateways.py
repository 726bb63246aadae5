"""Gateways in the composition root: remote gateways' status over the bus, and the platform's
Sparkplug B receivers of ``sparkplug_groups`` feeding telemetry ingest.

The edge room knows nothing of tenants' names, ingest or settings: here a Sparkplug group is
mapped to its tenant, the receiver is handed ingest's ``submit`` as its store, and the gateways'
states go to the platform's :class:`~gongyun.edge.registry.GatewayRegistry`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable

from gongyun.config import Profile, Settings, SparkplugReceiver
from gongyun.core.types import Sample
from gongyun.edge.broker import mqtt_address
from gongyun.edge.broker_tls import platform_tls
from gongyun.edge.receiver import Store, UplinkReceiver
from gongyun.errors import ConfigError, NotFound
from gongyun.platform.container import Platform
from gongyun.security.accounts import get_tenant_by_name
from gongyun.telemetry.ingest import Ingestor

log = logging.getLogger("gongyun.platform.gateways")


async def start_gateway_watch(platform: Platform) -> None:
    """Follow remote gateways' status messages on the bus (``gwstatus.>``) and start the receivers."""
    reg = platform.gateways
    if reg.remote.subscription is None:
        await reg.remote.subscribe(platform.bus)
    await start_sparkplug_receivers(platform)


def sparkplug_receiver_enabled(settings: Settings) -> bool:
    """Whether this process receives ``sparkplug_groups`` (``auto``: in the embedded profile only)."""
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


async def start_sparkplug_receivers(platform: Platform) -> list[UplinkReceiver]:
    """Receive each group of ``sparkplug_groups`` into telemetry ingest under its tenant's id.

    Receipt is confirmed to a gateway once its samples are stored. Unknown tenant names raise
    ConfigError. Nothing starts when the receiver is off here (see
    :func:`sparkplug_receiver_enabled`) or when this process's receivers run already.
    """
    settings = platform.settings
    if platform.gateways.receivers or not sparkplug_receiver_enabled(settings):
        return []
    ingestor = platform.running_telemetry().ingestor
    tenants: dict[str, str] = {}
    async with platform.db.session() as session:
        for group, name in settings.sparkplug_groups.items():
            try:
                tenants[group] = str((await get_tenant_by_name(session, name)).id)
            except NotFound:
                raise ConfigError(
                    f"sparkplug_groups: group {group!r} names tenant {name!r}, which does not exist"
                ) from None
    broker = platform.mqtt_address or mqtt_address(settings.mqtt_url)
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    tls = platform_tls(settings)
    started = []
    for group, tenant_id in tenants.items():
        store = functools.partial(_submit, ingestor, tenant_id)
        started.append(
            receive_sparkplug(
                platform,
                tenant_id,
                group,
                broker,
                None,
                host_id=settings.sparkplug_host_id,
                store=store,
                username=settings.mqtt_username,
                password=password,
                tls=tls,
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
    platform: Platform,
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
    tls: ssl.SSLContext | None = None,
) -> UplinkReceiver:
    """Start receiving the Sparkplug B uplinks of ``group`` for the tenant with id ``tenant_id``.

    The gateways' and devices' states go to the platform's registry under ``tenant_id`` (so the
    devices API lists them). Without ``store``, ``on_samples`` must keep the samples, since receipt
    is confirmed to the gateway, which then drops them from its buffer; with ``store`` receipt is
    confirmed once ``store`` has stored them. Stopped with the registry.
    """
    reg = platform.gateways
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
        tls=tls,
    )
    reg.receivers.append((receiver, asyncio.create_task(receiver.run(), name=f"sparkplug-uplink-{group}")))
    return receiver
