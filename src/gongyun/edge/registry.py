"""The gateways a platform process knows: those it runs itself and remote ones reporting their status
over the bus or over Sparkplug B (the composition root, :mod:`gongyun.platform.gateways`, starts
the watchers and receivers and keeps this registry as ``Platform.gateways``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from gongyun.edge.fleet import RemoteGateway, RemoteGateways
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.errors import NotFound


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

    async def stop_gateway(self, tenant_id: str, gateway: Gateway) -> None:
        """Stop one in-process gateway and forget it."""
        running = self.by_tenant.get(tenant_id, [])
        if gateway in running:
            running.remove(gateway)
            await gateway.stop()

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
