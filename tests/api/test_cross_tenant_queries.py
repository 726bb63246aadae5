"""The cross-tenant probe over query strings, listings, exports and live streams.

``test_openapi_auth`` names tenant B's objects in *path* parameters. Here every non-public GET
operation of the schema is called by each of tenant A's four caller kinds (tenant admin,
engineer and operator sessions, a viewer API key) with B's objects in its *query* parameters
(``?tag=``, ``?device_id=``, ``?prefix=`` ...), and compared with the same call naming nothing;
every listing, export and history is searched for B's data; and the live stream is read while B
ingests. B's data must never show, and B's objects must answer exactly like missing ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gongyun.api.public import is_public
from gongyun.platform import Platform
from tests.api.test_openapi_auth import PARAM, _operations, _tenant
from tests.apphelp import admin_headers

SECRET_VALUE = 31337.25  # only tenant B ever stores this value
NOW = datetime.now(UTC).replace(microsecond=0)


def _b_values(b: dict[str, Any]) -> dict[str, str]:
    """Query parameter name -> the B object it names."""
    ids = b["ids"]
    return {
        "tag": f"{ids['device']}/temp",
        "device_id": ids["device_id"],
        "equipment_id": ids["node_id"],
        "equipment": ids["node_id"],
        "rule_id": ids["rule_id"],
        "prefix": ids["prefix"],
        "machine_id": ids["device_id"],
        "line": ids["node_id"],
    }


MISSING = {
    "tag": "dev-nothing/temp",
    "device_id": "0" * 32,
    "equipment_id": "0" * 32,
    "equipment": "0" * 32,
    "rule_id": "0" * 32,
    "prefix": "88.999.999",
    "machine_id": "0" * 32,
    "line": "0" * 32,
}


def _default(param: dict[str, Any]) -> Any:
    """A harmless valid value for a parameter that names no object."""
    schema = param.get("schema", {})
    options = schema.get("anyOf", [schema])
    schema = next((o for o in options if o.get("type") != "null"), schema)
    name = param["name"]
    if schema.get("format") == "date-time" or name in {"start", "since", "before", "end"}:
        return (
            NOW + timedelta(hours=1) if name in {"end", "before"} else NOW - timedelta(days=1)
        ).isoformat()
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1
    if kind == "boolean":
        return "false"
    if kind == "array":
        return "x"
    return "x"


def _query(op: dict[str, Any], named: dict[str, str]) -> dict[str, Any] | None:
    """Query parameters naming the objects in ``named``, defaults for other required ones."""
    params: dict[str, Any] = {}
    names_object = False
    for p in op.get("parameters", []):
        if p["in"] != "query":
            continue
        if p["name"] in named:
            params[p["name"]] = named[p["name"]]
            names_object = True
        elif p.get("required"):
            params[p["name"]] = _default(p)
    return params if names_object else None


def _secrets(b: dict[str, Any]) -> list[str]:
    return [
        b["user"]["username"],
        "secret-beta.example",
        "hook-beta",
        "ent-beta",
        "hot-beta",
        str(SECRET_VALUE),
        b["ids"]["device_id"],
        b["ids"]["rule_id"],
    ]


async def _seed_b(client: httpx.AsyncClient, b: dict[str, Any]) -> None:
    """B's telemetry (over its alarm limit, so B has alarm history too)."""
    h = b["callers"]["tenant-admin"]
    tag = f"{b['ids']['device']}/temp"
    samples = [
        {"tag": tag, "value": SECRET_VALUE, "ts": (NOW - timedelta(minutes=10 - i)).isoformat()}
        for i in range(5)
    ]
    r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == 5, r.text


async def _read(
    client: httpx.AsyncClient, path: str, params: dict[str, str], headers: dict[str, str], got: list[bytes]
) -> None:
    async with client.stream("GET", path, params=params, headers=headers) as resp:
        got.append(str(resp.status_code).encode())
        async for chunk in resp.aiter_bytes():
            got.append(chunk)


def _is_stream(op: dict[str, Any]) -> bool:
    return "text/event-stream" in str(op.get("responses", {}))


async def test_query_strings_listings_and_exports_never_reach_tenant_b(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = app_client
    root = await admin_headers(client)
    a = await _tenant(client, root, "alpha")
    b = await _tenant(client, root, "beta")
    await _seed_b(client, b)
    own = await client.get(
        "/api/v1/telemetry/raw",
        params={
            "tag": _b_values(b)["tag"],
            "start": (NOW - timedelta(hours=1)).isoformat(),
            "end": NOW.isoformat(),
        },
        headers=b["callers"]["operator"],
    )
    assert str(SECRET_VALUE) in own.text, own.text  # the search below would find B's data
    schema = (await client.get("/openapi.json")).json()
    secrets_of_b = _secrets(b)
    b_named, ops = _b_values(b), []
    for method, path in _operations(schema):
        if method != "GET" or is_public(method, path):
            continue
        op = schema["paths"][path]["get"]
        if _is_stream(op):
            continue
        ops.append((path, op))
    probed = listed = 0
    for role, headers in a["callers"].items():
        for path, op in ops:
            # A's own objects in the path, so the handler is reached (a name it has none for: zeros)
            url = PARAM.sub(lambda m: a["ids"].get(m.group(1).split(":")[0], "0" * 32), path)
            where = f"{role}: GET {path}"
            b_query = _query(op, b_named)
            if b_query is not None:
                resp_b = await client.get(url, params=b_query, headers=headers)
                resp_none = await client.get(url, params=_query(op, MISSING), headers=headers)
                assert resp_b.status_code == resp_none.status_code, (
                    f"{where} {b_query}: B's object answers {resp_b.status_code}, a missing one "
                    f"{resp_none.status_code}: {resp_b.text[:300]}"
                )
                leaked = [s for s in secrets_of_b if s in resp_b.text]
                assert not leaked, f"{where} {b_query} leaked {leaked}"
                probed += 1
            # the plain call (a listing, a history, an export) shows nothing of B either
            plain = {
                p["name"]: _default(p)
                for p in op.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            if PARAM.search(path) or "tag" in plain:
                continue
            resp = await client.get(url, params=plain, headers=headers)
            leaked = [s for s in secrets_of_b if s in resp.text]
            assert not leaked, f"{where} (listing) leaked {leaked}"
            listed += 1
    assert probed >= 4 * 10 and listed >= 4 * 20, (probed, listed)


async def test_live_stream_does_not_carry_tenant_b_points(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = app_client
    root = await admin_headers(client)
    a = await _tenant(client, root, "alpha")
    b = await _tenant(client, root, "beta")
    schema = (await client.get("/openapi.json")).json()
    streams = [p for m, p in _operations(schema) if m == "GET" and _is_stream(schema["paths"][p]["get"])]
    assert "/api/v1/telemetry/stream" in streams
    tag_b = f"{b['ids']['device']}/temp"
    for role, headers in a["callers"].items():
        for path in streams:
            for params in ({"tag": tag_b}, {}):
                got: list[bytes] = []

                task = asyncio.create_task(_read(client, path, params, headers, got))
                await asyncio.sleep(0.2)
                await _seed_b(client, b)
                await asyncio.sleep(0.4)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await task
                text = b"".join(got).decode(errors="replace")
                assert str(SECRET_VALUE) not in text and tag_b not in text.split("\n", 1)[-1], (
                    f"{role}: {path} {params} carried B's points: {text[:300]}"
                )
