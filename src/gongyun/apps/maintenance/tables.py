"""The maintenance app's tables (created by its Alembic branch in ``migrations/``)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

ID = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()

# The model registry: RUL models and anomaly detectors, versioned per tenant, kind and equipment.
# A row is written only once its model is completely trained; ``active`` marks the one in use.
models = Table(
    "maintenance_models",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # rul | anomaly
    Column("equipment", String(200), nullable=False, server_default=""),  # "" = fleet-wide
    Column("version", Integer, nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("active", Boolean, nullable=False, server_default=false()),
    Column("meta", JSON, nullable=False),
    Column("artifact", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    UniqueConstraint("tenant_id", "kind", "equipment", "version", name="uq_maintenance_models_version"),
    Index("ix_maintenance_models_tenant", "tenant_id", "kind", "equipment"),
)

# Equipment the app watches: where it sits in the asset tree, and its latest figures.
equipment = Table(
    "maintenance_equipment",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("path", String(500), nullable=False, server_default=""),
    Column("weight", Float, nullable=False, server_default="1"),
    Column("health", Float),
    Column("score", Float),
    Column("rul", Float),
    Column("rul_low", Float),
    Column("rul_high", Float),
    Column("fault", String(64)),
    Column("fault_confidence", Float),
    Column("contributors", JSON),
    Column("updated_at", DateTime(timezone=True)),
    UniqueConstraint("tenant_id", "name", name="uq_maintenance_equipment_name"),
)

work_orders = Table(
    "maintenance_work_orders",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("equipment", String(200), nullable=False),
    Column("title", String(300), nullable=False),
    Column("reason", String(32), nullable=False),  # anomaly | health | rul | manual
    Column("state", String(16), nullable=False),
    Column("assignee", String(200)),
    Column("evidence", JSON, nullable=False),
    Column("notes", Text),
    Column("label", String(64)),  # what was found: becomes a training label
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Index("ix_maintenance_work_orders_tenant", "tenant_id", "state"),
)
