"""The quality app's tables (created by its own migrations in ``migrations/``)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

charts = Table(
    "quality_charts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("source", String(16), nullable=False),  # tag | inspection
    Column("tag", String(300)),
    Column("characteristic", String(200)),
    Column("subgroup", JSON, nullable=False),  # {"by": "count"|"time"|"lot", "size", "window_s", "lot_tag"}
    Column("rules", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("spec", JSON, nullable=False),  # {"lsl", "usl", "target"}
    Column("alarm_tag", String(300)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_quality_charts_name"),
)

limits = Table(
    "quality_limits",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("chart_id", String(32), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("limits", JSON, nullable=False),
    Column("baseline_start", DateTime(timezone=True)),
    Column("baseline_end", DateTime(timezone=True)),
    Column("frozen_by", String(200), nullable=False),
    Column("note", String(500), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("chart_id", "version", name="uq_quality_limits_version"),
)

inspections = Table(
    "quality_inspections",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("lot", String(200), nullable=False, index=True),
    Column("characteristic", String(200), nullable=False),
    Column("value", Float),
    Column("sample_size", Float),
    Column("defects", Float),
    Column("operator", String(200), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_quality_inspections_char_time", "tenant_id", "characteristic", "recorded_at"),
)

violations = Table(
    "quality_violations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("chart_id", String(32), nullable=False, index=True),
    Column("subgroup", String(64), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("rules", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("state", String(16), nullable=False),  # open | acknowledged
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("chart_id", "subgroup", name="uq_quality_violations_subgroup"),
)
