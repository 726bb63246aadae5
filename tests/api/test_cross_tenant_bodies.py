"""The cross-tenant probe over request bodies and non-GET query parameters.

``test_openapi_auth`` names tenant B's objects in path parameters and ``test_cross_tenant_queries``
in the query strings of GET operations. Here each of tenant A's four caller kinds sends the write
operations whose *body* names an object (an alarm rule on B's tag, a device under B's equipment,
an export of B's tag, an app's machine on B's line ...) once with B's object and once with a
missing one: both must answer alike (an id of B's like a missing id; a tag *name* is the tenant's
own namespace, so a rule on the name of B's tag is A's rule on A's data and fires on nothing of
B's), nothing of B may show, and B's objects stay as they were.
Every non-GET operation whose body or query string has a field naming an object must be probed
here, so a new one cannot slip past.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gongyun.api.public import is_public
from gongyun.platform import Platform
from tests.api.test_cross_tenant_queries import MISSING, _b_values, _secrets, _seed_b
from tests.api.test_openapi_auth import PARAM, _operations, _tenant
from tests.apphelp import admin_headers

NOW = datetime.now(UTC).replace(microsecond=0)
START, END = (NOW - timedelta(days=1)).isoformat(), (NOW + timedelta(hours=1)).isoformat()
_N = itertools.count()
# body (or query) fields that name one of the tenant's objects
OBJECT_FIELDS = {
    "tag", "tags", "device", "device_id", "equipment_id", "equipment", "asset_id", "rule_id", "node_id",
    "parent_id", "machine_id", "line", "good_tag", "scrap_tag", "total_tag",
}  # fmt: skip
# Operations whose object field is not another tenant's object, and why.
NOT_TENANT_OBJECTS = {
    # prefixes are allocated from one platform-wide namespace: a taken prefix is taken for everyone
    ("POST", "/api/v1/identifiers/prefixes"),
    # the names of the demo's simulated machines (pump, cnc, packaging), not objects
    ("POST", "/api/v1/demo/faults"),
    # apps' own names for machines, lots and products, scoped by the app's tables per tenant and
    # checked by the apps' own tests (they do not name the platform's objects)
    ("POST", "/api/v1/apps/scheduling/orders"),
    ("POST", "/api/v1/apps/scheduling/repair"),
    ("POST", "/api/v1/apps/trace/mint"),
    ("POST", "/api/v1/apps/trace/items"),
    ("POST", "/api/v1/apps/trace/links"),
    ("POST", "/api/v1/apps/trace/partners"),
    ("PUT", "/api/v1/apps/scheduling/machines/{machine_id}"),
    ("POST", "/api/v1/apps/maintenance/models/rollback"),
    ("POST", "/api/v1/apps/maintenance/rul/telemetry-models"),
}

Body = Callable[[dict[str, str]], dict[str, Any]]


def _name() -> str:
    return f"probe-{next(_N)}"


def _rule(o: dict[str, str]) -> dict[str, Any]:
    return {"kind": "threshold", "name": _name(), "tag": o["tag"], "limit": 1}


def _oee_machine(o: dict[str, str]) -> dict[str, Any]:
    line, tag = o["equipment_id"], o["tag"]
    return {"name": _name(), "line": line, "mapping": {}, "ideal_cycle_s": 1, "good_tag": tag}


# (method, path) -> a body naming the objects in ``o`` (B's, or missing ones); path ids are A's own
PROBES: dict[tuple[str, str], Body] = {
    ("POST", "/api/v1/alarms/rules"): _rule,
    ("PUT", "/api/v1/alarms/rules/{rule_id}"): _rule,
    ("POST", "/api/v1/classification/exports"): lambda o: {
        "tag": o["tag"],
        "start": START,
        "end": END,
        "reason": "probe",
    },
    ("POST", "/api/v1/assets"): lambda o: {"level": "site", "name": _name(), "parent_id": o["equipment_id"]},
    ("POST", "/api/v1/assets/devices"): lambda o: {"name": _name(), "equipment_id": o["equipment_id"]},
    ("PATCH", "/api/v1/assets/devices/{device_id}"): lambda o: {"equipment_id": o["equipment_id"]},
    ("POST", "/api/v1/telemetry/clean"): lambda o: {"tag": o["tag"], "start": START, "end": END},
    ("PUT", "/api/v1/telemetry/retention"): lambda o: {
        "asset_id": o["equipment_id"],
        "raw_days": 30,
        "rollup_days": 60,
    },
    ("POST", "/api/v1/devices/{device}/commands"): lambda o: {"tag": o["tag"].split("/", 1)[1], "value": 1},
    ("POST", "/api/v1/gateways/{group}/{node}/commands"): lambda o: {
        "device": o["tag"].split("/", 1)[0],
        "tag": "temp",
        "value": 1,
    },
    ("PUT", "/api/v1/ids/links"): lambda o: {"endpoint": "10.0.0.9:502", "device": o["tag"].split("/", 1)[0]},
    ("POST", "/api/v1/apps/maintenance/work-orders"): lambda o: {
        "equipment": o["equipment_id"],
        "title": "probe",
    },
    ("POST", "/api/v1/apps/maintenance/detectors"): lambda o: {
        "equipment": o["equipment_id"],
        "tags": [o["tag"]],
        "start": START,
        "end": END,
    },
    ("POST", "/api/v1/apps/oee/machines"): _oee_machine,
    ("PUT", "/api/v1/apps/oee/machines/{machine_id}"): _oee_machine,
    ("POST", "/api/v1/apps/quality/charts"): lambda o: {"name": _name(), "kind": "imr", "tag": o["tag"]},
}


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _object_fields(op: dict[str, Any], doc: dict[str, Any]) -> set[str]:
    """Object-naming fields of an operation's JSON body (every variant of a union) and query string."""
    fields = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"} & OBJECT_FIELDS
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body is None:
        return fields
    schema = _resolve(body, doc)
    for variant in [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]:
        fields |= set(_resolve(variant, doc).get("properties", {})) & OBJECT_FIELDS
    return fields


async def test_bodies_and_non_get_queries_never_reach_tenant_b(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = app_client
    root = await admin_headers(client)
    a = await _tenant(client, root, "alpha")
    b = await _tenant(client, root, "beta")
    await _seed_b(client, b)
    doc = (await client.get("/openapi.json")).json()
    writes = [(m, p) for m, p in _operations(doc) if m != "GET" and not is_public(m, p)]
    naming = {(m, p) for m, p in writes if _object_fields(doc["paths"][p][m.lower()], doc)}
    unprobed = naming - set(PROBES) - NOT_TENANT_OBJECTS
    assert not unprobed, f"write operations naming objects with no probe here: {sorted(unprobed)}"
    stale = set(PROBES) - {(m, p) for m, p in writes}
    assert not stale, f"probes of operations the API no longer has: {sorted(stale)}"
    queried = {
        (m, p) for m, p in writes if {q["name"] for q in doc["paths"][p][m.lower()].get("parameters", [])
        if q["in"] == "query"} & OBJECT_FIELDS
    }  # fmt: skip
    assert queried <= set(PROBES), f"non-GET operations with object query parameters: {queried}"
    b_objects, secrets_of_b = _b_values(b), _secrets(b)
    probed = 0
    for role, headers in a["callers"].items():
        for (method, path), body in PROBES.items():
            url = PARAM.sub(lambda m: a["ids"].get(m.group(1).split(":")[0], "0" * 32), path)
            where = f"{role}: {method} {path}"
            resp_b = await client.request(method, url, json=body(b_objects), headers=headers)
            resp_none = await client.request(method, url, json=body(MISSING), headers=headers)
            assert resp_b.status_code == resp_none.status_code, (
                f"{where}: B's object answers {resp_b.status_code} {resp_b.text[:300]}, "
                f"a missing one {resp_none.status_code} {resp_none.text[:300]}"
            )
            leaked = [s for s in secrets_of_b if s in resp_b.text]
            assert not leaked, f"{where} leaked {leaked}"
            assert resp_b.status_code < 500, f"{where} failed: {resp_b.text[:300]}"
            probed += 1
    assert probed == 4 * len(PROBES)
    # Tag names are the tenant's own namespace: A's rule on the name of B's tag watches A's data.
    # B's values over that rule's limit raise nothing in A.
    await _seed_b(client, b)
    admin_b = b["callers"]["tenant-admin"]
    for _ in range(100):  # the control: B's own rule on its tag has seen the values
        own = (await client.get("/api/v1/alarms", headers=admin_b)).json()
        if any(r["name"] == "hot-beta" and r["value"] is not None for r in own):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"B's own rule never saw B's values: {own}")
    alarms_a = await client.get("/api/v1/alarms", headers=a["callers"]["tenant-admin"])
    assert alarms_a.status_code == 200, alarms_a.text
    probes = [r for r in alarms_a.json() if r["name"].startswith("probe-")]
    fired = [
        (r["name"], r["tags"], r["state"], r["value"])
        for r in probes
        if r["value"] is not None or r["state"] not in ("normal", "shelved")  # A's own rule was shelved
    ]
    assert probes and not fired, fired
    # B's objects are as they were: its rule still watches its tag, its device has no new parent
    rule = (await client.get(f"/api/v1/alarms/rules/{b['ids']['rule_id']}", headers=admin_b)).json()
    assert rule["tag"] == b_objects["tag"], rule
    children = (await client.get(f"/api/v1/assets/{b['ids']['node_id']}", headers=admin_b)).json()
    assert "probe-" not in str(children), children
