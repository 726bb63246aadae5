"""The OpenAPI document declares the problem+json errors and the authentication the API uses."""

from __future__ import annotations

from typing import Any

import httpx

from gongyun.api.public import is_public
from gongyun.platform import Platform
from tests.apphelp import admin_headers

METHODS = ("get", "post", "put", "patch", "delete")


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, item[m]) for p, item in doc["paths"].items() for m in METHODS if m in item]


async def test_every_operation_declares_its_problem_responses(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = app_client
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["schemas"]["ProblemDetails"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "code",
    ]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, op in _operations(doc):
        responses = op["responses"]
        errors = {status: r for status, r in responses.items() if status.startswith(("4", "5"))}
        assert "400" in errors, (method, path)
        for status, response in errors.items():
            if (path, status) == ("/readyz", "503"):  # the readiness report itself, not a problem
                assert list(response["content"]) == ["application/json"]
                continue
            assert list(response["content"]) == ["application/problem+json"], (method, path, status)
        if is_public(method, path):
            assert "security" not in op, (method, path)
            continue
        assert {"401", "403", "404"} <= set(errors), (method, path)
        assert op["security"] == [{"OAuth2Password": []}, {"ApiKey": []}]
        if method != "get":
            assert "409" in errors, (method, path)
        if "requestBody" in op:
            assert {"413", "422"} <= set(errors), (method, path)
    token = doc["paths"]["/api/v1/auth/token"]["post"]["responses"]
    assert {"401", "429"} <= set(token) and "Retry-After" in token["429"]["headers"]
    stream = doc["paths"]["/api/v1/telemetry/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]


async def test_a_wrong_method_names_every_method_of_the_path(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = app_client
    headers = await admin_headers(client)
    r = await client.request("PUT", "/api/v1/assets/devices/0", headers=headers)
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "method_not_allowed"
    assert set(r.headers["allow"].split(", ")) == {"GET", "PATCH", "DELETE"}
    # /assets/tags also fits /assets/{node_id}; the router serves it as the tags listing.
    r = await client.request("PUT", "/api/v1/assets/tags", headers=headers)
    assert (r.status_code, r.headers["allow"]) == (405, "GET")
