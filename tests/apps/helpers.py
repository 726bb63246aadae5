"""A running platform with apps from in-test entry points, and tenants to try them in."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import httpx

from gongyun.api.app import create_app
from gongyun.apps import GROUP, AppHost
from gongyun.platform import Platform, prepare_database, start_platform
from tests.apphelp import admin_headers, login, make_settings


async def until_found(probe: Any, timeout_s: float = 60.0) -> Any:
    """Await ``probe()`` every 0.2 s until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError("not within the time limit")


def eps(**targets: str) -> list[EntryPoint]:
    """Entry points of the ``gongyun.apps`` group: name -> ``module:attribute``."""
    return [EntryPoint(name, value, GROUP) for name, value in targets.items()]


@asynccontextmanager
async def running_with_apps(
    tmp_path: Path, entry_points: list[EntryPoint], db_url: str | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """A started platform whose apps are exactly ``entry_points``, with an in-process client."""
    settings = make_settings(tmp_path, db_url)
    await prepare_database(settings)
    platform = await start_platform(settings, apps=AppHost.discover(entry_points))
    transport = httpx.ASGITransport(app=create_app(settings, platform=platform))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, platform
    finally:
        await platform.close()


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


GONGYUN_CLI = Path(sys.executable).parent / "gongyun"


def pip(*args: str) -> None:
    """Run pip of this venv; fail the test with its output when it fails."""
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@contextmanager
def installed_app(name: str, where: Path, zh_title: str | None = None) -> Iterator[Path]:
    """``gongyun app new NAME`` into ``where``, pip-installed into this venv until the block ends.

    ``zh_title`` replaces the generated Chinese title, as a developer would.
    """
    made = subprocess.run(
        [str(GONGYUN_CLI), "app", "new", name, "--dir", str(where)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    if zh_title:
        manifest = where / f"src/gongyun_app_{name}/manifest.py"
        title = name.replace("_", " ").title()
        text = manifest.read_text(encoding="utf-8")
        manifest.write_text(text.replace(f'zh_cn="{title}"', f'zh_cn="{zh_title}"'), encoding="utf-8")
    # no build isolation: hatchling comes from this venv, nothing is downloaded
    pip("install", "--quiet", "--no-deps", "--no-build-isolation", str(where))
    try:
        yield where
    finally:
        pip("uninstall", "--yes", "--quiet", f"gongyun-app-{name.replace('_', '-')}")
