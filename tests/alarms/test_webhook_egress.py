"""Alarm webhooks reach only public addresses or `outbound_allow`: refused when saved and when sent."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.notify import WebhookConfig, WebhookNotifier
from gongyun.alarms.rules import ThresholdRule
from gongyun.alarms.states import State
from gongyun.telemetry.store import Point
from tests.alarms.servers import webhook_server
from tests.apphelp import admin_headers, running_app

T0 = 1_767_225_600 * 1_000_000  # 2026-01-01, in microseconds
PRIVATE = ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook"]


def _target(url: str) -> dict[str, object]:
    return {"name": f"hook {url}", "config": {"kind": "webhook", "url": url}}


@pytest.mark.parametrize("url", PRIVATE)
async def test_private_webhook_refused_without_outbound_allow(tmp_path: Path, url: str) -> None:
    async with running_app(tmp_path) as (client, _):
        h = await admin_headers(client)
        r = await client.post("/api/v1/alarms/notifiers", json=_target(url), headers=h)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "outbound_target_refused" and r.json()["field"] == "config.url"
        assert (await client.get("/api/v1/alarms/notifiers", headers=h)).json() == []


async def test_allowed_webhook_accepted_and_delivered(tmp_path: Path) -> None:
    allow = [ip_network(n) for n in ("127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8")]
    with webhook_server() as hook:
        async with running_app(tmp_path, outbound_allow=allow) as (client, platform):
            h = await admin_headers(client)
            for url in PRIVATE:
                r = await client.post("/api/v1/alarms/notifiers", json=_target(url), headers=h)
                assert r.status_code == 201, r.text
            sink = f"http://127.0.0.1:{hook.server_port}/hook"
            r = await client.post("/api/v1/alarms/notifiers", json=_target(sink), headers=h)
            assert r.status_code == 201, r.text
            engine = platform.running_telemetry().alarms
            assert engine.outbound_allow == tuple(allow)
        # the engine's webhook notifier, built with the deployment's allow list, posts to loopback
        eng = AlarmEngine(None, outbound_allow=allow)
        eng.put_rule("t1", "r1", ThresholdRule(name="hot", tag="p/t", limit=1))
        eng.set_notifiers("t1", [WebhookNotifier(WebhookConfig(url=sink), eng.outbound_allow)])
        await eng.on_points("t1", [Point("p/t", T0, 2.0)])
        await eng.drain()
        assert [p["json"]["name"] for p in hook.posts] == ["hot"] and eng.notified == 1


async def test_target_refused_at_delivery_is_a_failed_delivery() -> None:
    """A target saved while loopback was allowed is not posted to once the policy refuses it."""
    with webhook_server() as hook:
        eng = AlarmEngine(None)  # no outbound_allow: loopback refused
        eng.put_rule("t1", "r1", ThresholdRule(name="hot", tag="p/t", limit=1))
        url = f"http://127.0.0.1:{hook.server_port}/hook"
        eng.set_notifiers("t1", [WebhookNotifier(WebhookConfig(url=url), eng.outbound_allow)])
        await eng.on_points("t1", [Point("p/t", T0, 2.0)])
        await eng.drain()
        assert hook.posts == [] and eng.notified == 0 and eng.notify_failed == 1
        assert eng.state("t1", "r1") is State.unack_active
