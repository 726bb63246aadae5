"""The platform's services lent to apps: tags, telemetry, alarm rules, leadership, commands."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gongyun.apps import UNAVAILABLE, AppHost
from gongyun.cli import apps as cli_apps
from gongyun.cli.main import app as gongyun_cli
from gongyun.errors import ServiceUnavailable
from tests.apps.helpers import eps, running_with_apps, tenant_with_users

DOUBLER = eps(doubler="tests.apps.fixture_apps:DOUBLER")


async def _until(probe: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("not within the time limit")


async def _speed_tag(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    dev = await client.post("/api/v1/assets/devices", json={"name": "line"}, headers=headers)
    assert dev.status_code == 201, dev.text
    url = f"/api/v1/assets/devices/{dev.json()['id']}/tags"
    tag = await client.post(url, json={"name": "speed"}, headers=headers)
    assert tag.status_code == 201, tag.text


async def test_an_app_worker_writes_tags_and_raises_alarms_through_the_platform(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, DOUBLER) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        b = await tenant_with_users(client, "globex", "tenant-admin")
        ha, hb = a["headers"]["tenant-admin"], b["headers"]["tenant-admin"]
        assert platform.apps is not None and platform.apps.services.leader
        on = await client.patch("/api/v1/apps/doubler", json={"enabled": True}, headers=ha)
        assert on.status_code == 200, on.text
        for h in (ha, hb):
            await _speed_tag(client, h)
            now = datetime.now(UTC).isoformat()
            body = {"samples": [{"tag": "line/speed", "value": 70.0, "ts": now}]}
            r = await client.post("/api/v1/telemetry/ingest", json=body, headers=h)
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

        async def score() -> Any:
            r = await client.get("/api/v1/telemetry/latest", params={"tags": "doubler/score"}, headers=ha)
            return r.status_code == 200 and r.json().get("doubler/score")

        latest = await _until(score)
        assert latest["value"] == 140.0  # the app's score is a tag like any other
        rules = (await client.get("/api/v1/alarms/rules", headers=ha)).json()
        assert [r["name"] for r in rules] == ["score high"]

        async def active() -> Any:
            alarms = (await client.get("/api/v1/alarms", params={"active": True}, headers=ha)).json()
            return [x for x in alarms if x["name"] == "score high"]

        raised = await _until(active)
        assert raised[0]["state"] == "unack_active" and raised[0]["value"] == 140.0, raised
        # the other tenant has not enabled the app: nothing was made there
        assert (await client.get("/api/v1/alarms/rules", headers=hb)).json() == []
        r = await client.get("/api/v1/telemetry/latest", params={"tags": "doubler/score"}, headers=hb)
        assert not (r.status_code == 200 and r.json().get("doubler/score"))


async def test_ensure_rule_replaces_by_name_and_refuses_a_bad_body(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, DOUBLER) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        assert platform.apps is not None
        services = platform.apps.services
        await services.ensure_device(a["id"], "probe")
        assert await services.ensure_device(a["id"], "probe")  # twice: the same device
        assert await services.ensure_tag(a["id"], "probe", "t", unit="degC") == "probe/t"
        assert await services.ensure_tag(a["id"], "probe", "t", unit="degC") == "probe/t"
        spec = {"name": "hot", "kind": "threshold", "tag": "probe/t", "limit": 50.0}
        first = await services.ensure_rule(a["id"], spec)
        again = await services.ensure_rule(a["id"], {**spec, "limit": 60.0})
        assert first == again
        rules = (await client.get("/api/v1/alarms/rules", headers=a["headers"]["tenant-admin"])).json()
        assert [(r["name"], r["limit"]) for r in rules] == [("hot", 60.0)]
        with pytest.raises(Exception, match="alarm rule refused"):
            await services.ensure_rule(a["id"], {"name": "x", "kind": "threshold"})
        with pytest.raises(Exception, match="points refused"):
            await services.write(a["id"], [("probe/nope", datetime.now(UTC), 1.0)])
        pts = await services.read(a["id"], "probe/t", datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
        assert pts == []


async def test_a_process_without_platform_data_lends_apps_nothing() -> None:
    assert AppHost([]).services is UNAVAILABLE
    assert UNAVAILABLE.leader is False
    with pytest.raises(ServiceUnavailable):
        await UNAVAILABLE.ensure_device("t", "d")


def test_an_apps_commands_run_as_gongyun_app_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_apps.AppHost, "discover", classmethod(lambda cls, e=None: cls(_entries())))
    runner = CliRunner()
    out = runner.invoke(gongyun_cli, ["app", "doubler", "double", "21"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == "42"
    listing = runner.invoke(gongyun_cli, ["app", "--help"])
    assert "doubler" in listing.output and "new" in listing.output
    assert any(line.split()[1:2] == ["doubler"] for line in listing.output.splitlines() if line.split())
    unknown = runner.invoke(gongyun_cli, ["app", "nosuchapp"])
    assert unknown.exit_code != 0 and "nosuchapp" in unknown.output


def _entries() -> list[Any]:
    from gongyun.apps.discovery import discover

    return discover(DOUBLER)
