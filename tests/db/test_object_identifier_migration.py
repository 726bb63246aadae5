"""assets_0004 registers an identifier for every existing asset, device and tag (both databases),
reusing a tenant's filed prefix or allocating the next one, and its down step undoes that."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gongyun.assets import crud
from gongyun.assets.schemas import NodePatch
from gongyun.db import Database, downgrade, upgrade
from gongyun.db.base import utcnow
from gongyun.idres import prefixes as pfx
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.models import IdPrefix, IdRecord
from gongyun.idres.objects import ObjectRegistrar
from gongyun.idres.registry import Registry


def _table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns))


def _id(name: str) -> str:
    return name.ljust(32, "0")


def _row(name: str, tenant: str, **extra: Any) -> dict[str, Any]:
    return {"id": _id(name), "tenant_id": tenant, "name": name, "description": "", "identifier": "", **extra}


async def _seed_at_assets_0003(url: str) -> None:
    """Objects as the previous schema kept them (unregistered identifiers), and filed prefixes."""
    now = utcnow()
    common = ("id", "tenant_id", "name", "description", "identifier", "created_at")
    nodes = _table("asset_nodes", *common, "parent_id", "level", "updated_at")
    devices = _table("asset_devices", *common, "equipment_id", "protocol", "address")
    tags = _table("asset_tags", *common, "device_id", "data_type", "classification")
    db = Database(url)
    try:
        async with db.session() as s:
            await s.execute(
                sa.insert(nodes),
                [
                    _row("n1", "t1", parent_id=None, level="enterprise", created_at=now, updated_at=now),
                    _row("n2", "t1", parent_id=_id("n1"), level="site", created_at=now, updated_at=now),
                    _row("m1", "t2", parent_id=None, level="enterprise", created_at=now, updated_at=now),
                ],
            )
            await s.execute(
                sa.insert(devices),
                [_row("d1", "t1", equipment_id=_id("n2"), protocol="modbus", address="", created_at=now)],
            )
            await s.execute(
                sa.insert(tags),
                [
                    _row(
                        "g1",
                        "t1",
                        device_id=_id("d1"),
                        data_type="float",
                        classification="core",
                        created_at=now,
                    )
                ],
            )
            # another organisation's filing and a prefix tenant t2 filed by hand
            await pfx.submit(s, "someone", "88.100.1", "enterprise", status=pfx.FilingStatus.active)
            await pfx.submit(s, "t2", "88.100.7", "enterprise", status=pfx.FilingStatus.active)
    finally:
        await db.dispose()


async def _columns(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        return {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns(table))}


async def test_existing_objects_get_registered_identifiers_and_back(db_url: str) -> None:
    await upgrade(db_url, "assets_0003")
    await upgrade(db_url, "idres_0001")
    await _seed_at_assets_0003(db_url)
    await upgrade(db_url)
    db = Database(db_url)
    registry = Registry(db)
    try:
        async with db.session() as s:
            n1 = await crud.get_node(s, "t1", _id("n1"))
            n2 = await crud.get_node(s, "t1", _id("n2"))
            d1 = await crud.get_device(s, "t1", _id("d1"))
            g1 = await crud.get_tag(s, "t1", _id("g1"))
            m1 = await crud.get_node(s, "t2", _id("m1"))
            owners = {p.prefix: p.tenant_id for p in (await s.execute(sa.select(IdPrefix))).scalars()}
        # t1 had no prefix: the next free number is allocated; t2 keeps the one it filed
        assert n1.identifier == f"88.100.8/gy.asset.{_id('n1')}" and m1.identifier.startswith("88.100.7/")
        assert (d1.identifier, g1.identifier) == (
            f"88.100.8/gy.device.{_id('d1')}",
            f"88.100.8/gy.tag.{_id('g1')}",
        )
        assert owners == {"88.100.1": "someone", "88.100.7": "t2", "88.100": "platform", "88.100.8": "t1"}
        assert n1.classification == "general" and d1.classification == "general"
        site = {v.type: v for v in (await registry.get("t1", n2.identifier)).values}
        assert site["GY_PARENT"].value == n1.identifier and site["GY_NAME"].value == "n2"
        assert site["GY_NAME"].public and not site["URL"].public
        tag = await registry.get("t1", g1.identifier)
        assert {v.type for v in tag.values if v.public} == {"HS_ADMIN"}  # a core tag is all private
        assert {v.type: v.value for v in tag.values}["GY_PARENT"] == d1.identifier
        await registry.get("platform", "0.NA/88.100.8")
        # today's code works on the migrated records: a rename rewrites the name value
        async with db.session() as s:
            minter = ObjectRegistrar(db, "88.100", "http://gongyun.test")
            await crud.update_node(s, "t1", _id("n2"), NodePatch(name="Site B"), minter=minter)
        renamed = {v.type: v.value for v in (await registry.get("t1", n2.identifier)).values}
        assert renamed["GY_NAME"] == "Site B"
    finally:
        await db.dispose()

    await downgrade(db_url, "assets_0003")
    db = Database(db_url)
    try:
        async with db.session() as s:
            legacy = (await s.execute(sa.text("SELECT identifier FROM asset_tags"))).scalars().all()
            records = (await s.execute(sa.select(IdRecord.handle))).scalars().all()
            prefixes = {p.prefix for p in (await s.execute(sa.select(IdPrefix))).scalars()}
        assert legacy == [f"88.100.1/gy.tag.{_id('g1')}"]
        assert records == []  # object and referral records are gone
        assert prefixes == {"88.100.1", "88.100.7"}  # only the filings made by hand stay
        assert "classification" not in await _columns(db, "asset_nodes")
        assert "classification" not in await _columns(db, "asset_devices")
        with pytest.raises(HandleNotFound):
            await Registry(db).get("t1", f"88.100.8/gy.asset.{_id('n1')}")
    finally:
        await db.dispose()
    await upgrade(db_url)  # and up again
    db = Database(db_url)
    try:
        async with db.session() as s:
            again = await crud.get_tag(s, "t1", _id("g1"))
        values = {v.type for v in (await Registry(db).get("t1", again.identifier)).values}
        assert again.identifier.startswith("88.100.8/") and values >= {"GY_KIND", "GY_PARENT", "URL"}
    finally:
        await db.dispose()
