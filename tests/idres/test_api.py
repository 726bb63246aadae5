"""The internal mint/resolve API other rooms use."""

from __future__ import annotations

import pytest

from gongyun.idres import api
from gongyun.idres.errors import HandleNotFound, PrefixNotServed
from gongyun.idres.registry import Registry

from .conftest import OTHER, TENANT


async def test_mint_and_resolve(registry: Registry) -> None:
    handle = await api.mint(
        registry.db,
        TENANT,
        "device",
        object_id="dev-42",
        url="https://x.example/d/42",
        attributes={"GY_MODEL": "PX-1"},
    )
    assert handle.startswith("88.100.1/DEV-") and len(handle.split("-", 1)[1]) == 16
    rec = await api.resolve(registry.db, TENANT, handle)
    assert {v.type: v.value for v in rec.values} == {
        "GY_KIND": "device",
        "URL": "https://x.example/d/42",
        "GY_DEVICE": "dev-42",
        "GY_MODEL": "PX-1",
    }
    lot = await api.mint(registry.db, TENANT, api.Kind.lot, suffix="LOT-2024-001")
    assert lot == "88.100.1/LOT-2024-001"
    with pytest.raises(HandleNotFound):
        await api.resolve(registry.db, OTHER, handle)
    with pytest.raises(PrefixNotServed):
        await api.mint(registry.db, "nobody", "tag")
    with pytest.raises(Exception, match="kind must be"):
        await api.mint(registry.db, TENANT, "spaceship")
