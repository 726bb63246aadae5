"""The gateways a platform process knows: those it runs itself and remote ones reporting over the bus."""

from __future__ import annotations

from dataclasses import dataclass, field

from gongyun.edge.fleet import RemoteGateway, RemoteGateways
from gongyun.edge.runtime import Gateway
from gongyun.errors import NotFound
from gongyun.runtime import Runtime

GATEWAYS_KEY = "gateways"


@dataclass
class GatewayRegistry:
    """Gateways running in this process, per tenant, and remote ones known from their uplink status
    (what the devices API reports on)."""

    by_tenant: dict[str, list[Gateway]] = field(default_factory=dict)
    remote: RemoteGateways = field(default_factory=RemoteGateways)

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
