"""Mirroring between two roots: peers' records come and go, one's own filings are never overwritten."""

from __future__ import annotations

import orjson
import pytest

from gongyun.errors import InvalidInput
from gongyun.idres.node_routes import NodeRoutes
from gongyun.idres.registry import Registry
from gongyun.idres.values import site_value

from .conftest import TENANT


def export(node: str, records: dict[str, int]) -> bytes:
    body = [
        {"handle": f"0.NA/{p}", "values": [site_value("127.0.0.1", port).to_json()]}
        for p, port in records.items()
    ]
    return orjson.dumps({"node": node, "records": body})


async def test_apply_mirror(registry: Registry) -> None:
    routes = NodeRoutes(registry, TENANT, [], node_id="root-a")
    await registry.put(TENANT, "0.NA/88.1", [site_value("10.0.0.1", 80)])  # our own filing
    assert await routes.apply_mirror(export("root-b", {"88.1": 9999, "88.2": 8002, "88.3": 8003})) == 2
    own = await registry.get(TENANT, "0.NA/88.1")
    assert own.values[0].value["servers"][0]["address"] == "10.0.0.1"
    peer = await registry.get(TENANT, "0.NA/88.2")
    assert [v.type for v in peer.values] == ["HS_SITE", "GY_ORIGIN"] and not peer.values[1].public
    # the peer dropped 88.3: so do we; our own 88.1 stays
    assert await routes.apply_mirror(export("root-b", {"88.2": 8002})) == 1
    _, handles = await registry.list_handles(TENANT, "0.NA", 0, 0)
    assert handles == ["0.NA/88.1", "0.NA/88.2"]
    # what we export is only what we originated
    mine = orjson.loads((await routes.mirror_export(None)).body)  # type: ignore[arg-type]
    assert [r["handle"] for r in mine["records"]] == ["0.NA/88.1"] and mine["node"] == "root-a"
    with pytest.raises(InvalidInput):
        await routes.apply_mirror(export("root-a", {}))
