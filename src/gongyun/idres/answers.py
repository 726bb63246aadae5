"""An answer cache for the scheme endpoints (GS1 Digital Link, OID, Ecode).

A scheme answer (a 307 redirect, a linkset, a record found by its OID or Ecode) takes
reverse lookups over several records; the same answer is asked for again and again. Here a
successful anonymous ``GET`` answer is kept, keyed by the raw request target and the
``Host`` and ``Accept`` headers it depends on, for the smallest TTL of the records it came
from (bounded by ``max_age``), and served without touching the database: by the lean server
before anything is parsed, by the ASGI app before routing. Any change to the registry (this
process's writes, the change feed of every other process) forgets every answer, since one
new record can change the answer of many keys. Failures (404, 400) are not kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from contextvars import ContextVar

from gongyun.idres.asgi import Handler, Request, Response

_AUTH = (b"authorization", b"x-api-key")
_REASON = {200: b"OK", 300: b"Multiple Choices", 307: b"Temporary Redirect"}
Headers = Iterable[tuple[bytes, bytes]]
answer_ttls: ContextVar[list[float] | None] = ContextVar("answer_ttls", default=None)


class AnswerCache:
    """Ready HTTP answers of the scheme endpoints, each with an expiry."""

    def __init__(self, size: int = 100_000, max_age: float = 86_400.0) -> None:
        self.size = size
        self.max_age = max_age
        self.answers: OrderedDict[bytes, bytes] = OrderedDict()  # key -> status line, headers, CRLFCRLF
        self.bodies: dict[bytes, bytes] = {}
        self.expires: dict[bytes, float] = {}
        self.generation = 0
        self.hits = 0

    @staticmethod
    def key(target: bytes, headers: Headers) -> bytes | None:
        """The cache key of a raw request (None: not cacheable, e.g. it carries credentials)."""
        host = accept = b""
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"accept":
                accept = value
            elif name in _AUTH:
                return None
        return b"\x00".join((target, host, accept))

    @staticmethod
    def request_key(req: Request) -> bytes | None:
        """The cache key of a parsed request."""
        if req.principal is not None or "authorization" in req.headers or "x-api-key" in req.headers:
            return None
        target = req.raw_path + (b"?" + req.raw_query if req.raw_query else b"")
        host = req.headers.get("host", "").encode("latin-1")
        accept = req.headers.get("accept", "").encode("latin-1")
        return b"\x00".join((target, host, accept))

    def get(self, key: bytes) -> tuple[bytes, bytes] | None:
        """``(head, body)`` of a live answer: head is the status line and headers, no length."""
        head = self.answers.get(key)
        if head is None:
            return None
        if self.expires[key] < time.monotonic():
            self._drop(key)
            return None
        self.hits += 1
        return head, self.bodies[key]

    def raw(self, key: bytes, keep_alive: bool) -> bytes | None:
        """A whole HTTP/1.1 response for the lean server, or None."""
        hit = self.get(key)
        if hit is None:
            return None
        head, body = hit
        conn = b"" if keep_alive else b"connection: close\r\n"
        return head + b"content-length: " + str(len(body)).encode() + b"\r\n" + conn + b"\r\n" + body

    def put(self, key: bytes, resp: Response, ttl: float, generation: int) -> None:
        """Keep a successful answer for ``min(ttl, max_age)`` unless the registry changed meanwhile."""
        if generation != self.generation or resp.status not in _REASON or self.size <= 0 or ttl <= 0:
            return
        head = [b"HTTP/1.1 ", str(resp.status).encode(), b" ", _REASON[resp.status], b"\r\n"]
        for name, value in resp.headers:
            if name.lower() != b"content-length":
                head += [name, b": ", value, b"\r\n"]
        self.answers[key] = b"".join(head)
        self.answers.move_to_end(key)
        self.bodies[key] = resp.body
        self.expires[key] = time.monotonic() + min(ttl, self.max_age)
        while len(self.answers) > self.size:
            old, _ = self.answers.popitem(last=False)
            self.bodies.pop(old, None)
            self.expires.pop(old, None)

    def _drop(self, key: bytes) -> None:
        self.answers.pop(key, None)
        self.bodies.pop(key, None)
        self.expires.pop(key, None)

    def changed(self, _norm: str | None = None) -> None:
        """Something in the registry changed: forget every answer."""
        self.generation += 1
        self.answers.clear()
        self.bodies.clear()
        self.expires.clear()

    def wrap(self, handler: Handler) -> Handler:
        """A handler whose successful anonymous GET answers are kept."""

        async def cached(req: Request) -> Response:
            key = self.request_key(req) if req.method == "GET" else None
            if key is None:
                return await handler(req)
            hit = self.get(key)
            if hit is not None:
                return _parse(hit)
            generation = self.generation
            ttls: list[float] = []
            token = answer_ttls.set(ttls)
            try:
                resp = await handler(req)
            finally:
                answer_ttls.reset(token)
            self.put(key, resp, min(ttls, default=self.max_age), generation)
            return resp

        return cached


def note_ttl(ttl: float) -> None:
    """Tell the answer being computed (if any is cached) that it used a record of this TTL."""
    ttls = answer_ttls.get()
    if ttls is not None:
        ttls.append(ttl)


def _parse(hit: tuple[bytes, bytes]) -> Response:
    head, body = hit
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = [tuple(line.split(b": ", 1)) for line in lines[1:] if line]
    return Response(status, body, [(h[0], h[1]) for h in headers])
