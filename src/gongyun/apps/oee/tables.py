"""The OEE app's tables (created by its own migrations in ``migrations/``)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Float, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

machines = Table(
    "oee_machines",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("line", String(200), nullable=False),
    Column("mapping", JSON, nullable=False),
    Column("good_tag", String(300)),
    Column("scrap_tag", String(300)),
    Column("total_tag", String(300)),  # all parts; good = total - scrap (instead of good_tag)
    Column("ideal_cycle_s", Float, nullable=False),
    Column("micro_stop_s", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),  # retired: no longer live, its history kept
    UniqueConstraint("tenant_id", "name", name="uq_oee_machines_name"),
)

calendars = Table(
    "oee_calendars",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("line", String(200), nullable=False),  # "*": every line without its own
    Column("spec", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "line", name="uq_oee_calendars_line"),
)

reasons = Table(
    "oee_reasons",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("code", String(64), nullable=False),
    Column("parent", String(64)),
    Column("name_en", String(200), nullable=False),
    Column("name_zh", String(200), nullable=False),
    Column("loss", String(32), nullable=False),
    UniqueConstraint("tenant_id", "code", name="uq_oee_reasons_code"),
)

stops = Table(
    "oee_stops",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("machine_id", String(32), nullable=False, index=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True)),
    Column("state", String(32), nullable=False),
    Column("reason", String(64)),
    Column("coded_by", String(200)),
    Column("coded_at", DateTime(timezone=True)),
)
