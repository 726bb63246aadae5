"""The caller's tenant's audit trail and its verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from gongyun.api.deps import Ctx, require
from gongyun.security.audit import AuditEvent, verify
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    """One audit event."""

    model_config = ConfigDict(from_attributes=True)
    seq: int
    ts: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]
    hash: str


class VerificationOut(BaseModel):
    """Whether the chain is intact."""

    ok: bool
    count: int
    head: str
    first_bad_seq: int | None
    reason: str


@router.get("", response_model=list[AuditEventOut], summary="List audit events, newest first")
async def list_events(
    ctx: Annotated[Ctx, Depends(require(Perm.audit_read))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditEvent]:
    """Audit events of the caller's tenant, newest first, paged by ``before_seq``."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    if action:
        query = query.where(AuditEvent.action == action)
    return list((await ctx.session.execute(query)).scalars())


@router.get("/verify", response_model=VerificationOut, summary="Verify the hash chain")
async def verify_chain(ctx: Annotated[Ctx, Depends(require(Perm.audit_read))]) -> VerificationOut:
    """Recompute the chain; report the first altered or missing event."""
    result = await verify(ctx.session, ctx.tenant_id)
    return VerificationOut(
        ok=result.ok,
        count=result.count,
        head=result.head,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
    )
