"""A running platform with apps from in-test entry points, and tenants to try them in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import httpx

from gongyun.api.app import create_app
from gongyun.apps import GROUP, AppHost
from gongyun.runtime import Runtime, prepare_database, start_runtime
from tests.apphelp import admin_headers, login, make_settings


def eps(**targets: str) -> list[EntryPoint]:
    """Entry points of the ``gongyun.apps`` group: name -> ``module:attribute``."""
    return [EntryPoint(name, value, GROUP) for name, value in targets.items()]


@asynccontextmanager
async def running_with_apps(
    tmp_path: Path, entry_points: list[EntryPoint], db_url: str | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """A started platform whose apps are exactly ``entry_points``, with an in-process client."""
    settings = make_settings(tmp_path, db_url)
    await prepare_database(settings)
    runtime = await start_runtime(settings, apps=AppHost.discover(entry_points))
    transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, runtime
    finally:
        await runtime.close()


async def tenant_with_users(client: httpx.AsyncClient, name: str, *roles: str) -> dict[str, Any]:
    """A new tenant with one user per role; returns its id and each role's headers."""
    root = await admin_headers(client)
    tenant = (await client.post("/api/v1/tenants", json={"name": name}, headers=root)).json()
    headers: dict[str, dict[str, str]] = {}
    for role in roles:
        password = f"{name}-{role}-passw0rd"
        made = await client.post(
            "/api/v1/users",
            json={"username": f"{name}-{role}", "password": password, "role": role},
            headers={**root, "X-Tenant": tenant["id"]},
        )
        assert made.status_code == 201, made.text
        headers[role] = await login(client, f"{name}-{role}", password)
    return {"id": tenant["id"], "headers": headers}
