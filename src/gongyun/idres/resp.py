"""A lean pipelined Redis connection for the recursive resolver's shared tier: ``MGET`` and ``SET PX``.

The shared tier sends one ``MGET`` or one batch of ``SET``s per turn of the event loop; a
general client spends far more on packing and parsing than Redis on answering. This one
writes each batch as one buffer of RESP commands on one connection and parses the replies
(RESP2: simple strings, errors, integers, bulk strings, arrays) in order. It speaks to a TCP
or Unix socket Redis with an optional password and database (what ``redis://`` and
``unix://`` URLs give); for anything else (TLS) the tier uses redis-py.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from gongyun.errors import ServiceUnavailable


class RespError(Exception):
    """An error reply of Redis."""


class _Incomplete(Exception):
    pass


def command(*args: bytes) -> bytes:
    """One RESP command."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def parse(buf: bytearray | bytes, pos: int) -> tuple[Any, int]:
    """One reply starting at ``pos`` and the position after it (``_Incomplete`` if cut short)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        stop = end + 2 + n
        if len(buf) < stop + 2:
            raise _Incomplete
        return bytes(buf[end + 2 : stop]), stop + 2
    if kind == 42:  # * array
        n = int(buf[pos + 1 : end])
        items: list[Any] = []
        at = end + 2
        for _ in range(max(n, 0)):
            item, at = parse(buf, at)
            items.append(item)
        return (items if n >= 0 else None), at
    if kind == 43:  # + simple string
        return bytes(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        return RespError(bytes(buf[pos + 1 : end]).decode("utf-8", "replace")), end + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    raise RespError(f"unexpected reply type {chr(kind)!r}")


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: deque[tuple[asyncio.Future[list[Any]], int, list[Any]]] = deque()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes, replies: int) -> asyncio.Future[list[Any]]:
        assert self.transport is not None
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, replies, []))
        self.transport.write(data)
        return fut

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        try:
            while self.pending and pos < len(self.buf):
                try:
                    reply, pos = parse(self.buf, pos)
                except _Incomplete:
                    break
                fut, want, got = self.pending[0]
                got.append(reply)
                if len(got) == want:
                    self.pending.popleft()
                    if not fut.done():
                        fut.set_result(got)
        except (RespError, ValueError) as exc:
            self.connection_lost(exc)
            if self.transport is not None:
                self.transport.close()
            return
        del self.buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.pending:
            fut, _, _ = self.pending.popleft()
            if not fut.done():
                fut.set_exception(ServiceUnavailable(f"redis connection lost: {exc}"))


class RespConnection:
    """One pipelined connection, opened on first use and again after a failure."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.host, self.port, self.path, self.db = host, port, path, db
        self.username, self.password, self.timeout = username, password, timeout
        self.proto: _Proto | None = None
        self.lock = asyncio.Lock()

    @classmethod
    def like(cls, client: Any) -> RespConnection | None:
        """A connection to the server of a redis-py client (None: TLS or another kind of server)."""
        pool = client.connection_pool
        kw = pool.connection_kwargs
        name = pool.connection_class.__name__
        if name not in {"Connection", "UnixDomainSocketConnection"}:
            return None
        return cls(
            kw.get("host", "127.0.0.1"),
            int(kw.get("port", 6379)),
            path=kw.get("path") if name == "UnixDomainSocketConnection" else None,
            db=int(kw.get("db") or 0),
            username=kw.get("username"),
            password=kw.get("password"),
            timeout=float(kw.get("socket_timeout") or 1.0),
        )

    async def _open(self) -> _Proto:
        proto = self.proto
        if proto is not None and not proto.lost:
            return proto
        async with self.lock:
            if self.proto is not None and not self.proto.lost:
                return self.proto
            loop = asyncio.get_running_loop()
            try:
                if self.path is not None:
                    opening = loop.create_unix_connection(_Proto, self.path)
                else:
                    opening = loop.create_connection(_Proto, self.host, self.port)
                _, made = await asyncio.wait_for(opening, self.timeout)
            except (OSError, TimeoutError) as exc:
                raise ServiceUnavailable(f"redis cache unavailable: {exc}") from exc
            hello: list[bytes] = []
            proto = made
            if self.password:
                auth = [self.username.encode()] if self.username else []
                hello.append(command(b"AUTH", *auth, self.password.encode()))
            if self.db:
                hello.append(command(b"SELECT", str(self.db).encode()))
            if hello:
                replies = await self._wait(proto.send(b"".join(hello), len(hello)))
                if any(isinstance(r, RespError) for r in replies):
                    proto.transport.close()  # type: ignore[union-attr]
                    raise ServiceUnavailable(f"redis refused the connection: {replies}")
            self.proto = proto
            return proto

    async def _wait(self, fut: asyncio.Future[list[Any]]) -> list[Any]:
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            if self.proto is not None and self.proto.transport is not None:
                self.proto.transport.close()
            raise ServiceUnavailable(f"redis did not answer within {self.timeout} s") from None

    async def mget(self, keys: list[bytes]) -> list[bytes | None]:
        """``MGET`` of the keys."""
        proto = await self._open()
        (reply,) = await self._wait(proto.send(command(b"MGET", *keys), 1))
        if not isinstance(reply, list):
            raise ServiceUnavailable(f"redis answered MGET with {reply!r:.100}")
        return reply

    async def set_px(self, items: list[tuple[bytes, bytes, int]]) -> None:
        """``SET key value PX ms`` for each item, in one write."""
        if not items:
            return
        proto = await self._open()
        data = b"".join(command(b"SET", k, v, b"PX", str(ms).encode()) for k, v, ms in items)
        replies = await self._wait(proto.send(data, len(items)))
        errors = [r for r in replies if isinstance(r, RespError)]
        if errors:
            raise ServiceUnavailable(f"redis refused {len(errors)} writes: {errors[0]}")

    def close(self) -> None:
        """Close the connection."""
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()
        self.proto = None
