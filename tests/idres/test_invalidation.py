"""A write through any process is seen by every worker of every node on the registry at once.

Two nodes (three worker processes) share one database (SQLite file, scratch PostgreSQL); their
workers keep records cached for the records' TTL (a day here). Writes through the test
process, and through one node's API, must reach every worker within a second or so.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gongyun.db import Database
from gongyun.idres.nodes import NodeConfig, Role, prepare
from gongyun.idres.registry import Registry
from gongyun.idres.values import string_value
from tests.idres.nodeproc import NodeProcess
from tests.services import scratch_postgres_database

PREFIX = "88.100.1"
ADMIN = ("300:88.100.1/admin", "s3cret")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The shared registry's database URL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    else:
        with scratch_postgres_database() as pg:
            yield pg


@pytest.fixture
def nodes(url: str, tmp_path: Path) -> Iterator[list[NodeProcess]]:
    """Two enterprise nodes (of two workers and of one) on the same registry, migrated beforehand."""
    config = NodeConfig(role=Role.enterprise, db_url=url, prefixes=[PREFIX], admin_secret="s3cret")
    asyncio.run(prepare(config))
    args = ("--prefix", PREFIX, "--db", url)
    started = [
        NodeProcess("enterprise", tmp_path, f"n{w}", *args, "--workers", str(w), db=False) for w in (2, 1)
    ]
    try:
        for node in started:
            node.wait_ready(timeout=120)  # a loaded machine imports slowly
        yield started
    finally:
        for node in started:
            node.stop()


def _get(node: NodeProcess, handle: str) -> tuple[int, bytes]:
    """One GET over a new connection (the kernel spreads connections over the workers)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    try:
        conn.request("GET", f"/api/handles/{handle}")
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _urls_seen(nodes: list[NodeProcess], handle: str, rounds: int = 12) -> set[str]:
    """The URL values answered over fresh connections (spread over every worker)."""
    seen: set[str] = set()
    for _ in range(rounds):
        for node in nodes:
            status, body = _get(node, handle)
            assert status == 200, body
            seen.add(json.loads(body)["values"][0]["data"]["value"])
    return seen


def _locations_seen(nodes: list[NodeProcess], gtin: str, rounds: int = 6) -> set[str]:
    """The redirect targets of a GS1 Digital Link answered over fresh connections."""
    seen: set[str] = set()
    for _ in range(rounds):
        for node in nodes:
            conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
            try:
                conn.request("GET", f"/01/{gtin}")
                r = conn.getresponse()
                r.read()
                assert r.status == 307, r.status
                seen.add(r.getheader("location") or "")
            finally:
                conn.close()
    return seen


def _until_all_see(nodes: list[NodeProcess], handle: str, wanted: str, limit: float = 5.0) -> float:
    """Seconds until every fresh answer of every node shows ``wanted`` (fails after ``limit``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if _urls_seen(nodes, handle, rounds=6) == {wanted}:
            return time.monotonic() - t0
        time.sleep(0.05)
    pytest.fail(f"after {limit} s some worker still answers an old record of {handle}")


@pytest.mark.slow
async def test_writes_reach_every_worker(url: str, nodes: list[NodeProcess]) -> None:
    db = Database(url)
    try:
        registry = Registry(db)
        handle = f"{PREFIX}/INV-1"
        await registry.put("default", handle, [string_value(1, "URL", "https://a.example/v1")])
        assert _urls_seen(nodes, handle) == {"https://a.example/v1"}  # cached everywhere now

        # a write through another process (this one) ...
        await registry.put(
            "default", handle, [string_value(1, "URL", "https://a.example/v2")], overwrite=True
        )
        took = _until_all_see(nodes, handle, "https://a.example/v2")
        assert took < 3.0, f"took {took:.2f} s"

        # ... and through one node's Handle API
        body = {
            "values": [
                {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a.example/v3"}}
            ]
        }
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            r = await client.put(f"{nodes[0].url}/api/handles/{handle}", json=body, auth=ADMIN)
        assert r.status_code in {200, 201}, r.text
        took = _until_all_see(nodes, handle, "https://a.example/v3")
        assert took < 3.0, f"took {took:.2f} s"

        # a GS1 Digital Link's kept redirect too
        gtin = "09506000134352"
        values = [string_value(1, "URL", "https://a.example/g1"), string_value(2, "GS1_GTIN", gtin)]
        await registry.put("default", f"{PREFIX}/G-1", values)
        assert _locations_seen(nodes, gtin) == {"https://a.example/g1"}
        values[0] = string_value(1, "URL", "https://a.example/g2")
        await registry.put("default", f"{PREFIX}/G-1", values, overwrite=True)
        t0 = time.monotonic()
        while _locations_seen(nodes, gtin) != {"https://a.example/g2"}:
            assert time.monotonic() - t0 < 3.0, "a worker still redirects to the old link"
            time.sleep(0.05)

        # a deletion too
        await registry.delete("default", handle)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5.0:
            codes = set()
            for node in nodes:
                for _ in range(6):
                    codes.add(_get(node, handle)[0])
            if codes == {404}:
                break
            time.sleep(0.05)
        assert codes == {404}
    finally:
        await db.dispose()
