"""Four-eyes export of important and core data: requested with a reason, approved by another person."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, new_id, utcnow
from gongyun.errors import Conflict, PermissionDenied
from gongyun.security.classify.levels import Level, needs_approval
from gongyun.security.tenancy import TenantScoped


class ExportRequest(TenantScoped, Base):
    """A request to export one tag's data over a range; pending until a second person approves."""

    __tablename__ = "export_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(32), index=True)
    tag: Mapped[str] = mapped_column(String(200))
    start: Mapped[int] = mapped_column(BigInteger)  # µs
    end: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[int] = mapped_column(SmallInteger)
    reason: Mapped[str] = mapped_column(String(500))
    requester_id: Mapped[str] = mapped_column(String(32))
    requester: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending/approved/refused
    approver: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    downloads: Mapped[int] = mapped_column(SmallInteger, default=0)


def initial_status(level: Level) -> str:
    """General data is exported at once; important and core data wait for approval."""
    return "pending" if needs_approval(level) else "approved"


def decide(req: ExportRequest, approver_id: str, approver: str, approve: bool) -> None:
    """Approve or refuse a pending request; the requester cannot approve their own."""
    if req.status != "pending":
        raise Conflict(f"the export request is already {req.status}")
    if approver_id == req.requester_id:
        raise PermissionDenied("four-eyes: a second person must approve the export")
    req.status = "approved" if approve else "refused"
    req.approver = approver
    req.decided_at = utcnow()


def check_download(req: ExportRequest, caller_id: str) -> None:
    """Only the requester downloads, and only an approved request."""
    if req.requester_id != caller_id:
        raise PermissionDenied("only the requester downloads an export")
    if req.status != "approved":
        raise PermissionDenied(
            f"export of {Level(req.level).name} data needs approval (request is {req.status})"
        )


def watermark(req: ExportRequest) -> str:
    """The header lines every exported file carries: who, why, who approved."""
    return (
        f"# gongyun export {req.id}: {Level(req.level).name} data of {req.tag}\n"
        f"# requested by {req.requester} for: {req.reason}\n"
        f"# approved by {req.approver or 'not required (general data)'} "
        f"at {req.decided_at or req.created_at}\n"
    )
