"""Tables of the identifier registry (Alembic branch ``idres``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, new_id, utcnow


class IdPrefix(Base):
    """A prefix known to this node, with its filing (备案) status and the site serving it."""

    __tablename__ = "idres_prefixes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), index=True)
    prefix: Mapped[str] = mapped_column(String(255))
    prefix_norm: Mapped[str] = mapped_column(String(255), unique=True)
    parent: Mapped[str | None] = mapped_column(String(255), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    org_name: Mapped[str] = mapped_column(String(255), default="")
    contact: Mapped[str] = mapped_column(String(255), default="")
    site_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    history_json: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdRecord(Base):
    """One identifier and its values (Handle JSON), plus the public-only rendering when it differs."""

    __tablename__ = "idres_records"

    handle_norm: Mapped[str] = mapped_column(String(1024), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), index=True)
    handle: Mapped[str] = mapped_column(String(1024))
    prefix_norm: Mapped[str] = mapped_column(String(255))
    values_json: Mapped[str] = mapped_column(Text)
    # None when every value is public: the resolution answer is then ``values_json`` itself
    public_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    all_public: Mapped[bool] = mapped_column(Boolean, default=True)
    min_ttl: Mapped[int] = mapped_column(Integer, default=86400)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_idres_records_tenant_prefix", "tenant_id", "prefix_norm", "handle_norm"),)


class IdValue(Base):
    """Reverse-lookup index: one row per value (type and the first 255 characters of its text)."""

    __tablename__ = "idres_values"

    handle_norm: Mapped[str] = mapped_column(String(1024), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(255))
    value_key: Mapped[str] = mapped_column(String(255))
    public: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (Index("ix_idres_values_lookup", "tenant_id", "type", "value_key", "handle_norm"),)


class IdTemplate(Base):
    """One version of a metadata template of a prefix."""

    __tablename__ = "idres_templates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), index=True)
    prefix_norm: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    definition_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("tenant_id", "prefix_norm", "name", "version"),)


class IdChange(Base):
    """The change log of an SQLite registry (``gongyun.idres.changes``; PostgreSQL uses NOTIFY)."""

    __tablename__ = "idres_changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handle_norm: Mapped[str] = mapped_column(String(1024))

    __table_args__ = ({"sqlite_autoincrement": True},)
