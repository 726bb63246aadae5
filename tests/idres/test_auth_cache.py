"""Basic credentials are checked once for concurrent callers, off the event loop, refreshed ahead."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from gongyun.errors import InvalidCredentials
from gongyun.idres import auth
from gongyun.idres.auth import HandleBasicAuth, hash_secret

STORED = hash_secret("s3cret")


def _headers(password: str) -> dict[str, str]:
    token = base64.b64encode(f"300:88.100.1/admin:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


async def _lookup(handle: str, index: int) -> str | None:
    return STORED if (handle, index) == ("88.100.1/admin", 300) else None


async def test_one_check_for_concurrent_callers() -> None:
    basic = HandleBasicAuth(_lookup)
    ticks = 0

    async def ticker() -> None:  # the event loop keeps turning while the hash is checked
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    tick_task = asyncio.create_task(ticker())
    principals = await asyncio.gather(*(basic(_headers("s3cret")) for _ in range(50)))
    tick_task.cancel()
    assert {p.name for p in principals if p is not None} == {"300:88.100.1/admin"}
    assert basic.checks == 1
    assert ticks > 1
    with pytest.raises(InvalidCredentials):
        await basic(_headers("wrong"))


async def test_refresh_ahead_keeps_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    basic = HandleBasicAuth(_lookup)
    assert await basic(_headers("s3cret")) is not None
    assert basic.checks == 1
    # the remembered check is about to expire: it answers at once and is re-checked behind
    for key, (_, principal, norm) in list(basic._cache.items()):
        basic._cache[key] = (time.monotonic() + auth._REFRESH_S / 2, principal, norm)
    t0 = time.perf_counter()
    assert await basic(_headers("s3cret")) is not None
    assert time.perf_counter() - t0 < 0.01
    for _ in range(500):
        expires = next(iter(basic._cache.values()))[0]
        if expires - time.monotonic() > auth._CACHE_S - 5:
            break
        await asyncio.sleep(0.01)
    assert expires - time.monotonic() > auth._CACHE_S - 5, "the credential was not re-checked ahead"
    assert basic.checks == 2
