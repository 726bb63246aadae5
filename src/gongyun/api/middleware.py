"""ASGI middleware: client address, request ids, body size limit, access log and metrics.

The client address is the TCP peer, or, when the peer is one of ``trusted_proxies``, the
right-most untrusted hop of ``X-Forwarded-For``; it replaces ``scope["client"]`` so the
login throttle, the audit trail and the logs all see the same address.

Written as plain ASGI (not BaseHTTPMiddleware) so that it adds microseconds, not a task
per request, and so that the body limit can stop a chunked upload mid-stream.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gongyun.errors import InvalidInput, PayloadTooLarge
from gongyun.log import request_id_var
from gongyun.security.proxies import Network, forwarded_client

log = logging.getLogger("gongyun.access")

REQUESTS = Counter("gongyun_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "gongyun_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_RID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _problem_bytes(limit: int) -> bytes:
    exc = PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", limit=limit)
    return json.dumps(exc.to_problem()).encode()


def _nul_problem() -> bytes:
    exc = InvalidInput("NUL characters are not allowed in paths, queries or headers")
    return json.dumps(exc.to_problem()).encode()


def _has_nul(scope: Scope, headers: dict[str, str]) -> bool:
    # PostgreSQL cannot store NUL in text; no identifier, name or header legitimately has one.
    query: bytes = scope.get("query_string", b"")
    return (
        "\x00" in scope["path"]
        or b"%00" in query
        or b"\x00" in query
        or any("\x00" in v for v in headers.values())
    )


class RequestContextMiddleware:
    """Gives every request an id, enforces the body limit, logs and measures it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, trusted_proxies: Sequence[Network] = ()) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.trusted = tuple(trusted_proxies)

    def _resolve_client(self, scope: Scope) -> tuple[str | None, str | None]:
        """Put the real client address into ``scope["client"]``; return (client, TCP peer)."""
        peer_pair = scope.get("client")
        peer = peer_pair[0] if peer_pair else None
        if not self.trusted or peer is None:
            return peer, peer
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"x-forwarded-for"]
        client = forwarded_client(peer, forwarded, self.trusted)
        if client != peer:
            scope["client"] = (client, 0)  # the port belongs to the proxy's connection
        return client, peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self._resolve_client(scope)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client, peer = self._resolve_client(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        rid = given if _RID_OK.match(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = {"code": 500}
        try:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await self._reject_large(send, rid, status)
                return
            if _has_nul(scope, headers):
                await self._reject(send, rid, status, 400, _nul_problem())
                return
            if length is None and "chunked" in headers.get("transfer-encoding", "").lower():
                # No declared length: read up to the limit first, then replay to the app.
                body = await self._read_limited(receive)
                if body is None:
                    await self._reject_large(send, rid, status)
                    return
                receive = self._replay(body, receive)
            await self.app(scope, self._limited(receive), self._stamped(send, rid, status))
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], template, str(status["code"])).inc()
            LATENCY.labels(scope["method"], template).observe(elapsed)
            state: Any = scope.get("state") or {}
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status["code"],
                extra={
                    "status": status["code"],
                    "ms": round(elapsed * 1000, 2),
                    "principal": state.get("principal") if isinstance(state, dict) else None,
                    "client": client,
                    "peer": peer if peer != client else None,
                },
            )
            request_id_var.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", limit=limit)
            return message

        return wrapped

    async def _read_limited(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # later reads only wait for the disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    @staticmethod
    def _stamped(send: Send, rid: str, status: dict[str, int]) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        return wrapped

    async def _reject_large(self, send: Send, rid: str, status: dict[str, int]) -> None:
        await self._reject(send, rid, status, 413, _problem_bytes(self.max_body))

    @staticmethod
    async def _reject(send: Send, rid: str, status: dict[str, int], code: int, body: bytes) -> None:
        status["code"] = code
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", rid.encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
