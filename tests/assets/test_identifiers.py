"""Identifier records follow their objects in the same transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

from gongyun.assets import crud
from gongyun.assets.schemas import DeviceIn, DevicePatch, Level, NodeIn, NodePatch, TagIn, TagPatch
from gongyun.db import Database
from gongyun.errors import Conflict
from gongyun.idres import prefixes as pfx
from gongyun.idres.errors import HandleNotFound, PrefixNotServed
from gongyun.idres.objects import ObjectRegistrar
from gongyun.idres.registry import Record, Registry
from gongyun.security.classify.keyring import Keyring

BASE = "http://gongyun.test"


def _values(rec: Record) -> dict[str, tuple[object, bool]]:
    return {v.type: (v.value, v.public) for v in rec.values}


async def test_records_follow_renames_classification_moves_and_deletes(db: Database) -> None:
    ring = Keyring([b"\x07" * 32])
    ids, reg = ObjectRegistrar(db, "88.100", BASE, ring), Registry(db, keyring=ring)
    async with db.session() as s:
        ent = await crud.create_node(s, "t1", NodeIn(level=Level.enterprise, name="Acme"), minter=ids)
        site = await crud.create_node(
            s, "t1", NodeIn(level=Level.site, name="S", parent_id=ent.id), minter=ids
        )
        area = await crud.create_node(
            s, "t1", NodeIn(level=Level.area, name="A", parent_id=site.id), minter=ids
        )
        line = await crud.create_node(
            s, "t1", NodeIn(level=Level.line, name="L", parent_id=area.id), minter=ids
        )
        eq = await crud.create_node(
            s, "t1", NodeIn(level=Level.equipment, name="Press", parent_id=line.id), minter=ids
        )
        dev = await crud.create_device(s, "t1", DeviceIn(name="plc", equipment_id=eq.id), minter=ids)
        tag = await crud.create_tag(s, "t1", dev.id, TagIn(name="temp"), minter=ids)
    assert _values(await reg.get("t1", tag.identifier))["GY_NAME"] == ("temp", True)
    assert _values(await reg.get("t1", dev.identifier))["GY_PARENT"] == (eq.identifier, False)

    async with db.session() as s:
        await crud.update_node(
            s, "t1", ent.id, NodePatch(name="Acme Group", classification="core"), minter=ids
        )
        await crud.update_tag(s, "t1", tag.id, TagPatch(classification="important"), minter=ids)
        await crud.update_device(s, "t1", dev.id, DevicePatch(equipment_id=None), minter=ids)
    company = _values(await reg.get("t1", ent.identifier, reveal=True))
    assert company["GY_NAME"] == ("Acme Group", False) and company["GY_CLASSIFICATION"][0] == "core"
    stored = {v.type: v for v in (await reg.get("t1", ent.identifier)).values}
    assert stored["GY_NAME"].sealed and not stored["GY_KIND"].sealed  # a core object's name is sealed
    assert not _values(await reg.get("t1", tag.identifier))["GY_KIND"][1]  # now private
    assert "GY_PARENT" not in _values(await reg.get("t1", dev.identifier))  # unbound

    # a failing change rolls the record back with the object
    with pytest.raises(Conflict):
        async with db.session() as s:
            await crud.update_node(s, "t1", site.id, NodePatch(name="Renamed"), minter=ids)
            await crud.create_node(s, "t1", NodeIn(level=Level.enterprise, name="Acme Group"), minter=ids)
    assert _values(await reg.get("t1", site.identifier))["GY_NAME"][0] == "S"

    async with db.session() as s:
        await crud.update_device(s, "t1", dev.id, DevicePatch(equipment_id=eq.id), minter=ids)
        await crud.delete_node(s, "t1", eq.id, minter=ids)  # the device stays, unbound
    assert "GY_PARENT" not in _values(await reg.get("t1", dev.identifier))
    with pytest.raises(HandleNotFound):
        await reg.get("t1", eq.identifier)
    async with db.session() as s:
        await crud.delete_device(s, "t1", dev.id, minter=ids)  # and its tags
    for gone in (dev.identifier, tag.identifier):
        with pytest.raises(HandleNotFound):
            await reg.get("t1", gone)


async def test_a_prefix_per_tenant_allocated_once_even_concurrently(db: Database) -> None:
    ids = ObjectRegistrar(db, "88.100", BASE)

    async def first_object(tenant: str) -> str:
        async with db.session() as s:
            node = await crud.create_node(s, tenant, NodeIn(level=Level.enterprise, name="E"), minter=ids)
            return node.identifier.partition("/")[0]

    tenants = [f"t{n}" for n in range(12)]  # more than the retries: PostgreSQL must serialise them
    got = await asyncio.gather(*(first_object(t) for t in tenants), return_exceptions=True)
    # racing allocations retry on the next number: every tenant gets its own prefix
    assert sorted(map(str, got)) == sorted(f"88.100.{n}" for n in range(1, 13)), got
    async with db.session() as s:
        node = await crud.create_node(s, tenants[0], NodeIn(level=Level.enterprise, name="F"), minter=ids)
        filed = await pfx.list_prefixes(s, tenants[0])
    assert [p.prefix for p in filed] == [node.identifier.partition("/")[0]]


async def test_a_suspended_prefix_refuses_new_objects(db: Database) -> None:
    ids = ObjectRegistrar(db, "88.100", BASE)
    async with db.session() as s:
        node = await crud.create_node(s, "t1", NodeIn(level=Level.enterprise, name="E"), minter=ids)
        prefix = node.identifier.partition("/")[0]
        await pfx.transition(s, "t1", prefix, "suspended", "audit")
    with pytest.raises(PrefixNotServed):
        async with db.session() as s:
            await crud.create_node(s, "t1", NodeIn(level=Level.enterprise, name="F"), minter=ids)
