"""The server profile: PostgreSQL metadata and the NATS JetStream bus, as themselves."""

from __future__ import annotations

from pathlib import Path

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
