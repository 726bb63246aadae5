"""Test helpers for app developers: a real platform in-process, with its administrator signed in.

    async with platform_sdk(tmp_path) as gy:            # the typed SDK client (gongyun_sdk)
        await gy.apps.configure("myapp", enabled=True)
        hello = await gy.http.get("apps/myapp/hello")   # the app's own routes, under /api/v1/

    async with platform_client(tmp_path) as (client, headers):   # or plain httpx
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
from fastapi import FastAPI

from gongyun.api.app import create_app
from gongyun.config import load_settings
from gongyun_sdk import AsyncClient, PasswordAuth

ADMIN = "admin"
BASE_URL = "http://gongyun.test"


@asynccontextmanager
async def _started(tmp_path: Path, overrides: dict[str, Any]) -> AsyncIterator[tuple[FastAPI, str]]:
    """A platform app with its lifespan running, and the administrator's password."""
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
    app = create_app(load_settings(**values))
    async with app.router.lifespan_context(app):
        yield app, password


@asynccontextmanager
async def platform_client(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A started platform and an httpx client bound to it, with the admin's Authorization header."""
    async with _started(tmp_path, overrides) as (app, password):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            resp = await client.post("/api/v1/auth/token", data={"username": ADMIN, "password": password})
            resp.raise_for_status()
            yield client, {"Authorization": f"Bearer {resp.json()['access_token']}"}


@asynccontextmanager
async def platform_sdk(tmp_path: Path, **overrides: Any) -> AsyncIterator[AsyncClient]:
    """A started platform and the SDK's async client signed in to it as the administrator."""
    async with _started(tmp_path, overrides) as (app, password):
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient(BASE_URL, PasswordAuth(ADMIN, password), transport=transport) as gy:
            yield gy
