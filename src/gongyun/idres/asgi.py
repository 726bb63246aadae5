"""A minimal ASGI toolkit for the resolution path (no framework: every microsecond counts).

``AsgiApp`` routes by path prefix to ``Handler``s taking a ``Request`` and returning a
``Response``; an optional ``fast_get`` hook answers cached GETs straight from the raw path
before anything else is parsed. Errors become Handle-style JSON with a ``responseCode``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

import orjson

from gongyun.errors import GongyunError, PayloadTooLarge
from gongyun.idres.auth import Authenticator, Principal
from gongyun.idres.errors import response_code

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
JSON = b"application/json"
_JSON_HEADERS = [(b"content-type", JSON)]
MAX_BODY = 8 * 1024 * 1024
_CHALLENGE = [(b"www-authenticate", b'Basic realm="handle"'), (b"www-authenticate", b'Handle realm="handle"')]


@dataclass(slots=True)
class Request:
    """What a handler sees of an HTTP request."""

    method: str
    path: str
    raw_path: bytes
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    principal: Principal | None = None
    raw_query: bytes = b""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        vals = self.query.get(name)
        return vals[0] if vals else default

    def flag(self, name: str) -> bool:
        """A boolean query parameter (``true``/``1``/``yes``)."""
        return (self.arg(name) or "").lower() in {"true", "1", "yes"}

    def json(self) -> Any:
        """The body parsed as JSON (``InvalidInput`` when it is not)."""
        from gongyun.errors import InvalidInput

        try:
            return orjson.loads(self.body or b"null")
        except orjson.JSONDecodeError:
            raise InvalidInput("the request body is not valid JSON") from None


@dataclass(slots=True)
class Response:
    """Status, body and headers."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(_JSON_HEADERS))


def json_response(status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    """A JSON response."""
    return Response(status, orjson.dumps(obj), [*_JSON_HEADERS, *(headers or [])])


def error_response(exc: BaseException) -> Response:
    """Handle-style error JSON: ``responseCode``, ``message`` and Gongyun's stable ``code``."""
    rc, status = response_code(exc)
    if isinstance(exc, GongyunError):
        body: dict[str, Any] = {"responseCode": rc, "message": exc.message, "code": exc.code}
        for key in ("errors", "handle", "reason", "position", "field", "index"):
            if key in exc.details:
                body[key] = exc.details[key]
    else:
        log.exception("unexpected error in the resolution API", exc_info=exc)
        body = {"responseCode": rc, "message": "internal error", "code": "internal"}
    if status == 401:  # RFC 9110: a 401 names the schemes that would do
        return json_response(status, body, _CHALLENGE)
    return json_response(status, body)


_REASONS = {
    200: b"OK",
    201: b"Created",
    300: b"Multiple Choices",
    301: b"Moved Permanently",
    307: b"Temporary Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    409: b"Conflict",
    413: b"Payload Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def http_bytes(resp: Response, keep_alive: bool) -> bytes:
    """A whole HTTP/1.1 response (for the lean server's fast paths)."""
    head = [b"HTTP/1.1 ", str(resp.status).encode(), b" ", _REASONS.get(resp.status, b"Unknown"), b"\r\n"]
    for name, value in resp.headers:
        if name.lower() != b"content-length":
            head += [name, b": ", value, b"\r\n"]
    head += [b"content-length: ", str(len(resp.body)).encode(), b"\r\n"]
    if not keep_alive:
        head.append(b"connection: close\r\n")
    return b"".join(head) + b"\r\n" + resp.body


def build_request(
    method: str, path: bytes, query: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes = b""
) -> Request:
    """A ``Request`` from the raw path (no query), raw query and headers as they arrived."""
    return Request(
        method,
        unquote_to_bytes(path).decode("utf-8", "surrogateescape"),
        path,
        parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True) if query else {},
        {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers},
        body,
        raw_query=query,
    )


Handler = Callable[[Request], Awaitable[Response]]
FastGet = Callable[[bytes], bytes | None]
# a whole answer, a future of one (None when it resolves: the app answers), or None (the app answers)
FastAnswer = bytes | asyncio.Future[bytes | None] | None
FastRaw = Callable[[bytes, list[tuple[bytes, bytes]], bool], FastAnswer]
Reply = Callable[[bytes], None]
DeferredRaw = Callable[[bytes, list[tuple[bytes, bytes]], bool, Reply], bool]


class AsgiApp:
    """Routes requests by path prefix; answers lifespan events; renders errors."""

    def __init__(self, authenticators: list[Authenticator] | None = None) -> None:
        self.routes: list[tuple[str, Handler]] = []
        self.authenticators: list[Authenticator] = list(authenticators or [])
        self.fast_get: FastGet | None = None
        self.fast_raw: FastRaw | None = None
        """The lean server's hook for other GETs: a whole HTTP response from target, headers, keep-alive."""
        self.deferred_raw: DeferredRaw | None = None
        """Tried after ``fast_raw``: True when the hook takes the GET and will call ``reply`` with
        the whole HTTP response later (exactly once); False leaves it to the app."""
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self.after_write: list[Callable[[], Awaitable[None]]] = []
        """Awaited after every non-GET request, before its response is sent (cache invalidation)."""

    def add_fast_raw(self, hook: FastRaw) -> None:
        """Add a ``fast_raw`` hook; hooks are tried in the order added until one answers."""
        first = self.fast_raw
        if first is None:
            self.fast_raw = hook
            return

        def chained(target: bytes, headers: list[tuple[bytes, bytes]], keep: bool) -> FastAnswer:
            answer = first(target, headers, keep)
            return answer if answer is not None else hook(target, headers, keep)

        self.fast_raw = chained

    def mount(self, prefix: str, handler: Handler) -> None:
        """Send requests whose path starts with ``prefix`` to ``handler`` (longest prefix wins)."""
        self.routes.append((prefix, handler))
        self.routes.sort(key=lambda r: -len(r[0]))

    async def authenticate(self, headers: dict[str, str]) -> Principal | None:
        """The first principal an authenticator accepts, or None for an anonymous caller."""
        if "authorization" not in headers and "x-api-key" not in headers:
            return None
        for auth in self.authenticators:
            principal = await auth(headers)
            if principal is not None:
                return principal
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        fast = self.fast_get
        if fast is not None and scope["method"] == "GET" and not scope["query_string"]:
            anonymous = all(name not in (b"authorization", b"x-api-key") for name, _ in scope["headers"])
            body = fast(raw_path) if anonymous else None
            if body is not None:
                await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
                await send({"type": "http.response.body", "body": body})
                return
        try:
            resp = await self._dispatch(scope, receive, raw_path)
        except Exception as exc:
            resp = error_response(exc)
        if scope["method"] != "GET":
            for hook in self.after_write:
                await hook()
        await send({"type": "http.response.start", "status": resp.status, "headers": resp.headers})
        await send({"type": "http.response.body", "body": resp.body})

    async def _dispatch(self, scope: Scope, receive: Receive, raw_path: bytes) -> Response:
        body = b""
        if scope["method"] in {"PUT", "POST", "PATCH"}:
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_BODY:
                    raise PayloadTooLarge(f"the request body is larger than {MAX_BODY} bytes")
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
        path_bytes = raw_path.split(b"?", 1)[0]
        req = build_request(scope["method"], path_bytes, scope["query_string"], scope["headers"], body)
        req.principal = await self.authenticate(req.headers)
        handler = self.route(req.path)
        if handler is not None:
            return await handler(req)
        return json_response(404, {"responseCode": 2, "message": f"no such endpoint {req.path[:200]}"})

    def route(self, path: str) -> Handler | None:
        """The handler of the longest mounted prefix of ``path``."""
        for prefix, handler in self.routes:
            if path.startswith(prefix):
                return handler
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return
