"""The scheduling app's tables (created by its Alembic branch in ``migrations/``).

Times of orders and machine downtime are stored as datetimes; a schedule stores its time zero
(``epoch``) and its operations in minutes from it, as the solver sees them.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Float, Integer, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

machines = Table(
    "scheduling_machines",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("equipment", String(500)),  # the asset model's equipment (path or id)
    Column("watch_tag", String(300)),  # "device/tag": the machine is down while it reads below down_below
    Column("down_below", Float, nullable=False, server_default="0.5"),
    Column("unavailable", JSON),  # [[start iso, end iso], ...]
    Column("down_since", DateTime(timezone=True)),
    Column("oee_machine", String(32)),  # an OEE machine id: down while its state is planned/unplanned down
)

orders = Table(
    "scheduling_orders",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("product", String(200), nullable=False, server_default=""),
    Column("quantity", Integer, nullable=False, server_default="1"),
    Column("release_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("deadline_at", DateTime(timezone=True)),
    Column("weight", Integer, nullable=False, server_default="1"),
    Column("lot", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

routings = Table(
    "scheduling_routings",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("order_id", String(64), primary_key=True),
    Column("op_id", String(128), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("durations", JSON, nullable=False),  # machine id -> minutes
    Column("predecessors", JSON, nullable=False),  # operation ids
    Column("family", String(64)),
)

schedules = Table(
    "scheduling_schedules",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # solve | repair
    Column("status", String(16), nullable=False),  # proposed | published | rejected | superseded
    Column("base_version", Integer),
    Column("epoch", DateTime(timezone=True), nullable=False),
    Column("objective", String(16), nullable=False),
    Column("value", Float),
    Column("bound", Float),
    Column("makespan", Integer, nullable=False),
    Column("reason", String(500), nullable=False, server_default=""),
    Column("instance", JSON, nullable=False),  # the instance solved, in minutes from epoch
    Column("assignments", JSON, nullable=False),
    Column("stats", JSON, nullable=False),
    Column("changes", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(200)),
    Column("decided_at", DateTime(timezone=True)),
    UniqueConstraint("tenant_id", "version", name="uq_scheduling_schedules_version"),
)

progress = Table(
    "scheduling_progress",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("op_id", String(200), primary_key=True),
    Column("machine", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("expected_end", DateTime(timezone=True)),  # the operator's, or the worker's when it ran late
    Column("late_reported_at", DateTime(timezone=True)),  # last time a repair was proposed for it
    Column("reported_by", String(200), nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
