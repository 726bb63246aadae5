"""The recursive resolver's shared tier (Redis): batched reads and writes, each entry with its expiry.

Behind every worker's own memory tier, the workers and nodes sharing one Redis keep what any
of them fetched. The lookups of one turn of the event loop go to Redis as one ``MGET``, the
entries stored in one turn as one pipeline, so a worker-local miss costs a share of one round
trip (on a lean pipelined connection, :mod:`resp`, unless Redis is reached over TLS). Each
value carries its absolute expiry (``\\x01``, 8 bytes of Unix milliseconds, then the answer),
so a worker keeps what it read for the entry's remaining TTL and never longer; Redis drops the
key at the same time (``PX``). A value without that mark (an older layout) reads as a miss. A
failing Redis is skipped: lookups miss, writes are dropped, errors are counted.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gongyun.errors import ServiceUnavailable
from gongyun.idres.cache import RedisCache
from gongyun.idres.resp import RespConnection

log = logging.getLogger(__name__)
_MARK = b"\x01"
Found = tuple[bytes, float] | None  # the value and its remaining seconds


def pack(value: bytes, ttl: float, now: float | None = None) -> bytes:
    """A value as stored in Redis: the mark, its expiry (Unix ms), the value."""
    expiry = int(((time.time() if now is None else now) + ttl) * 1000)
    return _MARK + expiry.to_bytes(8, "big") + value


def unpack(raw: bytes | None, now: float | None = None) -> Found:
    """``(value, seconds left)`` of a stored value, or None (absent, expired or not ours)."""
    if raw is None or len(raw) < 9 or raw[:1] != _MARK:
        return None
    left = int.from_bytes(raw[1:9], "big") / 1000.0 - (time.time() if now is None else now)
    return (raw[9:], left) if left > 0 else None


class SharedTier:
    """Batched ``get``/``put`` of resolver entries in Redis."""

    def __init__(self, cache: RedisCache) -> None:
        self.cache = cache
        self.conn = RespConnection.like(cache.client)
        self.ns = cache.ns.encode()
        self.reads: dict[str, list[asyncio.Future[Found]]] = {}
        self.writes: list[tuple[str, bytes, float]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.errors = 0

    def get(self, key: str) -> asyncio.Future[Found]:
        """The entry of ``key`` (None: not there), read with the other lookups of this turn."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Found] = loop.create_future()
        waiting = self.reads.get(key)
        if waiting is not None:
            waiting.append(fut)
            return fut
        if not self.reads:
            loop.call_soon(self._spawn, self._read)
        self.reads[key] = [fut]
        return fut

    def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store an entry for ``ttl`` seconds (written with the others of this turn)."""
        if ttl <= 0:
            return
        if not self.writes:
            asyncio.get_running_loop().call_soon(self._spawn, self._write)
        self.writes.append((key, pack(value, ttl), ttl))

    def _spawn(self, job: object) -> None:
        task = asyncio.get_running_loop().create_task(job())  # type: ignore[operator]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read(self) -> None:
        batch, self.reads = self.reads, {}
        keys = list(batch)
        try:
            if self.conn is not None:
                values = await self.conn.mget([self.ns + k.encode() for k in keys])
            else:
                values = await self.cache.get_many(keys)
        except ServiceUnavailable as exc:
            self._failed("read", exc)
            values = [None] * len(keys)
        now = time.time()
        for key, raw in zip(keys, values, strict=True):
            found = unpack(raw, now)
            for fut in batch[key]:
                if not fut.done():
                    fut.set_result(found)

    async def _write(self) -> None:
        items, self.writes = self.writes, []
        try:
            if self.conn is not None:
                ns = self.ns
                await self.conn.set_px([(ns + k.encode(), v, max(1, int(t * 1000))) for k, v, t in items])
            else:
                await self.cache.set_many(items)
        except ServiceUnavailable as exc:
            self._failed("write", exc)

    def _failed(self, what: str, exc: ServiceUnavailable) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            log.warning("recursive cache %s failed (%d so far): %s", what, self.errors, exc.message)

    async def close(self) -> None:
        """Finish pending writes and close the connection pool."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.conn is not None:
            self.conn.close()
        await self.cache.close()
