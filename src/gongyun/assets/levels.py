"""Effective classification levels of a tenant's tags: own level raised by device and asset ancestors."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.assets.models import AssetNode, Device, Tag
from gongyun.security.classify.levels import Level, effective


async def tag_levels(session: AsyncSession, tenant_id: str) -> dict[str, Level]:
    """``device/tag`` -> effective level, inherited down the asset tree unless raised below."""
    nodes = {
        n.id: (n.parent_id, n.classification)
        for n in (
            await session.execute(
                select(AssetNode).where(AssetNode.tenant_id == tenant_id).execution_options(all_tenants=True)
            )
        ).scalars()
    }
    memo: dict[str, Level] = {}

    def node_level(node_id: str | None) -> Level:
        if node_id is None or node_id not in nodes:
            return Level.general
        if node_id not in memo:
            parent, own = nodes[node_id]
            memo[node_id] = Level.general  # cycle guard
            memo[node_id] = effective(own, [node_level(parent)])
        return memo[node_id]

    rows = await session.execute(
        select(Device.name, Device.classification, Device.equipment_id, Tag.name, Tag.classification)
        .join(Tag, Tag.device_id == Device.id)
        .where(Device.tenant_id == tenant_id)
        .execution_options(all_tenants=True)
    )
    return {
        f"{dev}/{tag}": effective(tag_cls, [dev_cls, node_level(equipment)])
        for dev, dev_cls, equipment, tag, tag_cls in rows
    }
