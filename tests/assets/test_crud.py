"""Asset model CRUD on SQLite and PostgreSQL: ISA-95 rules, devices, tags, tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from gongyun.assets import crud
from gongyun.assets.catalog import AssetCatalog
from gongyun.assets.schemas import DeviceIn, DevicePatch, Level, NodeIn, NodePatch, TagIn, TagPatch
from gongyun.db import Database, upgrade
from gongyun.errors import Conflict, NotFound, ValidationFailed
from gongyun.idres.objects import ObjectRegistrar
from gongyun.telemetry.catalog import DataType, TagSpec
from gongyun.telemetry.cleaning import CleaningConfig


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    await upgrade(db_url)
    d = Database(db_url)
    yield d
    await d.dispose()


def ids_of(db: Database, id_prefix: str = "88.100") -> ObjectRegistrar:
    """The identifier registrar the platform would pass in."""
    return ObjectRegistrar(db, id_prefix, "http://gongyun.test")


async def plant(db: Database, tenant: str = "t1") -> dict[str, str]:
    """enterprise > site > area > line > equipment, with one device and two tags."""
    ids: dict[str, str] = {}
    async with db.session() as s:
        parent = None
        for level, name in [
            ("enterprise", "Acme"),
            ("site", "Suzhou"),
            ("area", "Press shop"),
            ("line", "Line 1"),
            ("equipment", "Press 7"),
        ]:
            node = await crud.create_node(
                s, tenant, NodeIn(level=Level(level), name=name, parent_id=parent), minter=ids_of(db)
            )
            ids[level] = parent = node.id
        dev = await crud.create_device(
            s, tenant, DeviceIn(name="plc7", protocol="modbus", equipment_id=parent), minter=ids_of(db)
        )
        ids["device"] = dev.id
        t = await crud.create_tag(
            s,
            tenant,
            dev.id,
            TagIn(
                name="oil_temp",
                unit="degC",
                low=-20,
                high=150,
                source_unit="degF",
                classification="important",
            ),
            minter=ids_of(db),
        )
        ids["tag"] = t.id
        await crud.create_tag(
            s, tenant, dev.id, TagIn(name="running", data_type=DataType.bool), minter=ids_of(db)
        )
    return ids


async def test_hierarchy_tree_and_identifiers(db: Database) -> None:
    ids = await plant(db)
    async with db.session() as s:
        tree = await crud.tree(s, "t1")
        node = await crud.get_node(s, "t1", ids["equipment"])
    assert [n["name"] for n in tree] == ["Acme"]
    eq = tree[0]["children"][0]["children"][0]["children"][0]["children"][0]
    assert (eq["level"], eq["name"], eq["devices"][0]["name"]) == ("equipment", "Press 7", "plc7")
    assert node.identifier == f"88.100.1/gy.asset.{node.id}"


@pytest.mark.parametrize(
    ("level", "parent"),
    [("site", None), ("area", "enterprise"), ("line", "site"), ("equipment", "area"), ("enterprise", "site")],
)
async def test_isa95_parent_rules(db: Database, level: str, parent: str | None) -> None:
    ids = await plant(db)
    async with db.session() as s:
        with pytest.raises(ValidationFailed):
            await crud.create_node(
                s,
                "t1",
                NodeIn(level=Level(level), name="x", parent_id=ids[parent] if parent else None),
                minter=ids_of(db),
            )


async def test_cells_and_nested_equipment_are_allowed(db: Database) -> None:
    ids = await plant(db)
    async with db.session() as s:
        cell = await crud.create_node(
            s, "t1", NodeIn(level=Level.cell, name="Cell A", parent_id=ids["area"]), minter=ids_of(db)
        )
        robot = await crud.create_node(
            s, "t1", NodeIn(level=Level.equipment, name="Robot", parent_id=cell.id), minter=ids_of(db)
        )
        pump = await crud.create_node(
            s, "t1", NodeIn(level=Level.equipment, name="Pump", parent_id=ids["equipment"]), minter=ids_of(db)
        )
    assert robot.parent_id == cell.id and robot.level == "equipment"
    assert pump.parent_id == ids["equipment"]


async def test_duplicates_conflict(db: Database) -> None:
    ids = await plant(db)
    async with db.session() as s:
        with pytest.raises(Conflict):
            await crud.create_node(s, "t1", NodeIn(level=Level.enterprise, name="Acme"), minter=ids_of(db))
        with pytest.raises(Conflict):
            await crud.create_node(
                s,
                "t1",
                NodeIn(level=Level.site, name="Suzhou", parent_id=ids["enterprise"]),
                minter=ids_of(db),
            )
    async with db.session() as s:
        with pytest.raises(Conflict):
            await crud.create_device(s, "t1", DeviceIn(name="plc7"), minter=ids_of(db))
    async with db.session() as s:
        with pytest.raises(Conflict):
            await crud.create_tag(s, "t1", ids["device"], TagIn(name="running"), minter=ids_of(db))


async def test_other_tenants_objects_do_not_exist(db: Database) -> None:
    ids = await plant(db)
    await plant(db, "t2")  # same names in another tenant are fine
    async with db.session() as s:
        for fn, key in [(crud.get_node, "site"), (crud.get_device, "device"), (crud.get_tag, "tag")]:
            with pytest.raises(NotFound):
                await fn(s, "t2", ids[key])
        with pytest.raises(NotFound):
            await crud.create_node(
                s, "t2", NodeIn(level=Level.site, name="x", parent_id=ids["enterprise"]), minter=ids_of(db)
            )
        with pytest.raises(NotFound):
            await crud.create_tag(s, "t2", ids["device"], TagIn(name="x"), minter=ids_of(db))
        with pytest.raises(NotFound):
            await crud.delete_node(s, "t2", ids["equipment"], minter=ids_of(db))
        assert len(await crud.list_tags(s, "t1")) == 2 and len(await crud.list_nodes(s, "t2")) == 5


async def test_devices_bind_only_to_equipment_and_unbind(db: Database) -> None:
    ids = await plant(db)
    async with db.session() as s:
        with pytest.raises(ValidationFailed):
            await crud.create_device(
                s, "t1", DeviceIn(name="plc8", equipment_id=ids["line"]), minter=ids_of(db)
            )
        dev = await crud.update_device(
            s, "t1", ids["device"], DevicePatch(equipment_id=None), minter=ids_of(db)
        )
        assert dev.equipment_id is None
        dev = await crud.update_device(
            s,
            "t1",
            ids["device"],
            DevicePatch(equipment_id=ids["equipment"], address="10.0.0.7:502"),
            minter=ids_of(db),
        )
        assert dev.equipment_id == ids["equipment"] and dev.address == "10.0.0.7:502"
        assert [d.name for d in await crud.list_devices(s, "t1", ids["equipment"])] == ["plc7"]


async def test_delete_rules(db: Database) -> None:
    ids = await plant(db)
    async with db.session() as s:
        with pytest.raises(Conflict):
            await crud.delete_node(s, "t1", ids["line"], minter=ids_of(db))
        await crud.delete_node(s, "t1", ids["equipment"], minter=ids_of(db))  # its device stays, unbound
        assert (await crud.get_device(s, "t1", ids["device"])).equipment_id is None
        await crud.delete_device(s, "t1", ids["device"], minter=ids_of(db))
        assert await crud.list_tags(s, "t1") == []
        node = await crud.update_node(s, "t1", ids["line"], NodePatch(name="Line One"), minter=ids_of(db))
        assert node.name == "Line One"


async def test_tags_units_ranges_cleaning_and_catalog(db: Database) -> None:
    ids = await plant(db)
    async with db.session() as s:
        found = await crud.find_tag(s, "t1", "plc7/oil_temp")
        assert found is not None
        out = crud.tag_out(*found)
        assert (out.ref, out.unit, out.classification, out.identifier.startswith("88.100.1/gy.tag.")) == (
            "plc7/oil_temp",
            "degC",
            "important",
            True,
        )
        assert crud.tag_spec(*found) == TagSpec("plc7/oil_temp", DataType.float, "degC", -20, 150, "degF")
        tag = await crud.update_tag(
            s, "t1", ids["tag"], TagPatch(high=120, cleaning=CleaningConfig(high=120)), minter=ids_of(db)
        )
        assert tag.high == 120 and crud.cleaning_config(tag) == CleaningConfig(high=120)
        with pytest.raises(ValidationFailed):
            await crud.update_tag(s, "t1", ids["tag"], TagPatch(low=500), minter=ids_of(db))
        assert (
            await crud.find_tag(s, "t1", "plc7/nope") is None and await crud.find_tag(s, "t1", "bad") is None
        )
    cat = AssetCatalog(db)
    spec = await cat.get("t1", "plc7/running")
    assert spec is not None and spec.data_type is DataType.bool
    assert await cat.get("t2", "plc7/running") is None
    assert await cat.cleaning("t1", "plc7/running") is None


def test_tag_input_validation() -> None:
    with pytest.raises(ValidationError):
        TagIn(name="x", unit="furlongs_per_blarg")
    with pytest.raises(ValidationError):
        TagIn(name="x", unit="degC", source_unit="metre")
    with pytest.raises(ValidationError):
        TagIn(name="x", source_unit="degF")
    with pytest.raises(ValidationError):
        TagIn(name="x", low=5, high=1)
    with pytest.raises(ValidationError):
        DeviceIn(name="has/slash")
    with pytest.raises(ValidationError):
        NodeIn(level=Level.site, name="a/b")


async def test_identifiers_under_the_configured_prefix(db: Database) -> None:
    async with db.session() as s:
        node = await crud.create_node(
            s, "t1", NodeIn(level=Level.enterprise, name="E"), minter=ids_of(db, "86.1")
        )
    assert node.identifier == f"86.1.1/gy.asset.{node.id}"
