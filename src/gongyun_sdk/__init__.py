"""Gongyun SDK: a typed Python client for the Gongyun REST API (needs only httpx).

    from gongyun_sdk import Client, PasswordAuth

    with Client("http://127.0.0.1:8000", PasswordAuth("admin", "...")) as gy:
        pump = gy.devices.create("pump1")
        gy.tags.create(pump["id"], "temp", unit="degC")
        gy.telemetry.write([{"tag": "pump1/temp", "value": 21.5}])

``AsyncClient`` has the same resources with awaitable methods; pages and live streams
are (async) iterators. Errors are raised as ``GongyunApiError`` subclasses carrying the
problem document's ``status``, ``code``, ``title`` and ``detail``.

Written by hand over httpx rather than generated from the OpenAPI document, because what
makes a client pleasant here is behaviour a generator does not produce: problem+json
answers mapped onto a small exception tree with the server's stable codes, token refresh
that replays the failed request and never spends a rotating refresh token twice, page
walking that follows each endpoint's own cursor (``before_seq``, page numbers, the last
timestamp), and server-sent event streams as iterators. The generated part would be the
thin request building, which is written once here (``_ops``) for the sync and the async
client alike, and a generator would add a toolchain (Java or Node) to the build. The
package imports nothing from the server, so it works against a remote installation.
"""

from __future__ import annotations

from gongyun_sdk.auth import ApiKeyAuth, PasswordAuth, RefreshTokenAuth, TokenAuth
from gongyun_sdk.client import AsyncClient, Client
from gongyun_sdk.errors import (
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    GongyunApiError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthenticated,
    ValidationFailed,
)
from gongyun_sdk.sse import AsyncStream, Stream

__all__ = [
    "ApiKeyAuth",
    "AsyncClient",
    "AsyncStream",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "GongyunApiError",
    "NotFound",
    "PasswordAuth",
    "PayloadTooLarge",
    "RateLimited",
    "RefreshTokenAuth",
    "ServerError",
    "ServiceUnavailable",
    "Stream",
    "TokenAuth",
    "Unauthenticated",
    "ValidationFailed",
]
