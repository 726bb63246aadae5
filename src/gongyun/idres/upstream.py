"""The recursive resolver's upstream client: pipelined keep-alive HTTP/1.1 GETs on httptools.

A recursive node asks other nodes small ``GET``s, many at once under load. This client keeps
up to ``max_conns`` connections per site and pipelines on them: the requests submitted during
one turn of the event loop are written together (one ``write`` per connection, spread over the
least busy connections), and the answers are matched to them in order as httptools parses
them (the parser the node's own server uses). Nothing waits on a coroutine: ``submit`` returns a
future. A connection the site closed with requests still unanswered is dropped and those
requests are sent once more on another (GET is idempotent); a connection that does not answer
within ``timeout`` is closed and its requests fail.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from urllib.parse import urlsplit

import httptools

Result = tuple[int, bytes]
PER_WRITE = 8
_Item = tuple[bytes, "asyncio.Future[Result]", bool]  # request, its future, already retried


class UpstreamError(Exception):
    """A site could not be reached or answered something that is not HTTP."""


class _Conn(asyncio.Protocol):
    """One connection to one site: requests written in order, answers matched in order."""

    def __init__(self, site: _Site) -> None:
        self.site = site
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.pending: deque[_Item] = deque()
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.sent_at = 0.0  # when the oldest unanswered request was written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = transport  # type: ignore[assignment]

    def send(self, items: list[_Item], now: float) -> None:
        """Write several requests in one call."""
        assert self.transport is not None
        if not self.pending:
            self.sent_at = now
            if self.timer is None:
                self.timer = self.site.loop.call_later(self.site.timeout, self._check)
        self.pending.extend(items)
        self.transport.write(b"".join(item[0] for item in items))

    def _check(self) -> None:
        self.timer = None
        if not self.pending or self.closed:
            return
        late = self.site.loop.time() - self.sent_at
        if late >= self.site.timeout:
            self._drop(UpstreamError(f"no answer within {self.site.timeout} s"), retry=False)
        else:
            self.timer = self.site.loop.call_later(self.site.timeout - late, self._check)

    def data_received(self, data: bytes) -> None:
        """Feed the parser."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._drop(UpstreamError(f"malformed answer: {exc}"), retry=False)

    def on_message_begin(self) -> None:
        """A new answer starts."""
        self.body = []

    def on_body(self, body: bytes) -> None:
        """Part of the body."""
        self.body.append(body)

    def on_message_complete(self) -> None:
        """A whole answer: it belongs to the oldest request still unanswered."""
        if not self.pending:
            self._drop(UpstreamError("an answer nobody asked for"), retry=False)
            return
        _, fut, _ = self.pending.popleft()
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        if not fut.done():
            fut.set_result((self.parser.get_status_code(), body))
        self.sent_at = self.site.loop.time()
        if not self.parser.should_keep_alive():
            self._drop(UpstreamError("the site closed the connection"), retry=True)

    def connection_lost(self, exc: Exception | None) -> None:
        """The site closed the connection: unanswered requests go once more elsewhere."""
        self._drop(UpstreamError(f"connection closed: {exc}"), retry=True)

    def _drop(self, exc: Exception, retry: bool) -> None:
        if not self.closed:
            self.closed = True
            self.site.forget(self)
            if self.transport is not None:
                self.transport.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        items, self.pending = list(self.pending), deque()
        again = [(req, fut, True) for req, fut, retried in items if retry and not retried and not fut.done()]
        for _req, fut, retried in items:
            if (not retry or retried) and not fut.done():
                fut.set_exception(exc)
        if again:
            self.site.queue_items(again)

    def close(self) -> None:
        """Close the connection (its unanswered requests fail)."""
        self._drop(UpstreamError("client closed"), retry=False)


class _Site:
    """The connections to one site and the requests waiting for the next write."""

    def __init__(self, key: tuple[str, str, int], host: bytes, client: UpstreamClient) -> None:
        self.key = key
        self.host = host
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.timeout = client.timeout
        self.conns: list[_Conn] = []
        self.connecting = 0
        self.queue: list[_Item] = []
        self.scheduled = False

    def request(self, target: bytes) -> bytes:
        """The bytes of one GET."""
        return b"GET " + target + b" HTTP/1.1\r\nHost: " + self.host + b"\r\nAccept: application/json\r\n\r\n"

    def queue_items(self, items: list[_Item]) -> None:
        """Send these with the next batch (at the end of this turn of the loop)."""
        self.queue.extend(items)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def forget(self, conn: _Conn) -> None:
        """A connection is gone."""
        if conn in self.conns:
            self.conns.remove(conn)

    def flush(self) -> None:
        """Spread the waiting requests over the least busy connections, one write each."""
        self.scheduled = False
        if not self.queue:
            return
        live = [c for c in self.conns if not c.closed]
        grow = len(live) + self.connecting < self.client.max_conns and all(c.pending for c in live)
        if grow and (self.connecting == 0 or len(self.queue) > 1):
            self.connecting += 1
            self.loop.create_task(self._connect())
        if not live:
            return  # sent when a connection is made
        batch, self.queue = self.queue, []
        live.sort(key=lambda c: len(c.pending))
        # at least PER_WRITE requests a write (fewer system calls), over the least busy connections
        used = max(1, min(len(live), -(-len(batch) // PER_WRITE)))
        share = -(-len(batch) // used)
        now = self.loop.time()
        for i, conn in enumerate(live):
            part = batch[i * share : (i + 1) * share]
            if not part:
                break
            conn.send(part, now)

    async def _connect(self) -> None:
        scheme, host, port = self.key
        tls = self.client.tls() if scheme == "https" else None
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Conn(self), host, port, ssl=tls), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            self.connecting -= 1
            if not self.conns and not self.connecting:  # nothing else will carry them: they fail
                failed, self.queue = self.queue, []
                for _, fut, _ in failed:
                    if not fut.done():
                        fut.set_exception(UpstreamError(f"cannot connect to {host}:{port}: {exc}"))
            return
        self.connecting -= 1
        self.conns.append(conn)
        if self.client.closed:
            conn.close()
            return
        if self.queue and not self.scheduled:
            self.flush()


class UpstreamClient:
    """Pipelined keep-alive GETs to any number of sites, up to ``max_conns`` connections each."""

    def __init__(self, timeout: float = 3.0, max_conns: int = 8) -> None:
        self.timeout = timeout
        self.max_conns = max_conns
        self.sites: dict[str, tuple[_Site, bytes]] = {}
        self.closed = False
        self._tls: ssl.SSLContext | None = None

    def tls(self) -> ssl.SSLContext:
        """The TLS context for ``https`` sites (made once)."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _site(self, base: str) -> tuple[_Site, bytes]:
        known = self.sites.get(base)
        if known is not None:
            return known
        parts = urlsplit(base)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UpstreamError(f"not an HTTP URL: {base[:200]}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.netloc.encode("idna") if not parts.netloc.isascii() else parts.netloc.encode()
        key = (parts.scheme, parts.hostname, port)
        site = next((s for s, _ in self.sites.values() if s.key == key), None) or _Site(key, host, self)
        if len(self.sites) >= 10_000:
            self.sites.clear()
        self.sites[base] = (site, parts.path.rstrip("/").encode())
        return self.sites[base]

    def submit(self, base: str, path: str) -> asyncio.Future[Result]:
        """``(status, body)`` of ``GET base+path``, as a future (fails with ``UpstreamError``)."""
        if self.closed:
            raise UpstreamError("the client is closed")
        site, root = self._site(base)
        fut: asyncio.Future[Result] = site.loop.create_future()
        site.queue_items([(site.request(root + path.encode()), fut, False)])
        return fut

    async def get(self, url: str) -> Result:
        """``(status, body)`` of ``GET url`` (raises ``UpstreamError``)."""
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return await asyncio.shield(self.submit(base, target))

    async def aclose(self) -> None:
        """Close every connection."""
        self.closed = True
        for site, _ in list(self.sites.values()):
            for conn in list(site.conns):
                conn.close()
            waiting, site.queue = site.queue, []
            for _, fut, _ in waiting:
                if not fut.done():
                    fut.set_exception(UpstreamError("client closed"))
        self.sites.clear()
