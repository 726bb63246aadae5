"""The server profile: PostgreSQL metadata and the NATS JetStream bus, as themselves."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.apphelp import admin_headers, running_app
from tests.services import NATS_URL, require_service, scratch_postgres_database


async def test_app_on_postgres_and_nats(tmp_path: Path) -> None:
    require_service("nats")
    with scratch_postgres_database() as url:
        async with running_app(tmp_path, db_url=url, bus_url=NATS_URL, profile="server") as (client, runtime):
            assert runtime.db.dialect == "postgresql"
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok", "bus": "ok"}
            headers = await admin_headers(client)
            created = await client.post("/api/v1/tenants", json={"name": "pg-tenant"}, headers=headers)
            assert created.status_code == 201
            names = [t["name"] for t in (await client.get("/api/v1/tenants", headers=headers)).json()]
            assert "pg-tenant" in names
            metrics = await client.get("/metrics", headers=headers)
            assert metrics.status_code == 200 and "gongyun_http_requests_total" in metrics.text


async def test_remote_gateway_reports_device_state_over_nats(tmp_path: Path) -> None:
    # a gateway in another place (its own bus connection) -> NATS -> the platform's devices API
    import asyncio
    import uuid

    from gongyun.bus import open_bus
    from gongyun.edge.config import load_config
    from gongyun.edge.runtime import Gateway
    from gongyun.security.accounts import DEFAULT_TENANT, get_tenant_by_name
    from gongyun.sim.pump import PumpServer
    from tests.edge.conftest import PROFILES
    from tests.services import free_port

    require_service("nats")

    async def pump1_becomes(
        client: httpx.AsyncClient, headers: dict[str, str], gateway: str, want: str
    ) -> None:
        """Poll the devices API until the remote gateway's pump1 reports ``want`` (15 s at most)."""
        deadline = asyncio.get_running_loop().time() + 15.0
        while True:
            resp = await client.get("/api/v1/devices/status", headers=headers)
            assert resp.status_code == 200, resp.text
            states = {d["device"]: d["state"] for d in resp.json() if d["gateway"] == gateway}
            if states.get("pump1") == want:
                return
            assert asyncio.get_running_loop().time() < deadline, f"pump1 never became {want}: {states}"
            await asyncio.sleep(0.2)

    with scratch_postgres_database() as url:
        async with running_app(tmp_path, db_url=url, bus_url=NATS_URL, profile="server") as (client, runtime):
            headers = await admin_headers(client)
            async with runtime.db.session() as session:
                tenant_id = (await get_tenant_by_name(session, DEFAULT_TENANT)).id
            pump = PumpServer(port=free_port())
            await pump.start()
            name = f"gw-{uuid.uuid4().hex[:8]}"
            path = tmp_path / "edge.toml"
            path.write_text(
                f'[gateway]\nid = "{name}"\nbuffer = "{tmp_path / "b.db"}"\n\n'
                f'[uplink]\nkind = "bus"\nurl = "{NATS_URL}"\ntenant = "{tenant_id}"\n'
                f'deployment_id = "{runtime.settings.deployment_id}"\n'
                "status_interval = 0.5\n\n"
                f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\n'
                f"port = {pump.port}\ntimeout = 0.3\n"
            )
            config, profiles = load_config(path)
            remote_bus = open_bus(NATS_URL, namespace=runtime.settings.deployment_id)
            await remote_bus.connect()
            gateway = Gateway(config, profiles, bus=remote_bus)
            await gateway.start()
            try:
                await pump1_becomes(client, headers, name, "online")
                await pump.stop()
                await pump1_becomes(client, headers, name, "offline")
            finally:
                await gateway.stop()
                await pump.stop()
                await remote_bus.close()
