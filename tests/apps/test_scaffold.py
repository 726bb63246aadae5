"""`gongyun app new` makes a working app: pip-installed into this venv, it runs on the platform,
answers only where enabled, is held to its manifest's permissions, and its removal is harmless."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apphelp import login, running_app
from tests.apps.helpers import GONGYUN_CLI, installed_app, pip, tenant_with_users

pytestmark = pytest.mark.slow
GONGYUN = GONGYUN_CLI


@pytest.fixture
def demoapp(tmp_path: Path) -> Iterator[Path]:
    """The scaffolded app ``demoapp``, installed for the test and uninstalled after it."""
    with installed_app("demoapp", tmp_path / "demoapp-project") as project:
        assert (project / "src/gongyun_app_demoapp/manifest.py").is_file()
        yield project


def test_the_scaffold_refuses_bad_names_and_non_empty_directories(tmp_path: Path) -> None:
    for bad in ("Demo", "alarms", "x"):
        done = subprocess.run(
            [str(GONGYUN), "app", "new", bad, "--dir", str(tmp_path / bad)], capture_output=True
        )
        assert done.returncode == 1 and not (tmp_path / bad).exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = subprocess.run(
        [str(GONGYUN), "app", "new", "okname", "--dir", str(tmp_path / "full")], capture_output=True
    )
    assert done.returncode == 1 and sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]


async def test_a_scaffolded_app_installs_runs_is_scoped_and_uninstalls(
    demoapp: Path, tmp_path: Path, db_url: str
) -> None:
    listed = subprocess.run([str(GONGYUN), "app", "list"], capture_output=True, text=True)
    assert "demoapp" in listed.stdout and "failed" not in listed.stdout

    # the app's own tests pass once it is installed
    own = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(demoapp / "tests")],
        capture_output=True,
        text=True,
        cwd=demoapp,
        timeout=600,
    )
    assert own.returncode == 0, own.stdout[-3000:]
    assert "3 passed" in own.stdout

    state = tmp_path / "platform"
    async with running_app(state, db_url) as (client, platform):
        assert platform.apps is not None and platform.apps.get("demoapp") is not None
        a = await tenant_with_users(client, "acme", "tenant-admin", "viewer")
        b = await tenant_with_users(client, "bolt", "tenant-admin")
        admin_a, admin_b = a["headers"]["tenant-admin"], b["headers"]["tenant-admin"]

        enabled = await client.patch("/api/v1/apps/demoapp", json={"enabled": True}, headers=admin_a)
        assert enabled.status_code == 200, enabled.text
        hello = await client.get("/api/v1/apps/demoapp/hello", headers=a["headers"]["viewer"])
        assert hello.status_code == 200, hello.text
        assert hello.json() == {
            "message": "Hello from demoapp",
            "tenant": a["id"],
            "actor": "acme-viewer via app:demoapp",
            "notes": 0,
        }
        assert (await client.get("/api/v1/apps/demoapp/hello", headers=admin_b)).status_code == 404
        page = await client.get("/apps/demoapp/main")
        assert page.status_code == 200 and 'data-page="app:demoapp/main"' in page.text
        script = await client.get("/console/apps/demoapp/static/main.js")
        assert script.status_code == 200 and 'G.pages["app:demoapp/main"]' in script.text
        assert (await client.get("/console/apps/demoapp/static/../manifest.py")).status_code == 404

        refused = await client.post("/api/v1/apps/demoapp/devices/pump-1/restart", headers=admin_a)
        assert refused.status_code == 403
        events = (await client.get("/api/v1/audit?limit=50", headers=admin_a)).json()
        denial = [e for e in events if e["action"] == "app.demoapp.denied"]
        assert len(denial) == 1
        assert denial[0]["actor"] == "acme-tenant-admin via app:demoapp"
        assert denial[0]["target"] == "devices:command" and denial[0]["outcome"] == "denied"
        assert not any(e["action"] == "app.demoapp.device.restart" for e in events)

        disabled = await client.patch("/api/v1/apps/demoapp", json={"enabled": False}, headers=admin_a)
        assert disabled.json()["state"] == "disabled"
        assert (await client.get("/api/v1/apps/demoapp/hello", headers=admin_a)).status_code == 404
        assert (
            await client.patch("/api/v1/apps/demoapp", json={"enabled": True}, headers=admin_a)
        ).status_code == 200

    pip("uninstall", "--yes", "--quiet", "gongyun-app-demoapp")
    async with running_app(state, db_url) as (client, platform):  # same database, package gone
        assert platform.apps is not None and platform.apps.get("demoapp") is None
        admin_a = await login(client, "acme-tenant-admin", "acme-tenant-admin-passw0rd")
        assert (await client.get("/api/v1/apps/demoapp/hello", headers=admin_a)).status_code == 404
        [entry] = [
            e for e in (await client.get("/api/v1/apps", headers=admin_a)).json() if e["name"] == "demoapp"
        ]
        assert entry["status"] == "missing" and entry["state"] == "enabled"  # the stale row is kept
        assert entry["installation"]["version"] == "0.1.0"
        assert (
            await client.patch("/api/v1/apps/demoapp", json={"enabled": True}, headers=admin_a)
        ).status_code == 409
        assert (
            await client.patch("/api/v1/apps/demoapp", json={"enabled": False}, headers=admin_a)
        ).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
    # back again, for the fixture's teardown
    pip("install", "--quiet", "--no-deps", "--no-build-isolation", str(demoapp))
