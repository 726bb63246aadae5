"""Federation: root, mirrored root, secondary, enterprise and recursive nodes as separate processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, scratch_postgres_database

from .nodeproc import NodeProcess

OP = {"Authorization": "Bearer op-token"}


def site(node: NodeProcess) -> dict[str, object]:
    return {"address": "127.0.0.1", "port": node.port}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def databases(request: pytest.FixtureRequest) -> Iterator[dict[str, str | bool]]:
    """Each node's database: its own SQLite file, or its own scratch PostgreSQL database."""
    names = ("root_a", "root_b", "secondary", "enterprise")
    if request.param == "sqlite":
        yield dict.fromkeys(names, True)
        return
    with ExitStack() as stack:
        yield {name: stack.enter_context(scratch_postgres_database()) for name in names}


@pytest.fixture
def nodes(tmp_path: Path, databases: dict[str, str | bool]) -> Iterator[dict[str, NodeProcess]]:
    started: dict[str, NodeProcess] = {}
    db = databases
    try:
        port_a, port_b = free_port(), free_port()
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        # two roots mirroring each other
        mirror = ("--mirror-interval", "0.3")
        started["root_a"] = NodeProcess(
            "root", tmp_path, "root_a", "--mirror-of", b, *mirror, port=port_a, db=db["root_a"]
        )
        started["root_b"] = NodeProcess(
            "root", tmp_path, "root_b", "--mirror-of", a, *mirror, port=port_b, db=db["root_b"]
        )
        started["secondary"] = NodeProcess(
            "secondary", tmp_path, "secondary", "--prefix", "88.100", "--root", a, db=db["secondary"]
        )
        started["enterprise"] = NodeProcess(
            "enterprise", tmp_path, "enterprise", "--prefix", "88.100.1", db=db["enterprise"]
        )
        started["recursive"] = NodeProcess(
            "recursive", tmp_path, "recursive", "--root", a, "--root", b, "--negative-ttl", "30", db=False
        )
        for node in started.values():
            node.wait_ready(120)  # four nodes migrating their databases at once on a loaded machine
        yield started
    finally:
        for node in started.values():
            node.stop()


def wait_for(fn, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.mark.slow
def test_federation(nodes: dict[str, NodeProcess]) -> None:
    root, mirror, sec, ent, rec = (
        nodes[k] for k in ("root_a", "root_b", "secondary", "enterprise", "recursive")
    )
    c = httpx.Client(timeout=10, trust_env=False)

    # filing of the secondary prefix at the root: submitted -> verified -> active
    r = c.post(
        f"{root.url}/api/filings",
        headers=OP,
        json={
            "prefix": "88.100",
            "kind": "secondary",
            "orgName": "Pumps Industry",
            "site": site(sec),
            "ttl": 1,
        },
    )
    assert r.status_code == 201 and r.json()["filing"]["status"] == "submitted"
    assert c.get(f"{root.url}/api/handles/0.NA/88.100").status_code == 404
    assert c.post(f"{root.url}/api/filings/88.100/activate", headers=OP).status_code == 409
    for action in ("verify", "activate"):
        assert c.post(f"{root.url}/api/filings/88.100/{action}", headers=OP).status_code == 200
    assert c.post(f"{root.url}/api/filings/88.100/verify").status_code == 401
    assert c.get(f"{root.url}/api/handles/0.NA/88.100").json()["values"][0]["type"] == "HS_SITE"

    # the secondary allocates an enterprise prefix served by the enterprise node
    r = c.post(
        f"{sec.url}/api/allocations", headers=OP, json={"prefix": "88.100.1", "site": site(ent), "ttl": 1}
    )
    assert r.status_code == 201, r.text

    # the enterprise registers a record with a short TTL
    values = [{"index": 1, "type": "URL", "data": "https://plant.example/p1", "ttl": 2}]
    r = c.put(f"{ent.url}/api/handles/88.100.1/PUMP-1", headers=OP, json={"values": values})
    assert r.status_code == 201, r.text

    # resolution through the recursive node, then from its cache
    first = c.get(f"{rec.url}/api/handles/88.100.1/PUMP-1")
    assert (
        first.status_code == 200 and first.json()["values"][0]["data"]["value"] == "https://plant.example/p1"
    )
    upstream = c.get(f"{rec.url}/api/resolver/stats").json()["upstream"]
    second = c.get(f"{rec.url}/api/handles/88.100.1/pump-1")
    assert second.json()["values"][0]["data"]["value"] == "https://plant.example/p1"
    stats = c.get(f"{rec.url}/api/resolver/stats").json()
    assert stats["upstream"] == upstream and stats["hits"] >= 1

    # a changed value: the cached answer is kept until its TTL runs out
    values[0]["data"] = "https://plant.example/p1-moved"
    assert (
        c.put(
            f"{ent.url}/api/handles/88.100.1/PUMP-1?overwrite=true", headers=OP, json={"values": values}
        ).status_code
        == 200
    )
    assert (
        c.get(f"{rec.url}/api/handles/88.100.1/PUMP-1").json()["values"][0]["data"]["value"].endswith("/p1")
    )
    time.sleep(2.3)
    moved = c.get(f"{rec.url}/api/handles/88.100.1/PUMP-1").json()
    assert moved["values"][0]["data"]["value"].endswith("/p1-moved")

    # an unknown prefix is answered negatively, and the negative answer is cached
    r = c.get(f"{rec.url}/api/handles/77.5/thing")
    assert (r.status_code, r.json()["responseCode"]) == (404, 100)
    before = c.get(f"{rec.url}/api/resolver/stats").json()
    assert c.get(f"{rec.url}/api/handles/77.5/thing").status_code == 404
    after = c.get(f"{rec.url}/api/resolver/stats").json()
    assert after["upstream"] == before["upstream"] and after["negativeHits"] == before["negativeHits"] + 1

    # mirroring goes both ways: a filing activated at root B reaches root A
    r = c.post(
        f"{mirror.url}/api/filings",
        headers=OP,
        json={"prefix": "88.200", "kind": "secondary", "site": site(sec)},
    )
    assert r.status_code == 201
    for action in ("verify", "activate"):
        assert c.post(f"{mirror.url}/api/filings/88.200/{action}", headers=OP).status_code == 200
    wait_for(lambda: c.get(f"{root.url}/api/handles/0.NA/88.200").status_code == 200)
    assert c.post(f"{mirror.url}/api/filings/88.200/suspend", headers=OP).status_code == 200
    wait_for(lambda: c.get(f"{root.url}/api/handles/0.NA/88.200").status_code == 404)

    # with root A stopped, the mirrored root B keeps resolution going
    wait_for(lambda: c.get(f"{mirror.url}/api/handles/0.NA/88.100").status_code == 200)
    assert (
        c.put(f"{ent.url}/api/handles/88.100.1/PUMP-2", headers=OP, json={"values": values}).status_code
        == 201
    )
    root.stop()
    time.sleep(1.2)  # let the cached referrals (ttl 1 s) expire so the roots are asked again
    r = c.get(f"{rec.url}/api/handles/88.100.1/PUMP-2")
    assert r.status_code == 200, r.text
    stats = c.get(f"{rec.url}/api/resolver/stats").json()
    assert stats["bySite"].get(mirror.url, 0) >= 1 and stats["upstreamErrors"] >= 1
