"""Create one object of every kind a path parameter can name, inside one tenant, via the API.

The cross-tenant test needs, for every ``{param}`` in the OpenAPI schema, an object that
belongs to tenant B. A room that adds a route with a new path parameter adds its factory here.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

# Path parameter values that name nothing at all (the "does not exist" baseline).
NONEXISTENT: dict[str, str] = {
    "tenant_id": "0" * 32,
    "user_id": "0" * 32,
    "key_id": "0" * 32,
    "node_id": "0" * 32,
    "device_id": "0" * 32,
    "tag_id": "0" * 32,
    "rule_id": "0" * 32,
    "notifier_id": "0" * 32,
    "command_id": "0" * 32,
    "prefix": "88.999.999",
    "handle": "88.999.999/NOTHING-HERE",
    "device": "no-such-device",
    "name": "nosuchapp",
    "sensor": "no-such-sensor",
    "event_id": "0" * 32,
    "incident_id": "0" * 32,
    "request_id": "0" * 32,
    "serial": "1234567890123456789",
    "group": "NoSuchGroup",
    "node": "no-such-node",
}


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    resp = await client.post(url, json=body, headers=headers)
    assert resp.status_code in (200, 201), f"POST {url}: {resp.status_code} {resp.text}"
    return resp.json()


async def make_objects(
    client: httpx.AsyncClient, headers: dict[str, str], base: dict[str, str], tag: str
) -> dict[str, str]:
    """Objects of one tenant for every known path parameter; ``base`` holds tenant/user/key ids."""
    ids = dict(base)
    # apps are platform-wide, not a tenant's objects; this platform runs none, so any name is absent
    ids["name"] = "nosuchapp"
    node = await _post(client, "/api/v1/assets", {"level": "enterprise", "name": f"ent-{tag}"}, headers)
    ids["node_id"] = node["id"]
    device = await _post(
        client, "/api/v1/assets/devices", {"name": f"dev-{tag}", "protocol": "modbus"}, headers
    )
    ids["device_id"] = device["id"]
    ids["device"] = device["name"]
    tag_row = await _post(client, f"/api/v1/assets/devices/{device['id']}/tags", {"name": "temp"}, headers)
    ids["tag_id"] = tag_row["id"]
    export = await _post(
        client,
        "/api/v1/classification/exports",
        {
            "tag": f"dev-{tag}/temp",
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-02T00:00:00Z",
            "reason": "probe",
        },
        headers,
    )
    ids["request_id"] = export["id"]
    from gongyun.security.pki.ca import make_csr, new_key

    token = await _post(client, "/api/v1/pki/tokens", {"group": f"G{tag}", "node": "n1"}, headers)
    enrolled = await _post(
        client, "/api/v1/pki/enrol", {"token": token["token"], "csr": make_csr(new_key(), "x").decode()}, {}
    )
    ids["serial"] = enrolled["serial"]
    ids["group"], ids["node"] = f"G{tag}", "n1"  # the edge node enrolled: the tenant's remote gateway
    rule = await _post(
        client,
        "/api/v1/alarms/rules",
        {"kind": "threshold", "name": f"hot-{tag}", "tag": f"dev-{tag}/temp", "limit": 80},
        headers,
    )
    ids["rule_id"] = rule["id"]
    shelved = await _post(client, f"/api/v1/alarms/{rule['id']}/shelve", {"duration_s": 60}, headers)
    ids["command_id"] = shelved["command_id"]
    notifier = await _post(
        client,
        "/api/v1/alarms/notifiers",
        {"name": f"hook-{tag}", "config": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}},
        headers,
    )
    ids["notifier_id"] = notifier["id"]
    prefix = f"88.{100 + uuid.uuid4().int % 800}.{uuid.uuid4().int % 100000}"
    await _post(client, "/api/v1/identifiers/prefixes", {"prefix": prefix}, headers)
    for status in ("verified", "active"):
        await _post(client, f"/api/v1/identifiers/prefixes/{prefix}/status", {"status": status}, headers)
    ids["prefix"] = prefix
    handle = f"{prefix}/OBJ-{tag}"
    put = await client.put(
        f"/api/v1/identifiers/records/{handle}",
        json={
            "values": [
                {
                    "index": 1,
                    "type": "URL",
                    "data": {"format": "string", "value": f"https://secret-{tag}.example/x"},
                }
            ]
        },
        headers=headers,
    )
    assert put.status_code in (200, 201), put.text
    ids["handle"] = handle
    sensor = f"sensor-{tag}"
    event = {
        "id": uuid.uuid4().hex,
        "rule_id": "B-FC-SCAN",
        "msg": "Modbus function-code scan",
        "severity": "medium",
        "technique": "T0888",
        "ts": 1.0e9,
        "proto": "modbus",
        "src": "10.9.9.9:4000",
        "dst": "10.0.0.1:502",
        "key": uuid.uuid4().hex,
        "detail": {},
    }
    ingested = await _post(client, f"/api/v1/ids/sensors/{sensor}/events", {"events": [event]}, headers)
    ids["sensor"], ids["event_id"], ids["incident_id"] = sensor, event["id"], ingested["incidents_opened"][0]
    return ids
