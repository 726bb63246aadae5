"""Asset tables: the ISA-95 hierarchy, devices bound to equipment, and tags."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, new_id, utcnow
from gongyun.security.tenancy import TenantScoped


class AssetNode(TenantScoped, Base):
    """One node of the ISA-95 hierarchy: enterprise, site, area, line, cell or equipment."""

    __tablename__ = "asset_nodes"
    __table_args__ = (UniqueConstraint("tenant_id", "parent_id", "name", name="uq_asset_nodes_sibling_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    parent_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("asset_nodes.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    level: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000), default="")
    classification: Mapped[str] = mapped_column(String(16), default="general")
    identifier: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Device(TenantScoped, Base):
    """A data source (PLC, controller, gateway channel), optionally bound to one equipment node."""

    __tablename__ = "asset_devices"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_asset_devices_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    equipment_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("asset_nodes.id", ondelete="SET NULL"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[str] = mapped_column(String(32), default="other")
    address: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(1000), default="")
    classification: Mapped[str] = mapped_column(String(16), default="general")
    identifier: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Tag(TenantScoped, Base):
    """A named signal of a device (``device/tag``) with type, unit, range and classification."""

    __tablename__ = "asset_tags"
    __table_args__ = (UniqueConstraint("device_id", "name", name="uq_asset_tags_device_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("asset_devices.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(150))
    data_type: Mapped[str] = mapped_column(String(8), default="float")
    unit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source_unit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    low: Mapped[float | None] = mapped_column(Float, nullable=True)
    high: Mapped[float | None] = mapped_column(Float, nullable=True)
    classification: Mapped[str] = mapped_column(String(16), default="general")
    description: Mapped[str] = mapped_column(String(1000), default="")
    cleaning_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    identifier: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
