"""Errors the SDK raises: every non-2xx answer becomes one exception carrying the problem document.

The server answers errors as RFC 9457 ``application/problem+json`` with a stable ``code``;
the status picks the class, the ``code`` tells cases of one status apart::

    GongyunApiError                 any error answer: status, code, title, detail, problem
    ├── ClientError                 4xx
    │   ├── BadRequest              400 (malformed_json, invalid_input, identifier_malformed ...)
    │   ├── Unauthenticated         401 (unauthenticated, invalid_credentials, token_invalid)
    │   ├── Forbidden               403 forbidden
    │   ├── NotFound                404 not_found
    │   ├── Conflict                409 conflict
    │   ├── PayloadTooLarge         413 payload_too_large
    │   ├── ValidationFailed        422 validation_failed (``errors`` lists every violation)
    │   └── RateLimited             429 rate_limited, login_throttled (``retry_after`` seconds)
    └── ServerError                 5xx
        └── ServiceUnavailable      503 (service_unavailable, database_unavailable ...)

Network failures are httpx's own exceptions (``httpx.TransportError``), not wrapped.
"""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


class GongyunApiError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, problem: dict[str, Any], response: httpx.Response | None = None) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code") or f"http_{status}")
        self.title = str(problem.get("title") or "")
        self.detail = str(problem.get("detail") or "")
        self.response = response
        self.request_id = response.headers.get("x-request-id") if response is not None else None
        super().__init__(f"{status} {self.code}: {self.detail or self.title}")


class ClientError(GongyunApiError):
    """A 4xx answer: the request was wrong and retrying it unchanged will not help."""


class BadRequest(ClientError):
    """400: malformed JSON, a value the server cannot accept, a malformed identifier."""


class Unauthenticated(ClientError):
    """401: no, wrong or expired credentials."""


class Forbidden(ClientError):
    """403: authenticated, but the role lacks the permission."""


class NotFound(ClientError):
    """404: the object does not exist or belongs to another tenant."""


class Conflict(ClientError):
    """409: a duplicate name, or a change the current state does not allow."""


class PayloadTooLarge(ClientError):
    """413: the request body exceeded the server's limit."""


class ValidationFailed(ClientError):
    """422: the body or a parameter failed validation; ``errors`` lists every violation."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Every violation as ``{"loc": [...], "msg": ..., "type": ...}``."""
        errors = self.problem.get("errors")
        return list(errors) if isinstance(errors, list) else []


class RateLimited(ClientError):
    """429: too many requests (or sign-in attempts); wait ``retry_after`` seconds."""

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait, from ``Retry-After`` or the problem's ``retry_after_s``."""
        value = self.problem.get("retry_after_s")
        if value is None and self.response is not None:
            value = self.response.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(GongyunApiError):
    """A 5xx answer: the server failed; retrying later may help."""


class ServiceUnavailable(ServerError):
    """503: a backing service (database, bus, telemetry) is not reachable from that process."""


_BY_STATUS: dict[int, type[GongyunApiError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def _problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document, or one made up from a non-problem answer (a proxy's HTML page)."""
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media in (PROBLEM_JSON, "application/json"):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
    return {
        "status": response.status_code,
        "code": f"http_{response.status_code}",
        "title": response.reason_phrase,
        "detail": response.text[:500],
    }


def error_for(response: httpx.Response) -> GongyunApiError:
    """The exception for an error answer (the response body must have been read)."""
    status = response.status_code
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ClientError if status >= 400 else GongyunApiError
    return cls(status, _problem_of(response), response)


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the matching exception when ``response`` is an error answer."""
    if response.is_error:
        raise error_for(response)
