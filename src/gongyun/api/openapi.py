"""The OpenAPI document as the server really behaves: its error answers and its authentication.

FastAPI documents only the success answer and its own 422 (as ``application/json``). Every
error here is an RFC 9457 problem document (``api/problems.py``) and most come from places
a route does not see (the middleware's body limit and NUL check, authentication, tenant
scoping, the database's unique constraints), so they are declared in one pass over the
generated document rather than route by route: generated clients and schemathesis then
agree with the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from gongyun.api.problems import PROBLEM_JSON
from gongyun.api.public import is_public

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}
WRITES = {"post", "put", "patch", "delete"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ProblemDetails",
    "description": "An RFC 9457 problem document; `code` is stable, members beside these add detail.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the problem type"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine-readable code, e.g. `not_found`"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Every violation (422 and some 400 answers)",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

SECURITY_SCHEMES: dict[str, Any] = {
    "OAuth2Password": {
        "type": "oauth2",
        "description": "Sign in at /api/v1/auth/token; send the access token as a bearer token.",
        "flows": {"password": {"tokenUrl": "/api/v1/auth/token", "scopes": {}}},
    },
    "ApiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`gy_...`) sent as a bearer token (or in `X-API-Key`).",
    },
}

DESCRIPTIONS = {
    "400": "Bad request: malformed JSON, a NUL character, or a value that cannot be accepted",
    "401": "Not authenticated: no, wrong or expired credentials",
    "403": "Authenticated, but the role lacks a permission this needs",
    "404": "Not found, or not visible to the caller (another tenant's, or an unknown `X-Tenant`)",
    "409": "Conflicts with existing state (a duplicate name, a change the state forbids)",
    "413": "The request body exceeds the server's limit",
    "422": "A body or parameter failed validation; `errors` lists every violation",
    "429": "Too many sign-in attempts from this address: wait `Retry-After` seconds",
}
_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "429": {"Retry-After": {"schema": {"type": "string"}}},
}

# Public operations that still refuse: which extra statuses they answer.
PUBLIC_ERRORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/api/v1/auth/token"): ("401", "429"),
    ("POST", "/api/v1/auth/refresh"): ("401",),
    ("POST", "/api/v1/auth/logout"): ("401",),
    ("POST", "/api/v1/pki/enrol"): ("403",),  # an unknown, spent or expired enrolment token
}


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    """The error statuses an operation can answer."""
    statuses = ["400"]
    if is_public(method, path):
        statuses += PUBLIC_ERRORS.get((method.upper(), path), ())
    else:
        statuses += ["401", "403", "404"]
        if method in WRITES:
            statuses.append("409")
    if "requestBody" in operation:
        statuses.append("413")
    if "422" in operation.get("responses", {}) or "requestBody" in operation or operation.get("parameters"):
        statuses.append("422")
    return sorted(set(statuses))


def _problem_response(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def declare_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Add the problem responses and the security requirements to every operation (in place)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ProblemDetails"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in error_statuses(method, path, operation):
                responses[status] = _problem_response(status)
            if not is_public(method, path):
                operation["security"] = [{"OAuth2Password": []}, {"ApiKey": []}]
    # FastAPI's own validation-error shapes are no longer referenced: every 422 is a problem.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve ``app``'s generated document with the error responses and security declared."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if not getattr(app.state, "openapi_errors_declared", False):
            app.openapi_schema = declare_errors(generate())
            app.state.openapi_errors_declared = True
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
