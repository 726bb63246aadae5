"""Render every error as RFC 9457 problem+json with a stable ``code``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gongyun.errors import GongyunError

log = logging.getLogger("gongyun.api")
PROBLEM_JSON = "application/problem+json"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def problem_response(problem: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSONResponse carrying a problem document."""
    return JSONResponse(problem, status_code=int(problem["status"]), media_type=PROBLEM_JSON, headers=headers)


def _problem(status: int, code: str, title: str, detail: str, instance: str) -> dict[str, Any]:
    return {
        "type": f"https://gongyun.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
    }


async def _gongyun_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GongyunError)
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry = exc.details.get("retry_after_s")
    if retry is not None:
        headers["Retry-After"] = str(retry)
    if exc.status >= 500:
        log.error("request failed: %s", exc.message, extra={"code": exc.code})
    return problem_response(exc.to_problem(instance=request.url.path), headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        problem = _problem(
            400, "malformed_json", "Malformed JSON", "the body is not valid JSON", request.url.path
        )
    else:
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        problem = _problem(422, "validation_failed", "Validation failed", detail, request.url.path)
    problem["errors"] = errors
    return problem_response(problem)


def _allowed_methods(request: Request) -> str:
    """Every method of the path template the router picks (it names only one route's methods)."""
    template: str | None = None
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is None or not regex.match(request.url.path):
            continue
        template = template or route.path  # routes are tried in order: the first template wins
        if route.path == template:
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    title = code.replace("_", " ").capitalize()
    problem = _problem(exc.status_code, code, title, str(exc.detail), request.url.path)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(problem, headers or None)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A unique constraint caught a race that the pre-checks could not see.
    problem = _problem(
        409, "conflict", "Conflict", "the object conflicts with an existing one", request.url.path
    )
    return problem_response(problem)


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value (NUL byte, number out of range, ...): the caller's fault.
    problem = _problem(
        400, "invalid_input", "Invalid input", "a value is not acceptable to the database", request.url.path
    )
    return problem_response(problem)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    problem = _problem(500, "internal", "Internal error", "an unexpected error occurred", request.url.path)
    return problem_response(problem)


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(GongyunError, _gongyun_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected)
