"""The recursive resolver's upstream client: pooled keep-alive HTTP/1.1 GETs on httptools.

A recursive node asks other nodes one small ``GET`` at a time; a general-purpose client spends
far more on its own machinery than the request takes. This one keeps idle connections per
site, writes the request line in one call and parses the answer with httptools (the parser
the node's own server uses). A reused connection that the site closed meanwhile is retried
once on a fresh one.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools


class UpstreamError(Exception):
    """A site could not be reached or answered something that is not HTTP."""


class _Conn(asyncio.Protocol):
    """One connection to one site, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Feed the parser."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed answer: {exc}"))

    def on_body(self, body: bytes) -> None:
        """Part of the body."""
        self.body.append(body)

    def on_message_complete(self) -> None:
        """A whole answer."""
        if self.waiter is not None and not self.waiter.done():
            keep = self.parser.should_keep_alive()
            self.waiter.set_result((self.parser.get_status_code(), b"".join(self.body), keep))

    def connection_lost(self, exc: Exception | None) -> None:
        """The site closed the connection."""
        self.closed = True
        self._fail(UpstreamError(f"connection closed: {exc}"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def get(self, host: bytes, target: bytes, limit: float) -> tuple[int, bytes, bool]:
        """Send one GET and wait for its answer."""
        assert self.transport is not None
        self.parser = httptools.HttpResponseParser(self)
        self.body = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(
            b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nAccept: application/json\r\n\r\n"
        )
        try:
            return await asyncio.wait_for(self.waiter, limit)
        except TimeoutError:
            self.close()
            raise UpstreamError(f"no answer within {limit} s") from None


class UpstreamClient:
    """Keep-alive GETs to any number of sites, ``max_idle`` idle connections kept per site."""

    def __init__(self, timeout: float = 3.0, max_idle: int = 128) -> None:
        self.timeout = timeout
        self.max_idle = max_idle
        self.idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._tls: ssl.SSLContext | None = None

    async def _connect(self, site: tuple[str, str, int]) -> _Conn:
        scheme, host, port = site
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(_Conn, host, port, ssl=tls), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    async def get(self, url: str) -> tuple[int, bytes]:
        """``(status, body)`` of ``GET url`` (raises ``UpstreamError``)."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UpstreamError(f"not an HTTP URL: {url[:200]}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        site = (parts.scheme, parts.hostname, port)
        host = parts.netloc.encode("idna") if not parts.netloc.isascii() else parts.netloc.encode()
        target = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode()
        pool = self.idle.setdefault(site, [])
        while pool:
            conn = pool.pop()
            if conn.closed:
                continue
            try:
                status, body, keep = await conn.get(host, target, self.timeout)
            except UpstreamError:
                break  # the site closed an idle connection: try once on a new one
            return self._done(site, conn, status, body, keep)
        conn = await self._connect(site)
        status, body, keep = await conn.get(host, target, self.timeout)
        return self._done(site, conn, status, body, keep)

    def _done(
        self, site: tuple[str, str, int], conn: _Conn, status: int, body: bytes, keep: bool
    ) -> tuple[int, bytes]:
        pool = self.idle.setdefault(site, [])
        if keep and not conn.closed and len(pool) < self.max_idle:
            pool.append(conn)
        else:
            conn.close()
        return status, body

    async def aclose(self) -> None:
        """Close every idle connection."""
        for pool in self.idle.values():
            for conn in pool:
                conn.close()
        self.idle.clear()
