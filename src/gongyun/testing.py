"""Test helpers for app developers: a real platform in-process, with its administrator signed in.

    async with platform_client(tmp_path) as (client, headers):
        await client.patch("/api/v1/apps/myapp", json={"enabled": True}, headers=headers)

The platform runs on SQLite and the in-memory bus under ``tmp_path``, with every installed
app (``gongyun.apps`` entry points) discovered, migrated and started as in production.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from gongyun.api.app import create_app
from gongyun.config import load_settings

ADMIN = "admin"


@asynccontextmanager
async def platform_client(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A started platform and an httpx client bound to it, with the admin's Authorization header."""
    password = secrets.token_urlsafe(16)
    values: dict[str, Any] = {
        "data_dir": tmp_path / "gongyun",
        "admin_username": ADMIN,
        "admin_password": password,
        "secret_key": secrets.token_hex(32),
        "bus_url": "memory://",
        "database_url": f"sqlite+aiosqlite:///{(tmp_path / 'gongyun' / 'gongyun.db').resolve()}",
    }
    values.update(overrides)
    settings = load_settings(**values)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gongyun.test") as client:
            resp = await client.post("/api/v1/auth/token", data={"username": ADMIN, "password": password})
            resp.raise_for_status()
            yield client, {"Authorization": f"Bearer {resp.json()['access_token']}"}
