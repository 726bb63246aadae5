"""Per-tenant apps through the API: catalogue, enable, configure, disable, scoped identity, audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gongyun.apps import AppStatus
from gongyun.platform import Platform
from tests.apps.fixture_apps import TICKS
from tests.apps.helpers import eps, running_with_apps, tenant_with_users

FIX = "tests.apps.fixture_apps"
APPS = eps(
    greeter=f"{FIX}:GREETER",
    broken=f"{FIX}:MALFORMED",
    exploder=f"{FIX}:EXPLODER",
    ghost="tests.apps.no_such_module:MANIFEST",
)


def _by_name(catalogue: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in catalogue}


async def _audit(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/audit?limit=200", headers=headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json())


async def _until_failed(platform: Platform, name: str) -> None:
    assert platform.apps is not None
    for _ in range(100):
        entry = platform.apps.get(name)
        if entry is not None and entry.status is AppStatus.failed:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never failed")


async def test_catalogue_enable_scope_audit_disable(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin", "engineer", "viewer")
        b = await tenant_with_users(client, "bolt", "tenant-admin")
        admin_a, admin_b = a["headers"]["tenant-admin"], b["headers"]["tenant-admin"]
        await _until_failed(platform, "exploder")

        catalogue = _by_name((await client.get("/api/v1/apps", headers=a["headers"]["viewer"])).json())
        assert set(catalogue) == {"greeter", "broken", "exploder", "ghost"}
        greeter = catalogue["greeter"]
        assert greeter["status"] == "running" and greeter["state"] == "not_installed"
        assert greeter["title"] == {"en": "Greeter", "zh-CN": "问候"} and greeter["version"] == "1.2.0"
        assert greeter["permissions"] == ["assets:read", "telemetry:read"]
        assert greeter["settings_schema"]["properties"]["repeat"]["maximum"] == 5
        assert greeter["pages"] == [
            {
                "slug": "main",
                "title": {"en": "Greeter", "zh-CN": "问候"},
                "url": "/apps/greeter/main",
                "script": "greeter.js",
            }
        ]
        assert catalogue["broken"]["status"] == "failed" and len(catalogue["broken"]["problems"]) == 3
        assert catalogue["exploder"]["status"] == "failed"
        assert "RuntimeError: exploder cannot reach its PLC" in catalogue["exploder"]["problems"][0]
        assert "ModuleNotFoundError" in catalogue["ghost"]["problems"][0]
        assert TICKS.count("greeter") >= 1  # its worker runs while the others failed

        # not installed anywhere: its routes do not exist for anybody
        assert (await client.get("/api/v1/apps/greeter/greet", headers=admin_a)).status_code == 404
        # only a tenant admin installs and enables
        denied = await client.patch(
            "/api/v1/apps/greeter", json={"enabled": True}, headers=a["headers"]["engineer"]
        )
        assert denied.status_code == 403
        on = await client.patch("/api/v1/apps/greeter", json={"enabled": True}, headers=admin_a)
        assert on.status_code == 200, on.text
        assert on.json()["state"] == "enabled" and on.json()["installation"]["settings"] == {
            "greeting": "hello",
            "repeat": 1,
        }

        hello = await client.get("/api/v1/apps/greeter/greet", headers=a["headers"]["viewer"])
        assert hello.status_code == 200, hello.text
        assert hello.json() == {"text": "hello", "tenant": a["id"], "actor": "acme-viewer via app:greeter"}
        assert (await client.get("/api/v1/apps/greeter/greet", headers=admin_b)).status_code == 404
        assert (await client.get("/api/v1/apps/exploder/anything", headers=admin_a)).status_code == 404

        # outside the manifest's permissions: 403 even for a tenant admin, audited under the app
        refused = await client.post("/api/v1/apps/greeter/command", headers=admin_a)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        events = await _audit(client, admin_a)
        denial = next(e for e in events if e["action"] == "app.greeter.denied")
        assert denial["actor"] == "acme-tenant-admin via app:greeter"
        assert denial["outcome"] == "denied" and denial["target"] == "devices:command"

        # the app's actions are audited under its name
        assert (
            await client.post("/api/v1/apps/greeter/notes", headers=a["headers"]["engineer"])
        ).status_code == 200
        events = await _audit(client, admin_a)
        actions = {(e["action"], e["actor"]) for e in events}
        assert ("app.greeter.note", "acme-engineer via app:greeter") in actions
        assert ("app.greeter.request", "acme-engineer via app:greeter") in actions
        assert ("app.install", "acme-tenant-admin") in actions and (
            "app.enable",
            "acme-tenant-admin",
        ) in actions

        # configure: validated against the settings model, every problem listed
        bad = await client.patch(
            "/api/v1/apps/greeter", json={"settings": {"greeting": "", "repeat": 9}}, headers=admin_a
        )
        assert bad.status_code == 422 and {tuple(e["loc"]) for e in bad.json()["errors"]} == {
            ("greeting",),
            ("repeat",),
        }
        good = await client.patch(
            "/api/v1/apps/greeter", json={"settings": {"greeting": "你好", "repeat": 2}}, headers=admin_a
        )
        assert good.status_code == 200
        hello = await client.get("/api/v1/apps/greeter/greet", headers=admin_a)
        assert hello.json()["text"] == "你好 你好"
        configured = [e for e in await _audit(client, admin_a) if e["action"] == "app.configure"]
        assert [e["detail"]["changed"] for e in configured] == [["greeting", "repeat"]]

        # a failed app cannot be enabled
        assert (
            await client.patch("/api/v1/apps/exploder", json={"enabled": True}, headers=admin_a)
        ).status_code == 409

        # disabling removes access at once; tenant B never saw it enabled
        off = await client.patch("/api/v1/apps/greeter", json={"enabled": False}, headers=admin_a)
        assert off.json()["state"] == "disabled"
        assert (await client.get("/api/v1/apps/greeter/greet", headers=admin_a)).status_code == 404
        state_b = _by_name((await client.get("/api/v1/apps", headers=admin_b)).json())["greeter"]["state"]
        assert state_b == "not_installed"
        assert "app.disable" in {e["action"] for e in await _audit(client, admin_a)}
        assert (await client.delete("/api/v1/apps/greeter", headers=admin_a)).status_code == 204
        assert (await client.get("/api/v1/apps/greeter", headers=admin_a)).json()["state"] == "not_installed"


async def test_worker_acts_with_the_manifest_permissions_in_enabled_tenants(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, eps(greeter=f"{FIX}:GREETER")) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        b = await tenant_with_users(client, "bolt", "tenant-admin")
        await client.patch(
            "/api/v1/apps/greeter", json={"enabled": True}, headers=a["headers"]["tenant-admin"]
        )
        from gongyun.apps import WorkerContext
        from tests.apps.fixture_apps import GREETER

        assert platform.apps is not None
        work = WorkerContext(GREETER, platform.db, platform.bus, __import__("logging").getLogger("t"))
        assert await work.tenants() == [a["id"]]
        async with work.acting_in(a["id"]) as ctx:
            assert ctx.actor == "app:greeter" and ctx.permissions == GREETER.permissions
            await ctx.audit("tick", "worker")
        with pytest.raises(Exception, match="not enabled"):
            async with work.acting_in(b["id"]):
                pass
        events = await _audit(client, a["headers"]["tenant-admin"])
        assert any(e["action"] == "app.greeter.tick" and e["actor"] == "app:greeter" for e in events)


async def test_console_pages_of_apps(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, APPS) as (client, _):
        page = await client.get("/apps/greeter/main", headers={"Accept-Language": "zh-CN"})
        assert page.status_code == 200
        assert 'data-page="app:greeter/main"' in page.text and '<h1 id="page-title">问候</h1>' in page.text
        assert 'src="/console/apps/greeter/static/greeter.js?v=1.2.0"' in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        script = await client.get("/console/apps/greeter/static/greeter.js")
        assert script.status_code == 200 and 'pages["app:greeter/main"]' in script.text
        for missing in (
            "/apps/greeter/nope",
            "/apps/broken/main",
            "/apps/exploder/main",
            "/console/apps/greeter/static/nope.js",
            "/console/apps/greeter/static/../fixture_apps.py",
            "/console/apps/ghost/static/x.js",
        ):
            assert (await client.get(missing)).status_code == 404, missing
