"""A lean HTTP/1.1 server for identifier nodes: httptools on uvloop, serving any ASGI app.

Why not just uvicorn: a resolution is one dictionary lookup, so per-request server
overhead decides throughput. This server answers a ``GET`` from the app's ``fast_raw`` hook
(a whole HTTP response, a future of one while a database read is under way, or None) or,
for an app without one, a plain ``GET`` (no query, no credentials) from its ``fast_get``
hook, with one ``transport.write``; every other request goes through the ASGI app as usual.
A request target over ``MAX_TARGET`` bytes is answered 414 before anything looks at it; a
request whose headers are incomplete ``REQUEST_TIMEOUT`` seconds after its first byte (or
whose body is, ``BODY_TIMEOUT`` seconds after its first byte) is answered 408 and its
connection closed, so slowloris-style trickles hold a socket for seconds, not for ever.
Requests on one connection are answered in order (a request arriving while an earlier one
is being answered waits for it). Several worker processes share the port with
``SO_REUSEPORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import subprocess
from collections import deque
from collections.abc import MutableMapping
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from gongyun.idres.asgi import MAX_BODY, AsgiApp, FastAnswer

log = logging.getLogger(__name__)
_OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
IDLE_TIMEOUT = 75.0
REQUEST_TIMEOUT = 10.0  # seconds from a request's first byte to its last header (slowloris trickles)
BODY_TIMEOUT = 60.0  # seconds from a body's first byte to its last
MAX_TARGET = 8192  # bytes of request target: an identifier is at most 1,024 bytes (3,072 encoded)
_URI_TOO_LONG_BODY = (
    b'{"responseCode":2,"message":"the request target is longer than 8192 bytes","code":"uri_too_long"}'
)
_URI_TOO_LONG = (
    b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(_URI_TOO_LONG_BODY)).encode()
    + b"\r\n"
)
_CREDENTIALS = (b"authorization", b"x-api-key")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_Req = tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, bool]


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, app: AsgiApp, server: tuple[str, int]) -> None:
        self.app = app
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.queue: deque[_Req] = deque()
        self.busy = False
        self.body_size = 0
        self.idle: asyncio.TimerHandle | None = None
        self.last_seen = 0.0
        self.deadline = 0.0  # when the request being received must be complete (0: none)
        self.loop = asyncio.get_running_loop()
        self.out: list[bytes] | None = None  # answers to the requests of one read, written together

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not a subclass
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self._arm()

    def _arm(self, delay: float | None = None) -> None:
        self.last_seen = self.loop.time()
        if delay is None:
            delay = min(IDLE_TIMEOUT, REQUEST_TIMEOUT)
        self.idle = self.loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        # one timer per connection, re-armed lazily: data_received and the parser only stamp times
        if self.transport is None:
            return
        now = self.loop.time()
        if self.deadline and now >= self.deadline:
            self._refuse(_TIMEOUT)  # a request still incomplete: a trickle holds nothing longer
            return
        quiet = now - self.last_seen
        if quiet >= IDLE_TIMEOUT and not self.busy:
            self.transport.close()
            return
        delay = IDLE_TIMEOUT - quiet
        if self.deadline:
            delay = min(delay, self.deadline - now)
        last = self.last_seen
        self._arm(max(min(delay, REQUEST_TIMEOUT), 0.01))
        self.last_seen = last

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop queued work."""
        self.queue.clear()
        self.transport = None
        if self.idle is not None:
            self.idle.cancel()

    def _refuse(self, response: bytes) -> None:
        if self.transport is not None:
            out, self.out = self.out, None
            self.transport.write(b"".join(out) + response if out else response)
            self.transport.close()
            self.transport = None

    def data_received(self, data: bytes) -> None:
        """Feed the parser; a malformed request closes the connection with 400."""
        self.last_seen = self.loop.time()
        self.out = []
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._refuse(_BAD_REQUEST)
        out, self.out = self.out, None
        if out and self.transport is not None:  # pipelined requests: one write for their answers
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def on_message_begin(self) -> None:
        """A new request starts: its headers must be complete within ``REQUEST_TIMEOUT``."""
        self.deadline = self.last_seen + REQUEST_TIMEOUT
        self.url = b""
        self.headers = []
        self.body = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        """Part of the request target (past ``MAX_TARGET`` the rest is not kept: it is refused)."""
        if len(self.url) <= MAX_TARGET:
            self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header."""
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        """Part of the body (a body over ``MAX_BODY`` closes the connection with 413; one still
        incomplete ``BODY_TIMEOUT`` after its first byte, with 408)."""
        if not self.body_size:
            self.deadline = self.last_seen + BODY_TIMEOUT
        self.body_size += len(body)
        if self.body_size > MAX_BODY:
            self._refuse(_TOO_LARGE)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        """A full request: answer it now (fast path) or queue it for the ASGI app."""
        self.deadline = 0.0
        if self.transport is None:
            return
        method = self.parser.get_method()
        keep = self.parser.should_keep_alive()
        req = (method, self.url, self.headers, b"".join(self.body), keep)
        if self.busy:
            self.queue.append(req)
            return
        self._start(req)

    def _start(self, req: _Req) -> None:
        """Answer ``req`` now, when its answer is ready, or through the ASGI app (then the queue)."""
        while True:
            done = self._try_fast(req)
            if done is True:
                if not self.queue or self.transport is None:
                    self.busy = False
                    return
                req = self.queue.popleft()
                continue
            if done is None:  # the deferred_raw hook took it: busy until _deliver (maybe done already)
                return
            self.busy = True
            if done is False:
                self.loop.create_task(self._drain(req, fast=False))
            else:
                done.add_done_callback(partial(self._later, req))
            return

    def _later(self, req: _Req, answer: asyncio.Future[bytes | None]) -> None:
        """A deferred fast answer arrived as a future."""
        body = None if answer.cancelled() or answer.exception() is not None else answer.result()
        self._deliver(req, body)

    def _deliver(self, req: _Req, body: bytes | None) -> None:
        """A deferred answer: write it (None: the ASGI app answers), then go on with the queue."""
        if self.transport is None:
            self.busy = False
            return
        if body is None:
            self.loop.create_task(self._drain(req, fast=False))
            return
        self._write(body, req[4])
        if self.queue and self.transport is not None:
            self._start(self.queue.popleft())
        else:
            self.busy = False

    def _write(self, answer: bytes, keep: bool) -> None:
        """Write an answer (held back while the rest of a read is parsed); close unless ``keep``."""
        if self.transport is None:
            return
        out = self.out
        if out is not None and keep:
            out.append(answer)
            return
        if out:
            out.append(answer)
            answer = b"".join(out)
            out.clear()
        self.transport.write(answer)
        if not keep:
            self.transport.close()

    def _try_fast(self, req: _Req) -> bool | asyncio.Future[bytes | None] | None:
        """True when answered, False when the ASGI app must answer, a future of the answer, or
        None when the app's ``deferred_raw`` hook took it (it answers through ``_deliver``)."""
        method, url, headers, _, keep = req
        if self.transport is None:
            return True  # nobody to answer
        if len(url) > MAX_TARGET:  # refused before anything looks at it
            conn = b"" if keep else b"connection: close\r\n"
            self._write(_URI_TOO_LONG + conn + b"\r\n" + _URI_TOO_LONG_BODY, keep)
            return True
        if method != b"GET":
            return False
        raw = self.app.fast_raw
        answer: FastAnswer = None
        if raw is not None:  # the app's whole-answer hook (it covers what fast_get would)
            answer = raw(url, headers, keep)
        else:
            fast = self.app.fast_get
            if fast is not None and b"?" not in url and all(n not in _CREDENTIALS for n, _ in headers):
                body = fast(url)
                if body is not None:
                    conn = b"" if keep else b"\r\nconnection: close"
                    answer = _OK_HEAD + str(len(body)).encode() + conn + b"\r\n\r\n" + body
        if answer is None:
            deferred = self.app.deferred_raw
            if deferred is not None:
                was, self.busy = self.busy, True  # before the hook: it may reply before it returns
                if deferred(url, headers, keep, partial(self._deliver, req)):
                    return None
                self.busy = was
            return False
        if not isinstance(answer, bytes):  # a future: the answer comes after a read
            return answer
        self._write(answer, keep)
        return True

    async def _drain(self, first: _Req, fast: bool = True) -> None:
        """Answer ``first`` (through the app unless ``fast``), then what queued behind it."""
        req: _Req | None = first
        handed = False  # the last request went to the deferred_raw hook: busy until it answers
        try:
            while req is not None:
                done = self._try_fast(req) if fast else False
                fast = True
                if done is None:
                    handed = True
                    return
                if done is False:
                    await self._asgi(req)
                elif done is not True:
                    try:
                        body = await done
                    except Exception:
                        body = None
                    if body is None:
                        await self._asgi(req)
                    else:
                        self._write(body, req[4])
                req = self.queue.popleft() if self.queue and self.transport is not None else None
        finally:
            if not handed:
                self.busy = False

    async def _asgi(self, req: _Req) -> None:
        method, url, headers, body, keep = req
        path, _, query = url.partition(b"?")
        scope: MutableMapping[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method.decode("latin-1"),
            "scheme": "http",
            "path": unquote_to_bytes(path).decode("utf-8", "replace"),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": self.client,
            "server": self.server,
        }
        sent_body = False
        status = 500
        out_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, out_headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                out_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("unhandled error in the ASGI app")
            status, out_headers, chunks = 500, [], [b""]
        if self.transport is None:
            return
        payload = b"".join(chunks)
        head = [b"HTTP/1.1 ", str(status).encode(), b" ", _REASONS.get(status, b"Unknown"), b"\r\n"]
        for name, value in out_headers:
            if name.lower() != b"content-length":
                head += [name, b": ", value, b"\r\n"]
        head += [b"content-length: ", str(len(payload)).encode(), b"\r\n"]
        if not keep:
            head.append(b"connection: close\r\n")
        self.transport.write(b"".join(head) + b"\r\n" + payload)
        if not keep:
            self.transport.close()


class Lifespan:
    """Drives the app's ASGI lifespan protocol."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> MutableMapping[str, Any]:
        return await self.inbox.get()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        await self.outbox.put(message)

    async def startup(self) -> None:
        """Run startup hooks; raise when they fail."""
        self.task = asyncio.create_task(self.app({"type": "lifespan"}, self._receive, self._send))
        await self.inbox.put({"type": "lifespan.startup"})
        reply = await self.outbox.get()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {reply.get('message')}")

    async def shutdown(self) -> None:
        """Run shutdown hooks."""
        await self.inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.outbox.get(), 10)


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket (``SO_REUSEPORT`` lets workers share it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve_app(
    app: AsgiApp,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    reuse_port: bool = False,
    tune_gc: bool = False,
) -> None:
    """Serve ``app`` until ``stop`` is set (or SIGTERM/SIGINT when no event is given)."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    lifespan = Lifespan(app)
    await lifespan.startup()
    # long-lived objects made at start-up never need scanning again; fewer, later
    # collections keep pauses out of the latency tail
    if tune_gc:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
    sock = bind(host, port, reuse_port)
    server_addr = (host, port)
    server = await loop.create_server(lambda: HttpProtocol(app, server_addr), sock=sock)
    try:
        await stop.wait()
    finally:
        server.close()
        await lifespan.shutdown()


def run(app: AsgiApp, host: str, port: int, reuse_port: bool = False) -> None:
    """Run one server process on uvloop until SIGTERM/SIGINT."""
    import uvloop

    uvloop.run(serve_app(app, host, port, reuse_port=reuse_port, tune_gc=True))


def run_workers(argv: list[str], workers: int, env: dict[str, str]) -> int:
    """Start ``workers`` copies of a worker command sharing one port; stop them on SIGTERM/SIGINT."""
    procs = [subprocess.Popen(argv, env=env) for _ in range(workers)]

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [p.wait() for p in procs]
    return max(codes, default=0)
