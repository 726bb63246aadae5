"""The security events centre: bus intake, de-dup, incidents, notifications, export, tenancy."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest

from gongyun.platform import Platform
from gongyun.security.ids.capture import read_capture
from gongyun.security.ids.sensor import Sensor, SensorConfig
from tests.apphelp import admin_headers, running_app


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """The app with loopback allowed as an outbound target (the SOC webhook sink listens there)."""
    async with running_app(tmp_path, outbound_allow=[ip_network("127.0.0.0/8")]) as pair:
        yield pair


async def _tenant(client: httpx.AsyncClient, root: dict[str, str], name: str) -> tuple[str, dict[str, str]]:
    tenant = (await client.post("/api/v1/tenants", json={"name": name}, headers=root)).json()
    return tenant["id"], {**root, "X-Tenant": tenant["id"]}


async def _webhook() -> tuple[asyncio.Server, int, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        got.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], got


async def _wait(pred: Any, timeout: float = 10.0) -> Any:
    for _ in range(int(timeout / 0.05)):
        value = await pred()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_sensor_to_bus_to_incident_workflow(
    app_client: tuple[httpx.AsyncClient, Platform], ics_dir: Path
) -> None:
    client, platform = app_client
    root = await admin_headers(client)
    tenant, h = await _tenant(client, root, "plant")
    _, h2 = await _tenant(client, root, "elsewhere")
    server, port, hooks = await _webhook()
    r = await client.post(
        "/api/v1/alarms/notifiers",
        headers=h,
        json={"name": "soc", "config": {"kind": "webhook", "url": f"http://127.0.0.1:{port}/"}},
    )
    assert r.status_code == 201, r.text
    r = await client.put(
        "/api/v1/ids/links",
        headers=h,
        json={
            "endpoint": "127.0.0.1:502",
            "device": "plc-7",
            "asset_path": "site/line/plc-7",
            "identifier": "88.100.1/PLC-7",
        },
    )
    assert r.status_code == 200, r.text
    # a sensor reads the reference capture and ships through the platform's bus
    sensor = Sensor(SensorConfig(name="s1", tenant=tenant))
    sensor.feed(read_capture(ics_dir / "modbus_example.pcap", sensor.stats))
    stop = asyncio.Event()
    stop.set()
    await sensor.ship(platform.bus, stop)
    events = await _wait(lambda: _json(client, "/api/v1/ids/events", h, lambda v: len(v) >= 7))
    assert {e["rule_id"] for e in events} >= {
        "1001",
        "1002",
        "1006",
        "1007",
        "1011",
        "B-FC-SCAN",
        "B-UNIT-SCAN",
    }
    dup = [e for e in events if e["rule_id"] == "1002"]
    assert len(dup) == 1 and dup[0]["count"] == 2  # request and response halves: one event, counted twice
    assert all(e["link"]["device"] == "plc-7" for e in events if e["dst"] == "127.0.0.1:502")
    incidents = (await client.get("/api/v1/ids/incidents", headers=h)).json()
    assert len(incidents) == 1  # one attacker, one target
    inc = incidents[0]
    assert inc["state"] == "new" and inc["severity"] == "high" and "T0843" in inc["techniques"]
    # notified when it opened and again when it escalated (events arrive in several messages)
    await _wait(lambda: asyncio.sleep(0, result=any(k["priority"] == "high" for k in hooks)))
    assert hooks[0]["rule_id"] == f"ids:{inc['id']}" and len(hooks) <= 3
    sensors = (await client.get("/api/v1/ids/sensors", headers=h)).json()
    assert sensors[0]["name"] == "s1" and sensors[0]["packets"] == 100
    # workflow: investigate, assign, note, resolve; a resolved incident cannot be contained
    url = f"/api/v1/ids/incidents/{inc['id']}"
    assert (
        await client.patch(url, headers=h, json={"state": "investigating", "assignee": "li.wei"})
    ).status_code == 200
    assert (await client.patch(url, headers=h, json={"note": "port mirror confirms"})).status_code == 200
    done = (await client.patch(url, headers=h, json={"state": "resolved"})).json()
    assert done["state"] == "resolved" and done["assignee"] == "li.wei"
    assert [t["kind"] for t in done["timeline"]][-4:] == ["state", "assign", "note", "state"]
    bad = await client.patch(url, headers=h, json={"state": "contained"})
    assert bad.status_code == 409 and bad.json()["code"] == "ids_incident_transition_invalid"
    detail = (await client.get(url, headers=h)).json()
    assert len(detail["events"]) == inc["event_count"]
    # SIEM export
    syslog = (await client.get("/api/v1/ids/export?format=syslog", headers=h)).text.splitlines()
    assert len(syslog) == len(events)
    assert re.match(
        r"^<10[5-8]>1 \d{4}-\d\d-\d\dT[\d:.]+Z gongyun gongyun-ids - \S+ \[gongyunIds@53999 id=\"", syslog[0]
    )
    assert 'device="plc-7"' in syslog[0]
    cef = (await client.get("/api/v1/ids/export?format=cef", headers=h)).text.splitlines()
    assert cef[0].startswith("CEF:0|Gongyun|IDS|") and " src=127.0.0.1 " in cef[0] and "dpt=502" in cef[0]
    overview = (await client.get("/api/v1/ids/overview?hours=87000", headers=h)).json()
    assert overview["map"] and overview["map"][0]["anomalous"] is True
    assert overview["asset_risk"][0]["endpoint"] == "127.0.0.1:502"
    assert overview["incidents"]["by_state"] == {"resolved": 1}
    # the other tenant sees nothing of it
    for path in ("/api/v1/ids/events", "/api/v1/ids/incidents", "/api/v1/ids/sensors", "/api/v1/ids/links"):
        assert (await client.get(path, headers=h2)).json() == []
    assert (await client.get(url, headers=h2)).status_code == 404
    assert (await client.get("/api/v1/ids/export", headers=h2)).text == ""
    server.close()


async def test_http_ingest_and_baseline_accept_goes_to_the_sensor(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, platform = app_client
    root = await admin_headers(client)
    tenant, h = await _tenant(client, root, "plant2")
    learn = {"kind": "flows", "key": "modbus 10.0.0.66 10.0.0.1:502"}
    ev = {
        "id": uuid.uuid4().hex,
        "rule_id": "L-NEW-FLOW",
        "msg": "new flow",
        "severity": "medium",
        "technique": "T0886",
        "ts": 1.7e9,
        "proto": "modbus",
        "src": "10.0.0.66:4000",
        "dst": "10.0.0.1:502",
        "key": "k1",
        "detail": {"learn": learn},
    }
    r = await client.post("/api/v1/ids/sensors/s9/events", headers=h, json={"events": [ev, ev]})
    assert r.status_code == 201 and len(r.json()["incidents_opened"]) == 1
    assert len((await client.get("/api/v1/ids/events", headers=h)).json()) == 1  # same id twice: stored once
    sensor = Sensor(SensorConfig(name="s9", tenant=tenant, learn_s=1))
    sub = await sensor.control(platform.bus)
    r = await client.post(f"/api/v1/ids/events/{ev['id']}/accept", headers=h)
    assert r.json()["accepted"] is True
    await _wait(
        lambda: asyncio.sleep(0, result="modbus 10.0.0.66 10.0.0.1:502" in sensor.detector.baseline.flows)
    )
    audit = (await client.get("/api/v1/audit?action=ids.baseline.accept", headers=h)).json()
    assert audit and audit[0]["target"] == ev["id"]
    await sub.close()


async def _json(client: httpx.AsyncClient, url: str, headers: dict[str, str], ok: Any) -> Any:
    value = (await client.get(url, headers=headers)).json()
    return value if ok(value) else None


async def test_a_sensor_ships_over_http_with_an_api_key(
    app_client: tuple[httpx.AsyncClient, Platform], ics_dir: Path
) -> None:
    from gongyun.security.ids.sensor import HttpBus

    client, _ = app_client
    root = await admin_headers(client)
    tenant, h = await _tenant(client, root, "plant3")
    key = (
        await client.post("/api/v1/apikeys", json={"name": "sensor", "role": "tenant-admin"}, headers=h)
    ).json()
    sensor = Sensor(SensorConfig(name="edge-tap", tenant=tenant))
    sensor.feed(read_capture(ics_dir / "modbus_example.pcap", sensor.stats))
    transport = client._transport  # the app in-process
    http = HttpBus("http://test", key["key"], transport=transport)
    stop = asyncio.Event()
    stop.set()
    await sensor.ship(http, stop)
    await http.close()
    assert sensor.outbox.depth() == 0
    events = (await client.get("/api/v1/ids/events", headers=h)).json()
    assert len(events) == 7
    [s] = (await client.get("/api/v1/ids/sensors", headers=h)).json()
    assert s["name"] == "edge-tap" and s["packets"] == 100
