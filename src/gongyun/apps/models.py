"""The per-tenant installations of apps: which tenant has which app, enabled or not, with what settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, new_id, utcnow
from gongyun.security.tenancy import TenantScoped


class AppInstallation(TenantScoped, Base):
    """One app installed in one tenant.

    A row outlives its app's package: after a ``pip uninstall`` the row stays (the catalogue
    shows it as missing) and a reinstall finds the tenant's settings again.
    """

    __tablename__ = "app_installations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"), index=True)
    app: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100), default="")

    __table_args__ = (UniqueConstraint("tenant_id", "app"),)


async def installations(session: AsyncSession) -> dict[str, AppInstallation]:
    """The installations visible to ``session`` (a tenant-scoped session: its tenant's), by app."""
    rows = (await session.execute(select(AppInstallation))).scalars()
    return {row.app: row for row in rows}


async def installation(session: AsyncSession, app: str) -> AppInstallation | None:
    """The installation of ``app`` visible to ``session``, if any."""
    query = select(AppInstallation).where(AppInstallation.app == app)
    return (await session.execute(query)).scalar_one_or_none()


async def enabled_tenants(session: AsyncSession, app: str) -> list[str]:
    """Every tenant where ``app`` is enabled (an unscoped session sees all tenants)."""
    query = select(AppInstallation.tenant_id).where(AppInstallation.app == app, AppInstallation.enabled)
    return sorted((await session.execute(query)).scalars())
