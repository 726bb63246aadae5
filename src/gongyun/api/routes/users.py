"""Users of the caller's tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select

from gongyun.api.deps import Ctx, require
from gongyun.errors import NotFound, PermissionDenied
from gongyun.security import accounts
from gongyun.security.auth import confirm_password
from gongyun.security.models import User
from gongyun.security.rbac import Perm, Role, can_grant

router = APIRouter(prefix="/api/v1/users", tags=["users"])


class UserIn(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=accounts.USERNAME_RE.pattern)
    password: str = Field(min_length=accounts.MIN_PASSWORD, max_length=256)
    role: Role
    display_name: str = Field(default="", max_length=200)


class UserPatch(BaseModel):
    """Changes to a user."""

    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, max_length=200)
    role: Role | None = None
    disabled: StrictBool | None = None
    password: str | None = Field(default=None, min_length=accounts.MIN_PASSWORD, max_length=256)
    current_password: str | None = Field(
        default=None,
        max_length=256,
        description="Required when callers change their own password (or an API key its creator's).",
    )


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    tenant_id: str
    username: str
    display_name: str
    role: str
    disabled: bool
    locked_until: datetime | None
    created_at: datetime


async def _get(ctx: Ctx, user_id: str) -> User:
    user = await ctx.session.get(User, user_id)
    if user is None or user.tenant_id != ctx.tenant_id:
        raise NotFound("user not found")
    return user


def _check_grant(ctx: Ctx, role: Role) -> None:
    if not can_grant(ctx.role, role):
        raise PermissionDenied(f"role {ctx.role.value!r} cannot grant {role.value!r}")


@router.get("", response_model=list[UserOut], summary="List users")
async def list_users(ctx: Annotated[Ctx, Depends(require(Perm.users_read))]) -> list[User]:
    """Users of the caller's tenant."""
    return list((await ctx.session.execute(select(User).order_by(User.username))).scalars())


@router.post("", response_model=UserOut, status_code=201, summary="Create a user")
async def create_user(body: UserIn, ctx: Annotated[Ctx, Depends(require(Perm.users_write))]) -> User:
    """Create a user in the caller's tenant with a role no higher than the caller's."""
    _check_grant(ctx, body.role)
    user = await accounts.create_user(
        ctx.session, ctx.tenant_id, body.username, body.password, body.role, body.display_name
    )
    await ctx.audit("user.create", user.username, role=user.role)
    return user


@router.get("/{user_id}", response_model=UserOut, summary="Get a user")
async def get_user(user_id: str, ctx: Annotated[Ctx, Depends(require(Perm.users_read))]) -> User:
    """One user of the caller's tenant."""
    return await _get(ctx, user_id)


@router.patch("/{user_id}", response_model=UserOut, summary="Change a user")
async def patch_user(
    user_id: str, body: UserPatch, ctx: Annotated[Ctx, Depends(require(Perm.users_write))]
) -> User:
    """Change a user's name, role, password or disabled flag.

    Changing one's own password needs ``current_password`` (400 ``current_password_required``,
    403 ``current_password_invalid``; a wrong one counts towards the account lockout). Setting
    another user's password is audited as ``user.password_reset``. The last enabled platform
    administrator cannot be demoted or disabled (409 ``last_platform_admin``). A demotion caps
    the user's API keys at the new role from their next use on.
    """
    user = await _get(ctx, user_id)
    _check_grant(ctx, Role(user.role))
    own = await accounts.creator_of(ctx.session, ctx.principal_kind, ctx.principal_id) == user.id
    if body.password is not None and own:
        # First: a refusal is committed (audit, lockout counter) before anything else changes.
        settings = ctx.platform.settings
        await confirm_password(ctx.session, settings, user, body.current_password, ctx.actor, ctx.client)
    if body.role is not None:
        _check_grant(ctx, body.role)
        await accounts.set_role(ctx.session, user, body.role, actor=ctx.actor)
    if body.display_name is not None:
        user.display_name = body.display_name
    if body.disabled is not None:
        if user.id == ctx.principal_id and body.disabled:
            raise PermissionDenied("you cannot disable yourself")
        await accounts.set_disabled(ctx.session, user, body.disabled, actor=ctx.actor)
    if body.password is not None:
        await accounts.set_password(ctx.session, user, body.password)
        action = "user.password_change" if own else "user.password_reset"
        await ctx.audit(action, user.username, user_id=user.id)
    changes = body.model_dump(exclude_none=True, exclude={"password", "current_password"})
    if body.password is not None:
        changes["password"] = "changed"
    await ctx.audit("user.update", user.username, **changes)
    await ctx.session.flush()
    return user
