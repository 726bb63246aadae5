"""API keys of the caller's tenant: created once-shown, listed by prefix, revoked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from gongyun.api.deps import Ctx, require
from gongyun.core.jsonnum import JSON_INTEGER
from gongyun.db.base import utcnow
from gongyun.errors import NotFound, PermissionDenied
from gongyun.security import accounts
from gongyun.security.models import ApiKey
from gongyun.security.rbac import Perm, Role, can_grant

router = APIRouter(prefix="/api/v1/apikeys", tags=["apikeys"])


class ApiKeyIn(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    role: Role
    expires_in_days: Annotated[int, Field(ge=1, le=3650), JSON_INTEGER] | None = None


class ApiKeyOut(BaseModel):
    """An API key as listed (never the secret)."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    tenant_id: str
    name: str
    role: str
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A created API key: ``key`` is shown this once and never again."""

    key: str


async def _get(ctx: Ctx, key_id: str) -> ApiKey:
    """A live key of the tenant: once revoked (deleted) a key is only shown in the list."""
    row = await ctx.session.get(ApiKey, key_id)
    if row is None or row.tenant_id != ctx.tenant_id or row.revoked_at is not None:
        raise NotFound("API key not found")
    return row


@router.get("", response_model=list[ApiKeyOut], summary="List API keys")
async def list_keys(ctx: Annotated[Ctx, Depends(require(Perm.apikeys_read))]) -> list[ApiKey]:
    """API keys of the caller's tenant."""
    return list((await ctx.session.execute(select(ApiKey).order_by(ApiKey.created_at))).scalars())


@router.post("", response_model=ApiKeyCreated, status_code=201, summary="Create an API key")
async def create_key(
    body: ApiKeyIn, ctx: Annotated[Ctx, Depends(require(Perm.apikeys_write))]
) -> ApiKeyCreated:
    """Create a key with a role no higher than the caller's; the key is returned once.

    The key acts for the calling user (a key made by a key, for that key's user) and stops
    working when that user is disabled or deleted.
    """
    if not can_grant(ctx.role, body.role):
        raise PermissionDenied(f"role {ctx.role.value!r} cannot grant {body.role.value!r}")
    creator = await accounts.creator_of(ctx.session, ctx.principal_kind, ctx.principal_id)
    made = await accounts.create_api_key(
        ctx.session, ctx.tenant_id, body.name, body.role, ctx.username, body.expires_in_days, creator
    )
    await ctx.audit("apikey.create", made.row.name, role=made.row.role, prefix=made.row.prefix)
    return ApiKeyCreated(**ApiKeyOut.model_validate(made.row).model_dump(), key=made.key)


@router.get("/{key_id}", response_model=ApiKeyOut, summary="Get an API key")
async def get_key(key_id: str, ctx: Annotated[Ctx, Depends(require(Perm.apikeys_read))]) -> ApiKey:
    """One API key of the caller's tenant."""
    return await _get(ctx, key_id)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_key(key_id: str, ctx: Annotated[Ctx, Depends(require(Perm.apikeys_write))]) -> None:
    """Revoke a key; it stops working at once (and is then only listed, with ``revoked_at``)."""
    row = await _get(ctx, key_id)
    row.revoked_at = utcnow()
    await ctx.audit("apikey.revoke", row.name, prefix=row.prefix)
