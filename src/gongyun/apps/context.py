"""The scoped identity an app acts with, in a request and in a worker.

An app never holds more than its manifest's permissions: in a user's request it holds the
permissions both the manifest and the user's role grant; in a worker, the manifest's. Every
action and every refusal goes to the tenant's audit trail under the app's name
(``app:<name>`` for a worker, ``<user> via app:<name>`` for a request).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.manifest import AppManifest
from gongyun.apps.models import enabled_tenants, installation
from gongyun.apps.services import UNAVAILABLE, AppServices
from gongyun.bus import Bus
from gongyun.config import Settings as PlatformSettings
from gongyun.config import get_settings
from gongyun.db import Database
from gongyun.errors import NotFound, PermissionDenied
from gongyun.security.audit import record as record_audit
from gongyun.security.rbac import Perm
from gongyun.security.tenancy import scope_session

REQUEST_STATE_KEY = "gongyun_app_ctx"
S = TypeVar("S", bound=BaseModel)


def app_actor(app: str, user: str | None = None) -> str:
    """How an app appears in the audit trail: ``app:<name>``, or ``<user> via app:<name>``."""
    return f"{user} via app:{app}" if user else f"app:{app}"


@dataclass
class AppCtx:
    """An app's identity within one tenant: its permissions, a tenant-scoped session, its settings."""

    app: str
    tenant_id: str
    actor: str
    permissions: frozenset[Perm]
    session: AsyncSession
    db: Database
    settings: BaseModel | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    services: AppServices = UNAVAILABLE
    """Tags, telemetry, alarm rules and leadership (:mod:`gongyun.apps.services`)."""
    config: PlatformSettings | None = None
    """The platform's settings (outbound allow-list, master keys); :meth:`platform` reads them."""

    def platform(self) -> PlatformSettings:
        """The platform's settings (the process's own when none were handed over)."""
        return self.config if self.config is not None else get_settings()

    def can(self, perm: Perm) -> bool:
        """True when the app may use ``perm`` here."""
        return perm in self.permissions

    async def require(self, perm: Perm) -> None:
        """Raise ``PermissionDenied`` (audited as a refusal) unless the app may use ``perm``."""
        if self.can(perm):
            return
        # the caller's transaction is rolled back with the 403, so the refusal is kept apart
        async with self.db.session() as session:
            await record_audit(
                session,
                self.tenant_id,
                self.actor,
                f"app.{self.app}.denied",
                perm.value,
                "denied",
                app=self.app,
                **self.detail,
            )
        raise PermissionDenied(f"app {self.app!r} acting as {self.actor!r} lacks permission {perm.value!r}")

    async def audit(self, action: str, target: str = "", outcome: str = "success", **detail: Any) -> None:
        """Record an action of the app (as ``app.<name>.<action>``) in the tenant's audit trail."""
        await record_audit(
            self.session,
            self.tenant_id,
            self.actor,
            f"app.{self.app}.{action}",
            target,
            outcome,
            app=self.app,
            **{**self.detail, **detail},
        )

    def settings_as(self, model: type[S]) -> S:
        """The tenant's settings of this app as ``model`` (its manifest's settings class)."""
        if not isinstance(self.settings, model):
            raise TypeError(f"app {self.app!r} settings are not a {model.__name__}")
        return self.settings


def current_app(request: Request) -> AppCtx:
    """FastAPI dependency for an app's routes: the app's scoped context of this request."""
    ctx = getattr(request.state, REQUEST_STATE_KEY, None)
    if not isinstance(ctx, AppCtx):
        raise NotFound("not an app route")
    return ctx


def needs(perm: Perm) -> Callable[[Request], Awaitable[AppCtx]]:
    """FastAPI dependency for an app's routes: the app context, after demanding ``perm``."""

    async def _check(request: Request) -> AppCtx:
        ctx = current_app(request)
        await ctx.require(perm)
        return ctx

    _check.__name__ = f"app_needs_{perm.name}"
    return _check


def parse_settings(manifest: AppManifest, stored: dict[str, Any]) -> BaseModel | None:
    """A tenant's stored settings as the manifest's settings model (None without one)."""
    if manifest.settings is None:
        return None
    return manifest.settings.model_validate(stored)


@dataclass
class WorkerContext:
    """What an app's worker is given: its manifest, the database, the bus, a logger, tenant scopes."""

    manifest: AppManifest
    db: Database
    bus: Bus
    log: logging.Logger
    services: AppServices = UNAVAILABLE
    """Tags, telemetry, alarm rules and leadership (:mod:`gongyun.apps.services`)."""
    config: PlatformSettings | None = None
    """The platform's settings, handed to every :class:`AppCtx` it makes."""

    @property
    def name(self) -> str:
        """The app's name."""
        return self.manifest.name

    async def tenants(self) -> list[str]:
        """The tenants where the app is enabled now."""
        async with self.db.session() as session:
            return await enabled_tenants(session, self.name)

    @asynccontextmanager
    async def acting_in(self, tenant_id: str) -> AsyncIterator[AppCtx]:
        """The app's identity in one tenant (committed on success); NotFound where it is not enabled."""
        async with self.db.session() as session:
            scope_session(session.sync_session, tenant_id)
            row = await installation(session, self.name)
            if row is None or not row.enabled:
                raise NotFound(f"app {self.name!r} is not enabled in tenant {tenant_id}")
            yield AppCtx(
                app=self.name,
                tenant_id=tenant_id,
                actor=app_actor(self.name),
                permissions=self.manifest.permissions,
                session=session,
                db=self.db,
                settings=parse_settings(self.manifest, row.settings),
                services=self.services,
                config=self.config,
            )
