"""Tenant-scoped data access for the asset model: every function takes the session and tenant id."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.assets.identifiers import IdentifierMinter, ObjectInfo, ObjectKind
from gongyun.assets.models import AssetNode, Device, Tag
from gongyun.assets.schemas import (
    PARENTS,
    DeviceIn,
    DevicePatch,
    Level,
    NodeIn,
    NodePatch,
    TagIn,
    TagOut,
    TagPatch,
)
from gongyun.db.base import utcnow
from gongyun.errors import Conflict, NotFound, ValidationFailed
from gongyun.telemetry.catalog import DataType, TagSpec
from gongyun.telemetry.cleaning import CleaningConfig


async def _flush(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"{what} already exists") from exc


# -- identifiers -------------------------------------------------------------------------------
def _info(kind: ObjectKind, obj: AssetNode | Device | Tag, parent: str | None) -> ObjectInfo:
    return ObjectInfo(obj.tenant_id, kind, obj.id, obj.name, obj.classification, parent or None)


async def _node_info(session: AsyncSession, node: AssetNode) -> ObjectInfo:
    parent = await get_node(session, node.tenant_id, node.parent_id) if node.parent_id else None
    return _info("asset", node, parent.identifier if parent else None)


async def _device_info(session: AsyncSession, dev: Device) -> ObjectInfo:
    eq = await get_node(session, dev.tenant_id, dev.equipment_id) if dev.equipment_id else None
    return _info("device", dev, eq.identifier if eq else None)


async def _tag_info(session: AsyncSession, tag: Tag) -> ObjectInfo:
    dev = await get_device(session, tag.tenant_id, tag.device_id)
    return _info("tag", tag, dev.identifier)


async def _sync(session: AsyncSession, minter: IdentifierMinter, obj: AssetNode | Device | Tag) -> None:
    """Rewrite an object's identifier record after a change (registering it if it has none)."""
    if isinstance(obj, AssetNode):
        info = await _node_info(session, obj)
    elif isinstance(obj, Device):
        info = await _device_info(session, obj)
    else:
        info = await _tag_info(session, obj)
    if obj.identifier:
        await minter.update(session, obj.identifier, info)
    else:
        obj.identifier = await minter.register(session, info)


# -- hierarchy ---------------------------------------------------------------------------------
async def get_node(session: AsyncSession, tenant_id: str, node_id: str) -> AssetNode:
    """One node of the tenant (NotFound otherwise)."""
    q = select(AssetNode).where(AssetNode.tenant_id == tenant_id, AssetNode.id == node_id)
    node = (await session.execute(q)).scalar_one_or_none()
    if node is None:
        raise NotFound("asset not found")
    return node


async def create_node(
    session: AsyncSession, tenant_id: str, data: NodeIn, *, minter: IdentifierMinter
) -> AssetNode:
    """Create a node under a parent of the level ISA-95 allows, with its identifier."""
    allowed = PARENTS[data.level]
    parent: AssetNode | None = None
    if data.parent_id is None:
        if allowed:
            raise ValidationFailed(f"a {data.level} needs a parent ({', '.join(sorted(allowed))})")
    else:
        parent = await get_node(session, tenant_id, data.parent_id)
        if Level(parent.level) not in allowed:
            raise ValidationFailed(f"a {data.level} cannot be placed under a {parent.level}")
    same_place = (
        AssetNode.parent_id.is_(None) if data.parent_id is None else AssetNode.parent_id == data.parent_id
    )
    q = select(AssetNode.id).where(AssetNode.tenant_id == tenant_id, same_place, AssetNode.name == data.name)
    if (await session.execute(q)).first() is not None:
        raise Conflict(f"{data.name!r} already exists at this place in the hierarchy")
    node = AssetNode(
        tenant_id=tenant_id,
        level=data.level.value,
        name=data.name,
        parent_id=data.parent_id,
        description=data.description,
        classification=data.classification.value,
    )
    session.add(node)
    await _flush(session, f"asset {data.name!r}")
    node.identifier = await minter.register(
        session, _info("asset", node, parent.identifier if parent else None)
    )
    await session.flush()
    return node


async def list_nodes(session: AsyncSession, tenant_id: str) -> list[AssetNode]:
    """Every node of the tenant, by level then name."""
    q = select(AssetNode).where(AssetNode.tenant_id == tenant_id).order_by(AssetNode.name)
    return list((await session.execute(q)).scalars())


async def update_node(
    session: AsyncSession, tenant_id: str, node_id: str, data: NodePatch, *, minter: IdentifierMinter
) -> AssetNode:
    """Rename, re-describe or reclassify a node (its identifier record follows)."""
    node = await get_node(session, tenant_id, node_id)
    if data.name is not None:
        node.name = data.name
    if data.description is not None:
        node.description = data.description
    if data.classification is not None:
        node.classification = data.classification.value
    node.updated_at = utcnow()
    await _flush(session, f"asset {node.name!r}")
    await _sync(session, minter, node)
    return node


async def delete_node(
    session: AsyncSession, tenant_id: str, node_id: str, *, minter: IdentifierMinter
) -> None:
    """Delete a leaf node and its identifier (its devices become unbound); children: Conflict."""
    node = await get_node(session, tenant_id, node_id)
    q = (
        select(func.count())
        .select_from(AssetNode)
        .where(AssetNode.tenant_id == tenant_id, AssetNode.parent_id == node_id)
    )
    if (await session.execute(q)).scalar_one():
        raise Conflict("the asset has children: delete them first")
    for dev in (
        await session.execute(
            select(Device).where(Device.tenant_id == tenant_id, Device.equipment_id == node_id)
        )
    ).scalars():
        dev.equipment_id = None
        await _sync(session, minter, dev)
    await minter.delete(session, tenant_id, node.identifier)
    await session.delete(node)
    await session.flush()


async def tree(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """The whole hierarchy as nested dicts, with devices under their equipment."""
    nodes = await list_nodes(session, tenant_id)
    devices = await list_devices(session, tenant_id)
    out: dict[str, dict[str, Any]] = {
        n.id: {
            "id": n.id,
            "level": n.level,
            "name": n.name,
            "identifier": n.identifier,
            "children": [],
            "devices": [],
        }
        for n in nodes
    }
    for d in devices:
        if d.equipment_id in out:
            out[d.equipment_id]["devices"].append({"id": d.id, "name": d.name, "protocol": d.protocol})
    roots: list[dict[str, Any]] = []
    for n in nodes:
        (out[n.parent_id]["children"] if n.parent_id in out else roots).append(out[n.id])
    return roots


# -- devices -----------------------------------------------------------------------------------
async def _equipment(session: AsyncSession, tenant_id: str, node_id: str) -> AssetNode:
    node = await get_node(session, tenant_id, node_id)
    if node.level != Level.equipment:
        raise ValidationFailed(f"devices bind to equipment, not to a {node.level}")
    return node


async def create_device(
    session: AsyncSession, tenant_id: str, data: DeviceIn, *, minter: IdentifierMinter
) -> Device:
    """Create a device with its identifier, bound to an equipment node when ``equipment_id`` is given."""
    eq = None if data.equipment_id is None else await _equipment(session, tenant_id, data.equipment_id)
    dev = Device(tenant_id=tenant_id, **data.model_dump(mode="json"))
    session.add(dev)
    await _flush(session, f"device {data.name!r}")
    dev.identifier = await minter.register(session, _info("device", dev, eq.identifier if eq else None))
    await session.flush()
    return dev


async def get_device(session: AsyncSession, tenant_id: str, device_id: str) -> Device:
    """One device of the tenant."""
    q = select(Device).where(Device.tenant_id == tenant_id, Device.id == device_id)
    dev = (await session.execute(q)).scalar_one_or_none()
    if dev is None:
        raise NotFound("device not found")
    return dev


async def list_devices(
    session: AsyncSession, tenant_id: str, equipment_id: str | None = None
) -> list[Device]:
    """The tenant's devices (of one equipment when given)."""
    q = select(Device).where(Device.tenant_id == tenant_id)
    if equipment_id is not None:
        q = q.where(Device.equipment_id == equipment_id)
    return list((await session.execute(q.order_by(Device.name))).scalars())


async def update_device(
    session: AsyncSession, tenant_id: str, device_id: str, data: DevicePatch, *, minter: IdentifierMinter
) -> Device:
    """Change a device; ``equipment_id`` (when sent) binds or, as null, unbinds it."""
    dev = await get_device(session, tenant_id, device_id)
    fields = data.model_dump(mode="json", exclude_unset=True)
    if "equipment_id" in fields and fields["equipment_id"] is not None:
        await _equipment(session, tenant_id, fields["equipment_id"])
    for k, v in fields.items():
        if v is not None or k == "equipment_id":
            setattr(dev, k, v)
    await session.flush()
    await _sync(session, minter, dev)
    return dev


async def delete_device(
    session: AsyncSession, tenant_id: str, device_id: str, *, minter: IdentifierMinter
) -> None:
    """Delete a device and its tags, with their identifiers."""
    dev = await get_device(session, tenant_id, device_id)
    for tag in await list_tags(session, tenant_id, device_id):
        await minter.delete(session, tenant_id, tag.identifier)
    await minter.delete(session, tenant_id, dev.identifier)
    await session.execute(delete(Tag).where(Tag.tenant_id == tenant_id, Tag.device_id == device_id))
    await session.delete(dev)
    await session.flush()


# -- tags --------------------------------------------------------------------------------------
async def create_tag(
    session: AsyncSession,
    tenant_id: str,
    device_id: str,
    data: TagIn,
    *,
    minter: IdentifierMinter,
) -> Tag:
    """Create a tag of a device, with its identifier."""
    dev = await get_device(session, tenant_id, device_id)
    fields = data.model_dump(exclude={"cleaning"})
    tag = Tag(
        tenant_id=tenant_id,
        device_id=device_id,
        **fields,
        cleaning_json=data.cleaning.model_dump_json() if data.cleaning else None,
    )
    session.add(tag)
    await _flush(session, f"tag {data.name!r}")
    tag.identifier = await minter.register(session, _info("tag", tag, dev.identifier))
    await session.flush()
    return tag


async def get_tag(session: AsyncSession, tenant_id: str, tag_id: str) -> Tag:
    """One tag of the tenant."""
    q = select(Tag).where(Tag.tenant_id == tenant_id, Tag.id == tag_id)
    tag = (await session.execute(q)).scalar_one_or_none()
    if tag is None:
        raise NotFound("tag not found")
    return tag


async def list_tags(session: AsyncSession, tenant_id: str, device_id: str | None = None) -> list[Tag]:
    """The tenant's tags (of one device when given)."""
    q = select(Tag).where(Tag.tenant_id == tenant_id)
    if device_id is not None:
        q = q.where(Tag.device_id == device_id)
    return list((await session.execute(q.order_by(Tag.name))).scalars())


async def update_tag(
    session: AsyncSession, tenant_id: str, tag_id: str, data: TagPatch, *, minter: IdentifierMinter
) -> Tag:
    """Change a tag's unit, range, classification, description or cleaning."""
    tag = await get_tag(session, tenant_id, tag_id)
    fields = data.model_dump(exclude_unset=True, exclude={"cleaning"})
    for k, v in fields.items():
        setattr(tag, k, v.value if hasattr(v, "value") else v)
    if "cleaning" in data.model_fields_set:
        tag.cleaning_json = data.cleaning.model_dump_json() if data.cleaning else None
    if tag.low is not None and tag.high is not None and tag.low > tag.high:
        raise ValidationFailed("low must not exceed high")
    await session.flush()
    await _sync(session, minter, tag)
    return tag


async def delete_tag(session: AsyncSession, tenant_id: str, tag_id: str, *, minter: IdentifierMinter) -> None:
    """Delete a tag and its identifier (its stored telemetry stays until retention removes it)."""
    tag = await get_tag(session, tenant_id, tag_id)
    await minter.delete(session, tenant_id, tag.identifier)
    await session.delete(tag)
    await session.flush()


async def find_tag(session: AsyncSession, tenant_id: str, ref: str) -> tuple[Tag, Device] | None:
    """A tag by its ``device/tag`` reference."""
    device, sep, name = ref.partition("/")
    if not sep:
        return None
    q = (
        select(Tag, Device)
        .join(Device, Device.id == Tag.device_id)
        .where(
            Tag.tenant_id == tenant_id, Device.tenant_id == tenant_id, Device.name == device, Tag.name == name
        )
    )
    row = (await session.execute(q)).first()
    return None if row is None else (row[0], row[1])


def tag_out(tag: Tag, device: Device) -> TagOut:
    """A tag with its ``device/tag`` reference."""
    return TagOut(
        id=tag.id,
        device_id=tag.device_id,
        ref=f"{device.name}/{tag.name}",
        name=tag.name,
        data_type=tag.data_type,
        unit=tag.unit,
        source_unit=tag.source_unit,
        low=tag.low,
        high=tag.high,
        classification=tag.classification,
        description=tag.description,
        cleaning=orjson.loads(tag.cleaning_json) if tag.cleaning_json else None,
        identifier=tag.identifier,
        created_at=tag.created_at,
    )


def tag_spec(tag: Tag, device: Device) -> TagSpec:
    """What ingest validates samples of this tag against."""
    return TagSpec(
        f"{device.name}/{tag.name}", DataType(tag.data_type), tag.unit, tag.low, tag.high, tag.source_unit
    )


def cleaning_config(tag: Tag) -> CleaningConfig | None:
    """The tag's cleaning configuration, if any."""
    return CleaningConfig.model_validate_json(tag.cleaning_json) if tag.cleaning_json else None


async def tag_refs_under(session: AsyncSession, tenant_id: str, node_id: str) -> list[str]:
    """``device/tag`` references of every tag whose device is bound somewhere below a node (inclusive)."""
    await get_node(session, tenant_id, node_id)
    nodes = await list_nodes(session, tenant_id)
    children: dict[str | None, list[str]] = {}
    for n in nodes:
        children.setdefault(n.parent_id, []).append(n.id)
    below, todo = set(), [node_id]
    while todo:
        nid = todo.pop()
        below.add(nid)
        todo.extend(children.get(nid, []))
    devices = {d.id: d.name for d in await list_devices(session, tenant_id) if d.equipment_id in below}
    return sorted(
        f"{devices[t.device_id]}/{t.name}"
        for t in await list_tags(session, tenant_id)
        if t.device_id in devices
    )
