"""gongyun demo in-process: simulators -> gateway -> bus -> ingest -> store -> API, commands, faults."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gongyun.platform.demo import start_demo
from tests.apphelp import admin_headers, login, running_app


async def _until(fetch: Any, check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fetch()
        if check(last):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout} s; last: {str(last)[:500]}")


async def test_demo_data_path_commands_and_fault_alarm(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, runtime):
        await start_demo(runtime)
        headers = await admin_headers(client)

        async def status() -> list[dict[str, Any]]:
            return (await client.get("/api/v1/devices/status", headers=headers)).json()  # type: ignore[no-any-return]

        devices = await _until(
            status,
            lambda s: {d["device"] for d in s if d["connected"]} >= {"pump-station", "cnc-cell"},
            30,
            "devices connecting",
        )
        assert all(d["gateway"] == "demo-gateway" for d in devices)
        gw = (await client.get("/api/v1/gateways", headers=headers)).json()
        assert gw[0]["name"] == "demo-gateway" and "buffer_depth" in gw[0]

        async def latest() -> dict[str, Any]:
            return (await client.get("/api/v1/telemetry/latest", headers=headers)).json()  # type: ignore[no-any-return]

        values = await _until(
            latest, lambda v: "pump-station/flow" in v and "cnc-cell/spindle_speed" in v, 30, "samples stored"
        )
        assert values["pump-station/flow"]["quality"] == "good"

        # A confirmed write, recorded with who asked.
        ok = await client.post(
            "/api/v1/devices/pump-station/commands",
            json={"tag": "speed_setpoint", "value": 1200, "reason": "test"},
            headers=headers,
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "confirmed" and ok.json()["requested_by"] == "admin"
        # Out of limits and read-only tags are refused with the reason.
        too_high = await client.post(
            "/api/v1/devices/pump-station/commands",
            json={"tag": "speed_setpoint", "value": 99999},
            headers=headers,
        )
        assert too_high.status_code == 403 and too_high.json()["code"] == "command_refused"
        read_only = await client.post(
            "/api/v1/devices/pump-station/commands", json={"tag": "flow", "value": 1}, headers=headers
        )
        assert read_only.status_code == 403
        history = (await client.get("/api/v1/devices/commands", headers=headers)).json()
        assert {h["status"] for h in history} >= {"confirmed", "refused"}
        # A viewer may look but not command.
        await client.post(
            "/api/v1/users",
            json={"username": "viewer1", "password": "viewer-password", "role": "viewer"},
            headers=headers,
        )
        viewer = await login(client, "viewer1", "viewer-password")
        denied = await client.post(
            "/api/v1/devices/pump-station/commands",
            json={"tag": "speed_setpoint", "value": 1000},
            headers=viewer,
        )
        assert denied.status_code == 403 and denied.json()["code"] == "forbidden"

        # An injected bearing fault makes the pump vibrate over an alarm limit set through the API.
        rule = await client.post(
            "/api/v1/alarms/rules",
            json={
                "kind": "threshold",
                "name": "pump vibration high",
                "tag": "pump-station/vibration",
                "limit": 3.0,
                "deadband": 0.2,
                "priority": "high",
            },
            headers=headers,
        )
        assert rule.status_code == 201, rule.text
        fault = await client.post(
            "/api/v1/demo/faults",
            json={"machine": "pump", "fault": "bearing_wear", "rate": 0.02},
            headers=headers,
        )
        assert fault.status_code == 200, fault.text

        async def alarms() -> list[dict[str, Any]]:
            return (await client.get("/api/v1/alarms", headers=headers)).json()  # type: ignore[no-any-return]

        active = await _until(
            alarms,
            lambda a: any(x["name"] == "pump vibration high" and x["state"] != "normal" for x in a),
            90,
            "the vibration alarm becoming active",
        )
        alarm = next(x for x in active if x["name"] == "pump vibration high")
        assert alarm["state"] == "unack_active"
        ack = await client.post(f"/api/v1/alarms/{alarm['rule_id']}/ack", headers=headers)
        assert ack.status_code == 200, ack.text
        assert ack.json()["state"] == "ack_active"
