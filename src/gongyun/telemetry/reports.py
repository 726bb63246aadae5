"""Cleaning reports kept in the metadata database: the last few runs of every tag, per tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Index, Integer, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, new_id, utcnow
from gongyun.errors import NotFound, ValidationFailed
from gongyun.security.tenancy import TenantScoped
from gongyun.telemetry.cleaning import CleaningReport
from gongyun.telemetry.store.base import from_us

KEEP_PER_TAG = 20
"""How many reports of one tag are kept (older ones are deleted when a new one is saved)."""
MAX_CHANGES = 1000


class CleaningReportRow(TenantScoped, Base):
    """One cleaning run of one tag: the range, the counts and the report document."""

    __tablename__ = "telemetry_cleaning_reports"
    __table_args__ = (Index("ix_cleaning_reports_tenant_tag_created", "tenant_id", "tag", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tag: Mapped[str] = mapped_column(String(300))
    range_start: Mapped[datetime] = mapped_column(UTCDateTime)
    range_end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    input_count: Mapped[int] = mapped_column(Integer)
    output_count: Mapped[int] = mapped_column(Integer)
    report_json: Mapped[str] = mapped_column(Text)


async def save_report(
    session: AsyncSession,
    tenant_id: str,
    report: CleaningReport,
    start_us: int,
    end_us: int,
    *,
    keep: int = KEEP_PER_TAG,
) -> CleaningReportRow:
    """Store a report and drop the tag's reports beyond the newest ``keep``."""
    row = CleaningReportRow(
        tenant_id=tenant_id,
        tag=report.tag,
        range_start=from_us(start_us),
        range_end=from_us(end_us),
        created_at=utcnow(),
        input_count=report.input_count,
        output_count=report.output_count,
        report_json=orjson.dumps(report.to_dict(MAX_CHANGES)).decode(),
    )
    session.add(row)
    await session.flush()
    old = (
        select(CleaningReportRow.id)
        .where(CleaningReportRow.tenant_id == tenant_id, CleaningReportRow.tag == report.tag)
        .order_by(CleaningReportRow.created_at.desc(), CleaningReportRow.id.desc())
        .offset(keep)
    )
    stale = list((await session.execute(old)).scalars())
    if stale:
        await session.execute(
            delete(CleaningReportRow).where(
                CleaningReportRow.tenant_id == tenant_id, CleaningReportRow.id.in_(stale)
            )
        )
    return row


def report_dict(row: CleaningReportRow) -> dict[str, Any]:
    """A stored report as JSON: the report document plus when and over which range it ran."""
    doc: dict[str, Any] = orjson.loads(row.report_json)
    return {
        **doc,
        "id": row.id,
        "start": row.range_start.isoformat(),
        "end": row.range_end.isoformat(),
        "created_at": row.created_at.isoformat(),
    }


async def history(
    session: AsyncSession, tenant_id: str, tag: str, limit: int = KEEP_PER_TAG
) -> list[CleaningReportRow]:
    """The tag's stored reports, newest first."""
    if not 1 <= limit <= KEEP_PER_TAG:
        raise ValidationFailed(f"limit must be between 1 and {KEEP_PER_TAG}")
    q = (
        select(CleaningReportRow)
        .where(CleaningReportRow.tenant_id == tenant_id, CleaningReportRow.tag == tag)
        .order_by(CleaningReportRow.created_at.desc(), CleaningReportRow.id.desc())
        .limit(limit)
    )
    return list((await session.execute(q)).scalars())


async def latest(session: AsyncSession, tenant_id: str, tag: str) -> CleaningReportRow:
    """The tag's newest report (NotFound when the tag was never cleaned)."""
    rows = await history(session, tenant_id, tag, 1)
    if not rows:
        raise NotFound("no cleaning report for this tag yet")
    return rows[0]
