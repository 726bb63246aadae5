"""Seeding the virtual factory's asset tree from the simulator profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from gongyun.alarms import repo
from gongyun.assets import crud
from gongyun.assets.seed import factory_layout, seed
from gongyun.db import Database, upgrade
from gongyun.errors import Conflict
from gongyun.idres.objects import ObjectRegistrar
from gongyun.idres.registry import Registry
from gongyun.sim.factory import profiles_dir

BASE = "http://gongyun.test"


async def test_seed_virtual_factory(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await upgrade(url)
    db = Database(url)
    try:
        async with db.session() as s:
            devices = await seed(
                s, "t1", factory_layout(profiles_dir()), minter=ObjectRegistrar(db, "88.100", BASE)
            )
        async with db.session() as s:
            tree = await crud.tree(s, "t1")
            tags = await crud.list_tags(s, "t1", devices["pump-station"])
            rules = await repo.list_rules(s, "t1")
            flow = await crud.find_tag(s, "t1", "pump-station/flow")
        site = tree[0]["children"][0]
        assert [a["name"] for a in site["children"]] == ["Machining", "Packaging", "Utilities"]
        assert set(devices) == {"pump-station", "cnc-cell", "packaging-line"}
        assert "bearing_temp" in {t.name for t in tags}
        types = {t.name: t.data_type for t in tags}
        # scaled integer registers arrive as engineering values: stored as float
        assert types["total_volume"] == "float" and types["bearing_temp_x10"] == "float"
        assert flow is not None and flow[0].unit == "m3/h"
        assert [r.name for r in rules] == ["Pump P-101 bearing hot"]
        # every seeded object is a registered identifier in the tenant's prefix
        registry = Registry(db)
        pump = await registry.get("t1", flow[0].identifier)
        by_type = {v.type: v.value for v in pump.values}
        assert by_type["GY_KIND"] == "tag" and by_type["GY_NAME"] == "flow"
        async with db.session() as s:
            device = await crud.get_device(s, "t1", devices["pump-station"])
        assert by_type["GY_PARENT"] == device.identifier and device.identifier.startswith(
            "88.100.1/gy.device."
        )
        with pytest.raises(Conflict):
            async with db.session() as s:
                await seed(
                    s, "t1", factory_layout(profiles_dir()), minter=ObjectRegistrar(db, "88.100", BASE)
                )
    finally:
        await db.dispose()
