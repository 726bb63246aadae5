"""Request dependencies: the caller, its tenant, a tenant-scoped session, permissions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.errors import AuthError, NotFound, PermissionDenied
from gongyun.platform import Platform
from gongyun.security.audit import record as record_audit
from gongyun.security.auth import API_KEY_PREFIX, Principal, authenticate_access_token, authenticate_api_key
from gongyun.security.models import Tenant
from gongyun.security.rbac import Perm, Role, has_permission, permissions
from gongyun.security.tenancy import scope_session
from gongyun.security.throttle import UNKNOWN_CLIENT


def get_platform(request: Request) -> Platform:
    """The running platform kept on the app."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


@dataclass
class Ctx:
    """Everything a handler needs about the call: who, which tenant, a scoped session."""

    tenant_id: str
    principal_id: str
    principal_kind: Literal["user", "apikey"]
    username: str
    role: Role
    session: AsyncSession
    platform: Platform
    client: str = UNKNOWN_CLIENT  # the caller's address (behind trusted proxies: the real one)
    committed: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # run after the commit

    def can(self, perm: Perm) -> bool:
        """True when the caller's role grants ``perm``."""
        return has_permission(self.role, perm)

    @property
    def actor(self) -> str:
        """How the caller appears in the audit trail."""
        return self.username if self.principal_kind == "user" else f"apikey:{self.username}"

    async def audit(self, action: str, target: str = "", outcome: str = "success", **detail: Any) -> None:
        """Append a security event for this caller (and its address) to the tenant's audit chain."""
        detail.setdefault("client", self.client)
        await record_audit(self.session, self.tenant_id, self.actor, action, target, outcome, **detail)

    @property
    def permissions(self) -> frozenset[Perm]:
        """Every permission of the caller's role."""
        return permissions(self.role)


def _credential(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    raise AuthError("authentication required: send 'Authorization: Bearer <token or API key>'")


async def _principal(request: Request, session: AsyncSession, platform: Platform) -> Principal:
    credential = _credential(request)
    if credential.startswith(API_KEY_PREFIX):
        return await authenticate_api_key(session, credential)
    return await authenticate_access_token(session, platform.settings, credential)


async def get_ctx(request: Request, platform: PlatformDep) -> AsyncIterator[Ctx]:
    """Authenticate the caller and yield a context with a session scoped to its tenant."""
    async with platform.db.sessions() as session:
        try:
            principal = await _principal(request, session, platform)
            tenant_id = principal.tenant_id
            acting = request.headers.get("x-tenant")
            if acting and acting != tenant_id:
                if principal.role is not Role.platform_admin:
                    raise NotFound("tenant not found")
                if await session.get(Tenant, acting) is None:
                    raise NotFound("tenant not found")
                tenant_id = acting
            await session.commit()  # persist last-used stamps before scoping
            session.expunge_all()  # objects loaded before scoping must not be served from the map
            scope_session(session.sync_session, tenant_id)
            request.state.principal = f"{principal.kind}:{principal.name}"
            ctx = Ctx(
                tenant_id=tenant_id,
                principal_id=principal.id,
                principal_kind=principal.kind,
                username=principal.name,
                role=principal.role,
                session=session,
                platform=platform,
                client=request.client.host if request.client else UNKNOWN_CLIENT,
            )
            yield ctx
            await session.commit()
            for then in ctx.committed:
                await then()
        except BaseException:
            await session.rollback()
            raise


# scope="function": the commit after ``yield`` runs before the response is sent, so a 2xx
# answer always means the write is durable.
CtxDep = Annotated[Ctx, Depends(get_ctx, scope="function")]


def require(perm: Perm) -> Callable[[Ctx], Awaitable[Ctx]]:
    """A dependency that authenticates and then demands ``perm``."""

    async def _check(ctx: CtxDep) -> Ctx:
        if not ctx.can(perm):
            raise PermissionDenied(f"role {ctx.role.value!r} lacks permission {perm.value!r}")
        return ctx

    _check.__name__ = f"require_{perm.name}"
    return _check
