"""Build a real app (migrated database, runtime, admin) for API tests."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from gongyun.api.app import create_app
from gongyun.config import Settings, load_settings
from gongyun.platform import Platform, prepare_database, start_platform

ADMIN_PASSWORD = "admin-Passw0rd!"


def make_settings(tmp_path: Path, db_url: str | None = None, **overrides: Any) -> Settings:
    """Settings for a test: data under tmp_path, a known admin password, the memory bus."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "admin_password": ADMIN_PASSWORD,
        "secret_key": "test-secret-key-0123456789abcdef0123456789",
        "bus_url": "memory://",
        "log_format": "console",
    }
    if db_url:
        values["database_url"] = db_url
    # Test deployments share one NATS server: each database gets its own deployment id.
    values["deployment_id"] = "t" + hashlib.sha256(str(db_url or tmp_path).encode()).hexdigest()[:16]
    values.update(overrides)
    return load_settings(**values)


@asynccontextmanager
async def running_app(
    tmp_path: Path, db_url: str | None = None, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """A started app and an httpx client talking to it in-process."""
    settings = make_settings(tmp_path, db_url, **overrides)
    await prepare_database(settings)
    runtime = await start_platform(settings)
    app = create_app(settings, platform=runtime)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, runtime
    finally:
        await runtime.close()


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    """Log in and return the Authorization header."""
    resp = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of the bootstrap platform admin."""
    return await login(client, "admin", ADMIN_PASSWORD)
