"""Data classification enforced: masked or decrypted reads, four-eyes exports, crypto-shredding, report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from gongyun.api.deps import Ctx, require
from gongyun.api.params import IsoTime
from gongyun.assets.levels import tag_levels
from gongyun.errors import NotFound, PermissionDenied
from gongyun.idres.models import IdRecord
from gongyun.idres.values import SEALED_MARK
from gongyun.security.classify.exports import ExportRequest, check_download, decide, initial_status, watermark
from gongyun.security.classify.keyring import SealedPoint, shared_keyring
from gongyun.security.classify.levels import CLEARANCE, RETENTION_DAYS, Level, cleared
from gongyun.security.rbac import Perm, Role
from gongyun.telemetry.sealed import read_sealed

router = APIRouter(prefix="/api/v1/classification", tags=["classification"])


def _us(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


async def _level(ctx: Ctx, tag: str) -> Level:
    levels = await tag_levels(ctx.session, ctx.tenant_id)
    if tag not in levels:
        raise NotFound(f"no tag {tag}")
    return levels[tag]


async def _points(ctx: Ctx, tag: str, level: Level, start: int, end: int) -> list[tuple[int, float]]:
    if level is Level.core:
        got = await read_sealed(
            ctx.platform.db, shared_keyring(ctx.platform.settings), ctx.tenant_id, tag, start, end
        )
    else:
        got = await ctx.platform.running_telemetry().store.raw(ctx.tenant_id, tag, start, end)
    return [(p.ts, p.value) for p in got]


class PointsOut(BaseModel):
    """A tag's values in clear, or masked for a caller without clearance."""

    tag: str
    level: str
    masked: bool
    points: list[tuple[int, float | None]]


@router.get("/points", response_model=PointsOut, summary="A tag's values, decrypted or masked by clearance")
async def points(
    ctx: Annotated[Ctx, Depends(require(Perm.telemetry_read))],
    tag: Annotated[str, Query(max_length=300)],
    start: IsoTime,
    end: IsoTime,
) -> PointsOut:
    """Values of ``tag`` in [start, end): core tags are opened from their sealed rows; values above
    the caller's clearance come back as null (times kept)."""
    level = await _level(ctx, tag)
    pts = await _points(ctx, tag, level, _us(start), _us(end))
    if cleared(ctx.role, level):
        return PointsOut(tag=tag, level=level.name, masked=False, points=list(pts))
    return PointsOut(tag=tag, level=level.name, masked=True, points=[(ts, None) for ts, _ in pts])


class ExportIn(BaseModel):
    """What to export and why."""

    tag: str = Field(max_length=300)
    start: IsoTime
    end: IsoTime
    reason: str = Field(min_length=3, max_length=500)


class ExportOut(BaseModel):
    """An export request."""

    id: str
    tag: str
    level: str
    status: str
    requester: str
    approver: str | None
    reason: str


def _out(r: ExportRequest) -> ExportOut:
    return ExportOut(
        id=r.id, tag=r.tag, level=Level(r.level).name, status=r.status, requester=r.requester,
        approver=r.approver, reason=r.reason,
    )  # fmt: skip


@router.post("/exports", response_model=ExportOut, status_code=201, summary="Request an export")
async def request_export(
    ctx: Annotated[Ctx, Depends(require(Perm.telemetry_read))], body: ExportIn
) -> ExportOut:
    """General data is approved at once; important and core data wait for a second person."""
    level = await _level(ctx, body.tag)
    if not cleared(ctx.role, level):
        await ctx.audit("export.request", body.tag, "failure", level=level.name, error="no clearance")
        raise PermissionDenied(f"your role may not read {level.name} data")
    req = ExportRequest(
        tenant_id=ctx.tenant_id, tag=body.tag, start=_us(body.start), end=_us(body.end), level=int(level),
        reason=body.reason, requester_id=ctx.principal_id, requester=ctx.actor, status=initial_status(level),
    )  # fmt: skip
    ctx.session.add(req)
    await ctx.session.flush()
    await ctx.audit(
        "export.request", body.tag, request=req.id, level=level.name, reason=body.reason, status=req.status
    )
    return _out(req)


async def _request(ctx: Ctx, request_id: str) -> ExportRequest:
    req = await ctx.session.get(ExportRequest, request_id)
    if req is None or req.tenant_id != ctx.tenant_id:
        raise NotFound("no such export request")
    return req


@router.get("/exports", response_model=list[ExportOut], summary="Export requests")
async def list_exports(ctx: Annotated[Ctx, Depends(require(Perm.telemetry_read))]) -> list[ExportOut]:
    """The tenant's export requests, newest first."""
    rows = await ctx.session.execute(
        select(ExportRequest).order_by(ExportRequest.created_at.desc()).limit(200)
    )
    return [_out(r) for r in rows.scalars()]


@router.post(
    "/exports/{request_id}/approve", response_model=ExportOut, summary="Approve an export (four-eyes)"
)
async def approve_export(
    ctx: Annotated[Ctx, Depends(require(Perm.security_write))], request_id: str
) -> ExportOut:
    """A second person with security:write approves; never the requester."""
    req = await _request(ctx, request_id)
    try:
        decide(req, ctx.principal_id, ctx.actor, approve=True)
    except PermissionDenied:
        await ctx.audit("export.approve", req.tag, "failure", request=req.id, error="own request")
        raise
    await ctx.audit("export.approve", req.tag, request=req.id, level=Level(req.level).name)
    return _out(req)


@router.post("/exports/{request_id}/refuse", response_model=ExportOut, summary="Refuse an export")
async def refuse_export(
    ctx: Annotated[Ctx, Depends(require(Perm.security_write))], request_id: str
) -> ExportOut:
    """Refuse a pending request."""
    req = await _request(ctx, request_id)
    decide(req, ctx.principal_id, ctx.actor, approve=False)
    await ctx.audit("export.refuse", req.tag, request=req.id)
    return _out(req)


@router.get(
    "/exports/{request_id}/download", response_class=PlainTextResponse, summary="Download an approved export"
)
async def download_export(ctx: Annotated[Ctx, Depends(require(Perm.telemetry_read))], request_id: str) -> str:
    """CSV of the approved range, watermarked with requester, reason and approver; refusals are audited."""
    req = await _request(ctx, request_id)
    try:
        check_download(req, ctx.principal_id)
    except PermissionDenied as exc:
        await ctx.audit("export.download", req.tag, "failure", request=req.id, error=exc.message)
        await ctx.session.commit()  # the refusal stays in the trail although the call fails
        raise
    pts = await _points(ctx, req.tag, Level(req.level), req.start, req.end)
    req.downloads += 1
    await ctx.audit("export.download", req.tag, request=req.id, level=Level(req.level).name, points=len(pts))
    rows = "".join(f"{datetime.fromtimestamp(ts / 1e6).isoformat()},{v!r}\n" for ts, v in pts)
    return watermark(req) + "ts,value\n" + rows


class ShredIn(BaseModel):
    """Which level's keys to destroy (all levels when omitted)."""

    level: Level | None = None
    confirm: str = Field(description="the tenant's id, to confirm")


@router.post("/shred", summary="Crypto-shred the tenant's data keys")
async def shred(ctx: Annotated[Ctx, Depends(require(Perm.security_write))], body: ShredIn) -> dict[str, int]:
    """Delete the tenant's data keys: every value sealed with them becomes unreadable for good."""
    if ctx.role not in (Role.tenant_admin, Role.platform_admin) or body.confirm != ctx.tenant_id:
        raise PermissionDenied("shredding needs a tenant admin and the tenant's id as confirmation")
    keyring = shared_keyring(ctx.platform.settings)
    n = await keyring.shred(ctx.session, ctx.tenant_id, int(body.level) if body.level else None)
    await ctx.audit(
        "classification.shred", ctx.tenant_id, keys=n, level=body.level.name if body.level else "all"
    )
    return {"keys_destroyed": n}


@router.get("/report", summary="Classification report of the tenant")
async def report(ctx: Annotated[Ctx, Depends(require(Perm.security_read))]) -> dict[str, Any]:
    """Tags per level, sealed points and identifier records, who may read each level, retention, exports."""
    levels = await tag_levels(ctx.session, ctx.tenant_id)
    sealed = (
        await ctx.session.execute(
            select(func.count()).select_from(SealedPoint).where(SealedPoint.tenant_id == ctx.tenant_id)
        )
    ).scalar_one()
    sealed_records = (
        await ctx.session.execute(
            select(func.count())
            .select_from(IdRecord)
            .where(IdRecord.tenant_id == ctx.tenant_id, IdRecord.values_json.contains(SEALED_MARK))
        )
    ).scalar_one()
    exports = await ctx.session.execute(
        select(ExportRequest).order_by(ExportRequest.created_at.desc()).limit(20)
    )
    return {
        "levels": {
            lv.name: {
                "tags": sorted(t for t, v in levels.items() if v is lv),
                "readable_by": sorted(r.value for r, c in CLEARANCE.items() if c >= lv),
                "retention_days": RETENTION_DAYS[lv],
                "export_needs_approval": lv >= Level.important,
            }
            for lv in Level
        },
        "sealed_points": sealed,
        "sealed_identifier_records": sealed_records,  # records holding core values (sealed)
        "recent_exports": [_out(r).model_dump() for r in exports.scalars()],
    }
