"""Login (OAuth2 password flow), token refresh with rotation, logout, and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, ConfigDict, Field

from gongyun.api.deps import CtxDep, PlatformDep
from gongyun.errors import NotFound, PermissionDenied
from gongyun.security import accounts, auth
from gongyun.security.models import Tenant, User
from gongyun.security.throttle import client_key

router = APIRouter(prefix="/api/v1", tags=["auth"])


class TokenOut(BaseModel):
    """Tokens returned by login and refresh."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshIn(BaseModel):
    """A refresh token to rotate or revoke."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=10, max_length=200)


class PasswordChangeIn(BaseModel):
    """A signed-in user's new password, confirmed by the current one."""

    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class MeOut(BaseModel):
    """Who the caller is."""

    id: str
    username: str
    kind: str
    tenant_id: str
    tenant_name: str
    role: str
    permissions: list[str]


def _out(pair: auth.TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/token", response_model=TokenOut, summary="Log in (OAuth2 password flow)")
async def token(
    request: Request,
    platform: PlatformDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> TokenOut:
    """Exchange a username and password for an access and a refresh token.

    Failed attempts are throttled per client address (429 ``login_throttled`` with
    ``Retry-After``) and per account (a locked account answers like a wrong password).
    """
    client = client_key(request.client.host if request.client else None)
    async with platform.db.session() as session:
        return _out(await auth.login(session, platform.settings, username, password, client))


@router.post("/auth/refresh", response_model=TokenOut, summary="Rotate a refresh token")
async def refresh(platform: PlatformDep, body: RefreshIn) -> TokenOut:
    """Spend a refresh token for a new pair; a reused token revokes its family."""
    async with platform.db.session() as session:
        return _out(await auth.refresh(session, platform.settings, body.refresh_token))


@router.post("/auth/logout", status_code=204, summary="End the session of a refresh token")
async def logout(platform: PlatformDep, body: RefreshIn) -> None:
    """Log out: the refresh token, every token rotated from it and their access tokens stop working."""
    async with platform.db.session() as session:
        await auth.logout(session, body.refresh_token)


@router.get("/me", response_model=MeOut, summary="The caller")
async def me(ctx: CtxDep) -> MeOut:
    """The authenticated caller, its tenant, role and permissions."""
    tenant = await ctx.session.get(Tenant, ctx.tenant_id)
    return MeOut(
        id=ctx.principal_id,
        username=ctx.username,
        kind=ctx.principal_kind,
        tenant_id=ctx.tenant_id,
        tenant_name=tenant.name if tenant else "",
        role=ctx.role.value,
        permissions=sorted(p.value for p in ctx.permissions),
    )


@router.post("/me/password", status_code=204, summary="Change the caller's own password")
async def change_my_password(ctx: CtxDep, body: PasswordChangeIn) -> None:
    """Change the signed-in user's password; any role may, the current password is required.

    A wrong current password is 403 ``current_password_invalid`` and counts towards the account
    lockout like a failed sign-in. Every session of the user ends, this one included: sign in
    again with the new password.
    """
    if ctx.principal_kind != "user":
        raise PermissionDenied("API keys have no password; a user changes their own")
    user = await ctx.session.get(User, ctx.principal_id)
    if user is None:  # acting in another tenant (X-Tenant): the account lives elsewhere
        raise NotFound("your account is not in the tenant you act in; call without X-Tenant")
    settings = ctx.platform.settings
    await auth.confirm_password(ctx.session, settings, user, body.current_password, ctx.actor, ctx.client)
    await accounts.set_password(ctx.session, user, body.new_password)
    await ctx.audit("user.password_change", user.username, user_id=user.id)
