"""The trace app's tables (created by its Alembic branch in ``migrations/``)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
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

ID = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()

items = Table(
    "trace_items",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", String(200), nullable=False),
    Column("gtin", String(14)),
    Column("lot", String(20)),
    Column("serial", String(20)),
    Column("sscc", String(18)),
    Column("handle", String(255)),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("receiver", String(64)),
    Column("machine", String(100)),
    Column("attrs", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_trace_items_key"),
    Index("ix_trace_items_tenant_kind", "tenant_id", "kind"),
)

links = Table(
    "trace_links",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("parent_id", ID, nullable=False),
    Column("child_id", ID, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("qty", Float),
    Column("machine", String(100)),
    Column("operator", String(100)),
    Column("start_at", DateTime(timezone=True)),
    Column("end_at", DateTime(timezone=True)),
    Column("event_id", String(100)),
    Index("ix_trace_links_parent", "parent_id", "child_id"),
    Index("ix_trace_links_child", "child_id", "parent_id"),
)

templates = Table(
    "trace_templates",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("next_seq", Integer, nullable=False, server_default="1"),
)

events = Table(
    "trace_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("record_time", DateTime(timezone=True), nullable=False),
    Column("action", String(8)),
    Column("biz_step", String(200)),
    Column("disposition", String(200)),
    Column("read_point", String(200)),
    Column("biz_location", String(200)),
    Column("body", JSON, nullable=False),
    UniqueConstraint("tenant_id", "event_id", name="uq_trace_events_id"),
    Index("ix_trace_events_time", "tenant_id", "event_time"),
)

event_keys = Table(
    "trace_event_keys",
    metadata,
    Column("event_pk", ID, primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("tenant_id", String(32), nullable=False),
    Index("ix_trace_event_keys_key", "tenant_id", "key"),
)

recalls = Table(
    "trace_recalls",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("reason", String(1000), nullable=False, server_default=""),
    Column("root_id", ID, nullable=False),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("affected", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("source", JSON),
)

recall_ranges = Table(
    "trace_recall_ranges",
    metadata,
    Column("recall_id", ID, primary_key=True),
    Column("lo", ID, primary_key=True),
    Column("hi", ID, nullable=False),
    Column("n", Integer, nullable=False),
)
"""The items a recall campaign holds, as ranges of consecutive item ids (bulk-minted serials are
consecutive, so 100 000 serials are a handful of rows)."""

notices = Table(
    "trace_recall_notices",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("recall_id", ID, nullable=False, index=True),
    Column("sender", String(32), nullable=False),
    Column("receiver", String(64), nullable=False, index=True),
    Column("keys", JSON, nullable=False),
    Column("notified_at", DateTime(timezone=True), nullable=False),
    Column("acked_at", DateTime(timezone=True)),
    Column("acked_by", String(200)),
    Column("local_recall_id", ID),
    Column("push", Integer, nullable=False, server_default="0"),
    Column("delivered_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", String(300)),
    Column("remote_notice", ID),
    Column("ack_sent_at", DateTime(timezone=True)),
    Index("ix_trace_recall_notices_outbox", "push", "delivered_at"),
    UniqueConstraint("receiver", "sender", "remote_notice", name="uq_trace_recall_notices_remote"),
)
"""Recall notices: to a tenant of this deployment (its inbox), to a partner (``push``: an outbox
row until its endpoint took it) or from a partner (``remote_notice``: the sender's id; once
acknowledged, an outbox row of the acknowledgement until the sender's node took it,
``ack_sent_at``, retried with ``attempts``, ``next_attempt_at`` and ``last_error``)."""

partners = Table(
    "trace_partners",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("prefix", String(100)),
    Column("resolver_url", String(300)),
    Column("grant_handle", String(255)),
    Column("token", String(600)),  # sealed (vault.py)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("notify_url", String(300)),
    Column("notify_key", String(600)),  # sealed (vault.py)
)

grants = Table(
    "trace_grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("partner", String(64), nullable=False),
    Column("handle", String(255), nullable=False),
    Column("types", JSON, nullable=False),
    Column("handles", JSON, nullable=False),
    Column("events", Integer, nullable=False, server_default="0"),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
