"""Malformed JSON, wrong types, unknown fields, oversize bodies: 4xx problem+json, never 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gongyun.platform import Platform
from tests.apphelp import admin_headers, running_app


def _is_problem(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["detail"]


async def test_malformed_json(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    headers = {**(await admin_headers(client)), "content-type": "application/json"}
    resp = await client.post("/api/v1/tenants", content=b'{"name": "x",', headers=headers)
    _is_problem(resp, 400, "malformed_json")


@pytest.mark.parametrize(
    "body",
    [
        {"name": 12},
        {"name": ["a"]},
        {},
        {"name": "ok-name", "display_name": {"nested": True}},
    ],
)
async def test_wrong_types(app_client: tuple[httpx.AsyncClient, Platform], body: dict[str, object]) -> None:
    client, _ = app_client
    resp = await client.post("/api/v1/tenants", json=body, headers=await admin_headers(client))
    _is_problem(resp, 422, "validation_failed")
    assert resp.json()["errors"]


async def test_unknown_fields_rejected(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    resp = await client.post(
        "/api/v1/apikeys",
        json={"name": "k", "role": "viewer", "is_admin": True},
        headers=await admin_headers(client),
    )
    _is_problem(resp, 422, "validation_failed")
    assert "is_admin" in resp.text


async def test_invalid_enum_and_bounds(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    headers = await admin_headers(client)
    _is_problem(
        await client.post("/api/v1/apikeys", json={"name": "k", "role": "god"}, headers=headers),
        422,
        "validation_failed",
    )
    _is_problem(
        await client.post(
            "/api/v1/apikeys", json={"name": "k", "role": "viewer", "expires_in_days": -1}, headers=headers
        ),
        422,
        "validation_failed",
    )
    weak = await client.post(
        "/api/v1/users", json={"username": "u1", "password": "short", "role": "viewer"}, headers=headers
    )
    _is_problem(weak, 422, "validation_failed")
    bad_name = await client.post("/api/v1/tenants", json={"name": "Bad Name!"}, headers=headers)
    _is_problem(bad_name, 422, "validation_failed")
    dup = await client.post("/api/v1/tenants", json={"name": "default"}, headers=headers)
    _is_problem(dup, 409, "conflict")


async def test_body_over_limit(tmp_path: Path) -> None:
    async with running_app(tmp_path, max_body_bytes=2048) as (client, _):
        headers = await admin_headers(client)
        big = {"name": "x" * 4000}
        _is_problem(await client.post("/api/v1/tenants", json=big, headers=headers), 413, "payload_too_large")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        chunked = await client.post(
            "/api/v1/tenants", content=chunks(), headers={**headers, "content-type": "application/json"}
        )
        _is_problem(chunked, 413, "payload_too_large")
        # The server goes on serving.
        assert (await client.get("/healthz")).status_code == 200


async def test_unknown_route_and_method(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    _is_problem(await client.get("/api/v1/nope"), 404, "not_found")
    _is_problem(await client.put("/healthz"), 405, "method_not_allowed")


async def test_form_login_missing_fields(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    _is_problem(await client.post("/api/v1/auth/token", data={"username": "admin"}), 422, "validation_failed")
    _is_problem(
        await client.post("/api/v1/auth/refresh", json={"refresh_token": "short"}), 422, "validation_failed"
    )
    _is_problem(
        await client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 40}), 401, "token_invalid"
    )
