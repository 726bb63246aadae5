"""Basic credentials are checked once for concurrent callers, off the event loop, refreshed ahead."""

from __future__ import annotations

import asyncio
import base64
import hashlib
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
    store_answers = asyncio.Event()
    store_answers.set()

    async def lookup(handle: str, index: int) -> str | None:
        await store_answers.wait()  # the credential store, held back below
        return await _lookup(handle, index)

    basic = HandleBasicAuth(lookup)
    assert await basic(_headers("s3cret")) is not None
    assert basic.checks == 1
    # the remembered check is about to expire: it answers without waiting for the store (held
    # back) and is re-checked behind
    for key, (_, principal, norm) in list(basic._cache.items()):
        basic._cache[key] = (time.monotonic() + auth._REFRESH_S / 2, principal, norm)
    store_answers.clear()
    assert await asyncio.wait_for(basic(_headers("s3cret")), 5.0) is not None
    store_answers.set()
    for _ in range(500):
        expires = next(iter(basic._cache.values()))[0]
        if expires - time.monotonic() > auth._CACHE_S - 5:
            break
        await asyncio.sleep(0.01)
    assert expires - time.monotonic() > auth._CACHE_S - 5, "the credential was not re-checked ahead"
    assert basic.checks == 2


async def test_no_stampede_over_several_expiries() -> None:
    """Callers of a busy credential never miss it across expiries: one background check each time."""
    salt = "0123456789abcdef"  # a hash of few rounds: the check must not outlast a short window
    quick = f"pbkdf2_sha256$2000${salt}${hashlib.pbkdf2_hmac('sha256', b's3cret', salt.encode(), 2000).hex()}"

    async def lookup(handle: str, index: int) -> str | None:
        return quick

    basic = HandleBasicAuth(lookup, ttl=2.0)
    header = _headers("s3cret")["authorization"]
    assert basic.remembered(header) is None  # not verified yet: nothing answers for it
    assert await basic({"authorization": header}) is not None
    misses = served = turns_in_flight = 0
    end = time.monotonic() + 7.0  # three and a half lifetimes
    while time.monotonic() < end:
        for _ in range(50):  # fifty requests with this credential in every turn of the loop
            served += 1
            if basic.remembered(header) is None:
                misses += 1
        assert len(basic._flights) <= 1
        turns_in_flight += len(basic._flights)
        await asyncio.sleep(0.005)
    assert misses == 0, f"{misses} of {served} requests found the credential expired"
    # one check at first, then one per lifetime less the refresh window (each run once)
    assert 4 <= basic.checks <= 7, basic.checks
    assert turns_in_flight >= basic.checks - 1  # the loop kept turning while the hash was checked
    assert basic.remembered(base64.b64encode(b"300:88.100.1/admin:wrong").decode()) is None
