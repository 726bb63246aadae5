"""Tenants: platform admins manage all; everyone else sees only their own."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select

from gongyun.api.deps import Ctx, require
from gongyun.errors import NotFound, PermissionDenied
from gongyun.security import accounts
from gongyun.security.models import Tenant
from gongyun.security.rbac import Perm, Role

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])


class TenantIn(BaseModel):
    """A new tenant."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=accounts.NAME_RE.pattern)
    display_name: str = Field(default="", max_length=200)


class TenantPatch(BaseModel):
    """Changes to a tenant."""

    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, max_length=200)
    disabled: StrictBool | None = None


class TenantOut(BaseModel):
    """A tenant as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    display_name: str
    disabled: bool
    created_at: datetime


async def _visible(ctx: Ctx, tenant_id: str) -> Tenant:
    # Tenants are the one table outside tenant scoping; visibility is decided here.
    if ctx.role is not Role.platform_admin and tenant_id != ctx.tenant_id:
        raise NotFound("tenant not found")
    tenant = await ctx.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


@router.get("", response_model=list[TenantOut], summary="List tenants")
async def list_tenants(ctx: Annotated[Ctx, Depends(require(Perm.tenants_read))]) -> list[Tenant]:
    """All tenants for a platform admin; the caller's own otherwise."""
    query = select(Tenant).order_by(Tenant.name)
    if ctx.role is not Role.platform_admin:
        query = query.where(Tenant.id == ctx.tenant_id)
    return list((await ctx.session.execute(query)).scalars())


@router.post("", response_model=TenantOut, status_code=201, summary="Create a tenant")
async def create_tenant(body: TenantIn, ctx: Annotated[Ctx, Depends(require(Perm.tenants_write))]) -> Tenant:
    """Create a tenant (platform admins only)."""
    tenant = await accounts.create_tenant(ctx.session, body.name, body.display_name)
    await ctx.audit("tenant.create", tenant.name, new_tenant=tenant.id)
    return tenant


@router.get("/{tenant_id}", response_model=TenantOut, summary="Get a tenant")
async def get_tenant(tenant_id: str, ctx: Annotated[Ctx, Depends(require(Perm.tenants_read))]) -> Tenant:
    """One tenant, if visible to the caller."""
    return await _visible(ctx, tenant_id)


@router.patch("/{tenant_id}", response_model=TenantOut, summary="Change a tenant")
async def patch_tenant(
    tenant_id: str, body: TenantPatch, ctx: Annotated[Ctx, Depends(require(Perm.tenants_read))]
) -> Tenant:
    """Rename or disable a tenant (platform admins only)."""
    tenant = await _visible(ctx, tenant_id)  # another tenant's id is 404 before any 403
    if not ctx.can(Perm.tenants_write):
        raise PermissionDenied(f"role {ctx.role.value!r} lacks permission 'tenants:write'")
    if body.display_name is not None:
        tenant.display_name = body.display_name
    if body.disabled is not None:
        if body.disabled and tenant.id == ctx.tenant_id:
            raise PermissionDenied("you cannot disable the tenant you act in")
        if body.disabled and tenant.name == accounts.DEFAULT_TENANT:
            raise PermissionDenied("the default tenant holds the platform admins and cannot be disabled")
        await accounts.set_tenant_disabled(ctx.session, tenant, body.disabled)
    await ctx.audit("tenant.update", tenant.name, **body.model_dump(exclude_none=True))
    await ctx.session.flush()
    return tenant
