"""The asset model: ISA-95 hierarchy, devices bound to equipment, tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gongyun.api.deps import Ctx, require
from gongyun.assets import crud
from gongyun.assets.models import AssetNode, Device
from gongyun.assets.schemas import (
    DeviceIn,
    DeviceOut,
    DevicePatch,
    NodeIn,
    NodeOut,
    NodePatch,
    TagIn,
    TagOut,
    TagPatch,
)
from gongyun.idres.objects import ObjectRegistrar
from gongyun.platform.catalog import announce_change
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/api/v1/assets", tags=["assets"])

AssetsRead = Annotated[Ctx, Depends(require(Perm.assets_read))]
AssetsWrite = Annotated[Ctx, Depends(require(Perm.assets_write))]
DevicesRead = Annotated[Ctx, Depends(require(Perm.devices_read))]
DevicesWrite = Annotated[Ctx, Depends(require(Perm.devices_write))]


def _tags_changed(ctx: Ctx) -> None:
    """Once committed, make ingest in every process see the tenant's tag changes at once."""
    platform, tenant = ctx.platform, ctx.tenant_id
    ctx.committed.append(lambda: announce_change(platform, tenant))


def _ids(ctx: Ctx) -> ObjectRegistrar:
    """Registers the identifiers of the objects this request makes, changes or deletes."""
    return ctx.platform.objects


# -- tree and nodes ----------------------------------------------------------------------------
@router.get("/tree", summary="The asset tree")
async def get_tree(ctx: AssetsRead) -> list[dict[str, Any]]:
    """The whole ISA-95 hierarchy with devices under their equipment."""
    return await crud.tree(ctx.session, ctx.tenant_id)


@router.get("", response_model=list[NodeOut], summary="List assets")
async def list_nodes(ctx: AssetsRead) -> list[AssetNode]:
    """Every hierarchy node of the tenant."""
    return await crud.list_nodes(ctx.session, ctx.tenant_id)


@router.post("", response_model=NodeOut, status_code=201, summary="Create an asset")
async def create_node(body: NodeIn, ctx: AssetsWrite) -> AssetNode:
    """Create an enterprise, site, area, line, cell or equipment under its ISA-95 parent."""
    node = await crud.create_node(ctx.session, ctx.tenant_id, body, minter=_ids(ctx))
    await ctx.audit("asset.create", node.id, level=node.level, name=node.name)
    return node


# -- devices -----------------------------------------------------------------------------------
@router.get("/devices", response_model=list[DeviceOut], summary="List devices")
async def list_devices(ctx: DevicesRead, equipment_id: str | None = None) -> list[Device]:
    """The tenant's devices, optionally of one equipment."""
    return await crud.list_devices(ctx.session, ctx.tenant_id, equipment_id)


@router.post("/devices", response_model=DeviceOut, status_code=201, summary="Create a device")
async def create_device(body: DeviceIn, ctx: DevicesWrite) -> Device:
    """Create a device, optionally bound to an equipment node."""
    dev = await crud.create_device(ctx.session, ctx.tenant_id, body, minter=_ids(ctx))
    await ctx.audit("device.create", dev.id, name=dev.name)
    return dev


@router.get("/devices/{device_id}", response_model=DeviceOut, summary="Get a device")
async def get_device(device_id: str, ctx: DevicesRead) -> Device:
    """One device."""
    return await crud.get_device(ctx.session, ctx.tenant_id, device_id)


@router.patch("/devices/{device_id}", response_model=DeviceOut, summary="Change or (un)bind a device")
async def update_device(device_id: str, body: DevicePatch, ctx: DevicesWrite) -> Device:
    """Change a device; ``equipment_id`` binds it, null unbinds it."""
    dev = await crud.update_device(ctx.session, ctx.tenant_id, device_id, body, minter=_ids(ctx))
    await ctx.audit("device.update", dev.id, fields=sorted(body.model_fields_set))
    return dev


@router.delete("/devices/{device_id}", status_code=204, summary="Delete a device")
async def delete_device(device_id: str, ctx: DevicesWrite) -> None:
    """Delete a device and its tags."""
    await crud.delete_device(ctx.session, ctx.tenant_id, device_id, minter=_ids(ctx))
    await ctx.audit("device.delete", device_id)
    _tags_changed(ctx)


# -- tags --------------------------------------------------------------------------------------
@router.get("/tags", response_model=list[TagOut], summary="List tags")
async def list_tags(
    ctx: AssetsRead, device_id: Annotated[str | None, Query(max_length=32)] = None
) -> list[TagOut]:
    """The tenant's tags (of one device when given), with their ``device/tag`` reference."""
    devices = {d.id: d for d in await crud.list_devices(ctx.session, ctx.tenant_id)}
    tags = await crud.list_tags(ctx.session, ctx.tenant_id, device_id)
    return [crud.tag_out(t, devices[t.device_id]) for t in tags if t.device_id in devices]


@router.post("/devices/{device_id}/tags", response_model=TagOut, status_code=201, summary="Create a tag")
async def create_tag(device_id: str, body: TagIn, ctx: AssetsWrite) -> TagOut:
    """Create a tag of a device."""
    tag = await crud.create_tag(ctx.session, ctx.tenant_id, device_id, body, minter=_ids(ctx))
    dev = await crud.get_device(ctx.session, ctx.tenant_id, device_id)
    await ctx.audit("tag.create", tag.id, ref=f"{dev.name}/{tag.name}", classification=tag.classification)
    _tags_changed(ctx)
    return crud.tag_out(tag, dev)


@router.get("/tags/{tag_id}", response_model=TagOut, summary="Get a tag")
async def get_tag(tag_id: str, ctx: AssetsRead) -> TagOut:
    """One tag."""
    tag = await crud.get_tag(ctx.session, ctx.tenant_id, tag_id)
    return crud.tag_out(tag, await crud.get_device(ctx.session, ctx.tenant_id, tag.device_id))


@router.patch("/tags/{tag_id}", response_model=TagOut, summary="Change a tag")
async def update_tag(tag_id: str, body: TagPatch, ctx: AssetsWrite) -> TagOut:
    """Change a tag's unit, range, classification, description or cleaning settings."""
    tag = await crud.update_tag(ctx.session, ctx.tenant_id, tag_id, body, minter=_ids(ctx))
    await ctx.audit("tag.update", tag.id, fields=sorted(body.model_fields_set))
    _tags_changed(ctx)
    return crud.tag_out(tag, await crud.get_device(ctx.session, ctx.tenant_id, tag.device_id))


@router.delete("/tags/{tag_id}", status_code=204, summary="Delete a tag")
async def delete_tag(tag_id: str, ctx: AssetsWrite) -> None:
    """Delete a tag (stored telemetry stays until retention removes it)."""
    await crud.delete_tag(ctx.session, ctx.tenant_id, tag_id, minter=_ids(ctx))
    await ctx.audit("tag.delete", tag_id)
    _tags_changed(ctx)


# -- one node (declared last: its path parameter would shadow the routes above) ------------------
@router.get("/{node_id}", response_model=NodeOut, summary="Get an asset")
async def get_node(node_id: str, ctx: AssetsRead) -> AssetNode:
    """One hierarchy node."""
    return await crud.get_node(ctx.session, ctx.tenant_id, node_id)


@router.patch("/{node_id}", response_model=NodeOut, summary="Rename an asset")
async def update_node(node_id: str, body: NodePatch, ctx: AssetsWrite) -> AssetNode:
    """Change a node's name, description or classification (its identifier record follows)."""
    node = await crud.update_node(ctx.session, ctx.tenant_id, node_id, body, minter=_ids(ctx))
    await ctx.audit("asset.update", node.id, fields=sorted(body.model_fields_set))
    return node


@router.delete("/{node_id}", status_code=204, summary="Delete an asset")
async def delete_node(node_id: str, ctx: AssetsWrite) -> None:
    """Delete a node without children (its devices become unbound)."""
    await crud.delete_node(ctx.session, ctx.tenant_id, node_id, minter=_ids(ctx))
    await ctx.audit("asset.delete", node_id)
