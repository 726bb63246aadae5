"""Telemetry: batch ingest, queries (raw, buckets, aligned, latest), cleaning, retention, export, live."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from gongyun.api.deps import Ctx, require
from gongyun.api.params import IsoTime, TagRefText
from gongyun.api.responses import EXPORT_RESPONSES, EventStream
from gongyun.assets import crud
from gongyun.assets.levels import tag_levels
from gongyun.core.types import Sample
from gongyun.errors import InvalidInput, PermissionDenied
from gongyun.platform.data import TelemetryService
from gongyun.platform.live import live_hub
from gongyun.security.classify.levels import CLEARANCE, Level, cleared
from gongyun.security.rbac import Perm
from gongyun.telemetry import export as ex
from gongyun.telemetry import reports
from gongyun.telemetry.cleaning import CleaningConfig
from gongyun.telemetry.consumer import sample_from_dict
from gongyun.telemetry.ingest import Reason, Rejection
from gongyun.telemetry.query import TelemetryQuery, span
from gongyun.telemetry.store.base import RetentionPolicy, from_us

router = APIRouter(prefix="/api/v1/telemetry", tags=["telemetry"])

Read = Annotated[Ctx, Depends(require(Perm.telemetry_read))]
Write = Annotated[Ctx, Depends(require(Perm.telemetry_write))]
MIN_RETENTION_DAYS = 1 / 86400  # one second: shorter periods round to nothing
Series = Annotated[Literal["raw", "clean"], Query()]
Tags = Annotated[list[TagRefText], Query(min_length=1, max_length=100)]


def _svc(ctx: Ctx) -> TelemetryService:
    return ctx.platform.running_telemetry()


class IngestBody(BaseModel):
    """A batch: ``{"samples": [{"tag": "dev/tag", "value": 1.5, "ts": "...", "quality": "good"}]}``."""

    model_config = ConfigDict(extra="forbid")
    samples: list[dict[str, Any]] = Field(max_length=100_000)


@router.post("/ingest", summary="Ingest a batch of samples")
async def ingest(body: IngestBody, ctx: Write) -> dict[str, Any]:
    """Validate each sample; store the good ones; answer with the count and each rejection."""
    svc = _svc(ctx)
    samples: list[Sample] = []
    malformed: list[Rejection] = []
    for item in body.samples:
        try:
            samples.append(sample_from_dict(item))
        except InvalidInput as exc:
            tag = str(item.get("tag", "")) if isinstance(item, dict) else ""
            malformed.append(Rejection(tag, None, Reason.malformed, exc.message))
    result = await svc.ingestor.ingest(ctx.tenant_id, samples)
    for rej in malformed:
        svc.ingestor.note_rejection(ctx.tenant_id, result, rej)
    return result.to_dict()


@router.get("/stats", summary="Ingest counters per tag")
async def stats(ctx: Read) -> dict[str, Any]:
    """Accepted samples and rejections by reason, per tag, since the process started."""
    return _svc(ctx).ingestor.stats.for_tenant(ctx.tenant_id)


@router.get("/tags", summary="Tags with stored data")
async def tags(ctx: Read) -> list[str]:
    """Every ``device/tag`` the tenant has telemetry for."""
    return await _svc(ctx).store.tags(ctx.tenant_id)


@router.get("/raw", summary="Raw points of one tag")
async def raw(
    ctx: Read,
    tag: TagRefText,
    start: IsoTime,
    end: IsoTime,
    series: Series = "raw",
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> dict[str, Any]:
    """Points in [start, end), oldest first."""
    await refuse_uncleared(ctx, [tag])
    return await TelemetryQuery(_svc(ctx).store, ctx.tenant_id).raw(
        tag, start, end, series=series, limit=limit
    )


@router.get("/downsample", summary="One tag in N buckets")
async def downsample(
    ctx: Read,
    tag: TagRefText,
    start: IsoTime,
    end: IsoTime,
    buckets: Annotated[int, Query(ge=1, le=10_000)] = 500,
    series: Series = "raw",
    source: Literal["auto", "raw", "1m", "1h"] = "auto",
) -> dict[str, Any]:
    """avg, min, max, first, last and count per bucket (rollups serve long ranges)."""
    await refuse_uncleared(ctx, [tag])
    q = TelemetryQuery(_svc(ctx).store, ctx.tenant_id)
    return await q.downsample(tag, start, end, buckets, series=series, source=source)


@router.get("/aligned", summary="Several tags on one time axis")
async def aligned(
    ctx: Read,
    tag: Tags,
    start: IsoTime,
    end: IsoTime,
    buckets: Annotated[int, Query(ge=1, le=10_000)] = 500,
    agg: Literal["avg", "min", "max", "first", "last", "count"] = "avg",
    series: Series = "raw",
    source: Literal["auto", "raw", "1m", "1h"] = "auto",
) -> dict[str, Any]:
    """One aggregate of every tag in the same buckets."""
    await refuse_uncleared(ctx, tag)
    q = TelemetryQuery(_svc(ctx).store, ctx.tenant_id)
    return await q.aligned(tag, start, end, buckets, agg=agg, series=series, source=source)


@router.get("/latest", summary="Latest value per tag")
async def latest(
    ctx: Read, tag: Annotated[list[TagRefText] | None, Query(max_length=1000)] = None, series: Series = "raw"
) -> dict[str, Any]:
    """The newest point of each tag (all tags when none is given); values of tags above the
    caller's clearance are masked (``value`` null, ``masked`` true)."""
    got = await TelemetryQuery(_svc(ctx).store, ctx.tenant_id).latest(tag, series=series)
    hidden = await uncleared_tags(ctx)
    return {t: ({**p, "value": None, "masked": True} if t in hidden else p) for t, p in got.items()}


class CleanBody(BaseModel):
    """Clean one tag over a range, with its configured settings or the ones given here."""

    model_config = ConfigDict(extra="forbid")
    tag: TagRefText
    start: IsoTime
    end: IsoTime
    config: CleaningConfig | None = None


@router.post("/clean", summary="Clean a tag over a range")
async def clean(body: CleanBody, ctx: Write) -> dict[str, Any]:
    """Write the tag's clean series for the range and answer with the cleaning report."""
    a, b = span(body.start, body.end)
    report = await _svc(ctx).clean(ctx.tenant_id, body.tag, a, b, body.config)
    return report.to_dict()


@router.get("/clean/report", summary="Last cleaning report of a tag")
async def clean_report(ctx: Read, tag: TagRefText) -> dict[str, Any]:
    """What the last cleaning run changed in the tag, and why (kept in the database)."""
    return reports.report_dict(await reports.latest(ctx.session, ctx.tenant_id, tag))


@router.get("/clean/reports", summary="Recent cleaning reports of a tag")
async def clean_reports(
    ctx: Read,
    tag: TagRefText,
    limit: Annotated[int, Query(ge=1, le=reports.KEEP_PER_TAG)] = reports.KEEP_PER_TAG,
) -> list[dict[str, Any]]:
    """The tag's last cleaning reports, newest first (a bounded history is kept per tag)."""
    return [reports.report_dict(r) for r in await reports.history(ctx.session, ctx.tenant_id, tag, limit)]


class RetentionBody(BaseModel):
    """Retention for the tenant (no tag, no asset), one tag, or every tag below an asset node.

    Rollups are kept at least as long as raw data.
    """

    model_config = ConfigDict(extra="forbid")
    tag: TagRefText | None = None
    asset_id: str | None = Field(default=None, max_length=32)
    raw_days: StrictFloat = Field(ge=MIN_RETENTION_DAYS, le=36500)
    rollup_days: StrictFloat = Field(ge=MIN_RETENTION_DAYS, le=36500)


@router.get("/retention", summary="Retention policies")
async def get_retention(ctx: Read) -> list[dict[str, Any]]:
    """The tenant's retention policies."""
    out = await _svc(ctx).store.retention_policies(ctx.tenant_id)
    return [
        {
            "tag": p.tag,
            "raw_days": p.raw_keep / timedelta(days=1),
            "rollup_days": p.rollup_keep / timedelta(days=1),
        }
        for p in out
    ]


@router.put("/retention", summary="Set a retention policy")
async def put_retention(body: RetentionBody, ctx: Write) -> dict[str, Any]:
    """Create or replace the policy of the tenant, of one tag, or of every tag below an asset."""
    if body.tag and body.asset_id:
        raise InvalidInput("give a tag or an asset, not both")
    raw, rollup = timedelta(days=body.raw_days), timedelta(days=body.rollup_days)
    tags: list[str | None] = [body.tag]
    if body.asset_id:
        tags = list(await crud.tag_refs_under(ctx.session, ctx.tenant_id, body.asset_id))
    for tag in tags:
        await _svc(ctx).store.set_retention(RetentionPolicy(ctx.tenant_id, raw, rollup, tag))
    target = body.tag or body.asset_id or "*"
    await ctx.audit("telemetry.retention", target, raw_days=body.raw_days, rollup_days=body.rollup_days)
    return {**body.model_dump(), "tags": [t for t in tags if t]}


@router.get(
    "/export",
    summary="Export a range to CSV or Parquet",
    response_class=Response,
    responses=EXPORT_RESPONSES,
)
async def export(
    ctx: Read,
    tag: Tags,
    start: IsoTime,
    end: IsoTime,
    format: Literal["csv", "parquet"] = "csv",
    series: Series = "raw",
) -> Response:
    """The points of the tags in [start, end) as a file (general data only: important and core data
    go through a four-eyes export request, ``/api/v1/classification/exports``)."""
    await refuse_classified_export(ctx, tag)
    a, b = span(start, end)
    buf = io.BytesIO()
    await ex.export(_svc(ctx).store, ctx.tenant_id, tag, a, b, buf, format, series)
    media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
    name = f"telemetry-{from_us(a):%Y%m%dT%H%M%S}.{format}"
    return Response(
        buf.getvalue(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


async def uncleared_tags(ctx: Ctx) -> set[str]:
    """The tenant's tags whose level is above the caller's clearance (none for cleared roles)."""
    if CLEARANCE.get(ctx.role, Level.general) >= Level.core:
        return set()
    levels = await tag_levels(ctx.session, ctx.tenant_id)
    return {t for t, level in levels.items() if not cleared(ctx.role, level)}


async def refuse_uncleared(ctx: Ctx, tags: list[str]) -> None:
    """Refuse reading values above the caller's clearance (masked values: /api/v1/classification/points)."""
    hidden = sorted(set(tags) & await uncleared_tags(ctx))
    if hidden:
        raise PermissionDenied(
            f"your role is not cleared for the data of {', '.join(hidden)} "
            "(masked values: GET /api/v1/classification/points)"
        )


async def refuse_classified_export(ctx: Ctx, tags: list[str]) -> None:
    """Refuse (and audit) a direct export that includes important or core tags."""
    levels = await tag_levels(ctx.session, ctx.tenant_id)
    high = sorted(t for t in tags if levels.get(t, Level.general) >= Level.important)
    if high:
        await ctx.audit("telemetry.export", ",".join(high)[:200], "failure", error="needs approval")
        await ctx.session.commit()  # the refusal stays in the audit trail
        raise PermissionDenied(
            "important or core data is exported only through an approved request "
            f"(POST /api/v1/classification/exports): {', '.join(high)}"
        )


@router.get("/stream", summary="Live points (server-sent events)", response_class=EventStream)
async def stream(
    ctx: Read, request: Request, tag: Annotated[list[TagRefText] | None, Query(max_length=100)] = None
) -> EventStream:
    """Each stored batch of the tenant (optionally of some tags) as an SSE ``points`` event.

    In an API process without ingest the points come over the bus, coalesced: the latest point
    of each tag a few times a second.
    """
    hub = await live_hub(ctx.platform)
    wanted = set(tag or [])
    tenant = ctx.tenant_id
    hidden = await uncleared_tags(ctx)  # masked in the stream for this caller

    async def events() -> AsyncIterator[bytes]:
        q = hub.listen_points()
        try:
            yield b": connected\n\n"
            while not await request.is_disconnected():
                try:
                    t, points = await asyncio.wait_for(q.get(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if t != tenant:
                    continue
                data = [
                    {
                        "tag": p.tag,
                        "ts": from_us(p.ts).isoformat(),
                        "value": None if p.tag in hidden else p.value,
                    }
                    for p in points
                    if not wanted or p.tag in wanted
                ]
                if data:
                    yield b"event: points\ndata: " + orjson.dumps(data) + b"\n\n"
        finally:
            hub.unlisten_points(q)

    return EventStream(events(), headers={"Cache-Control": "no-cache"})
