"""Alarm tables: rules, current states, history, notification targets and queued commands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, new_id, utcnow
from gongyun.security.tenancy import TenantScoped


class AlarmRuleRow(TenantScoped, Base):
    """One alarm rule; ``spec_json`` holds the validated rule (``gongyun.alarms.rules``)."""

    __tablename__ = "alarm_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_alarm_rules_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    spec_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlarmStateRow(TenantScoped, Base):
    """The ISA-18.2 state of one rule's alarm."""

    __tablename__ = "alarm_states"

    rule_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("alarm_rules.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    condition: Mapped[bool] = mapped_column(Boolean, default=False)
    shelved_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlarmEventRow(TenantScoped, Base):
    """One state transition of one alarm (the alarm history)."""

    __tablename__ = "alarm_events"
    __table_args__ = (Index("ix_alarm_events_tenant_ts", "tenant_id", "ts"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    before: Mapped[str] = mapped_column(String(16))
    after: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(32))
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)


class AlarmNotifierRow(TenantScoped, Base):
    """A notification target (webhook or e-mail) of a tenant."""

    __tablename__ = "alarm_notifiers"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_alarm_notifiers_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    config_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlarmCommandRow(TenantScoped, Base):
    """An operator action (or a reload) queued for the process that runs the alarm engine.

    Any API process writes the row and rings the bus; the engine applies each row once
    (``status`` leaves ``pending`` in the same transaction as the state change it caused).
    """

    __tablename__ = "alarm_commands"
    __table_args__ = (Index("ix_alarm_commands_status_requested", "status", "requested_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    rule_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(24))
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
