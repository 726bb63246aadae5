"""Identifiers for the console: records, batch registration, prefixes (filing), templates.

The public, Handle-compatible resolution API is served by identifier nodes
(``gongyun idnode``); these routes are the tenant's management view behind Gongyun auth.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from gongyun.api.deps import Ctx, require
from gongyun.idres import prefixes as pfx
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.prefixes import FilingStatus, PrefixKind
from gongyun.idres.registry import MAX_BATCH, Record, Registry
from gongyun.idres.sealing import reveal
from gongyun.idres.syntax import parse
from gongyun.idres.values import decode_stored, decode_values, encode_values, has_sealed
from gongyun.security.classify.keyring import shared_keyring
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/api/v1/identifiers", tags=["identifiers"])

Read = Annotated[Ctx, Depends(require(Perm.identifiers_read))]
Write = Annotated[Ctx, Depends(require(Perm.identifiers_write))]
Admin = Annotated[Ctx, Depends(require(Perm.identifiers_admin))]

# What ``idres.syntax`` accepts, as far as a pattern can say it (it also bounds the length).
PREFIX = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
HANDLE = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*/[^\x00-\x1f\x7f-\x9f\ufdd0-\ufdef]+$"
HandleParam = Annotated[str, Path(pattern=HANDLE, max_length=2048)]


class RecordIn(BaseModel):
    """Values of a record in Handle JSON form."""

    model_config = ConfigDict(extra="forbid")
    values: list[dict[str, Any]] = Field(default_factory=list)
    overwrite: StrictBool = False


class BatchItem(BaseModel):
    """One record of a batch."""

    model_config = ConfigDict(extra="forbid")
    handle: str
    values: list[dict[str, Any]]


class BatchIn(BaseModel):
    """Up to 2,000 records."""

    model_config = ConfigDict(extra="forbid")
    records: list[BatchItem] = Field(max_length=MAX_BATCH)
    overwrite: StrictBool = False


class PrefixIn(BaseModel):
    """A prefix filing."""

    model_config = ConfigDict(extra="forbid")
    prefix: str = Field(pattern=PREFIX, max_length=255)
    kind: PrefixKind = PrefixKind.enterprise
    org_name: str = ""
    contact: str = ""


class TransitionIn(BaseModel):
    """A filing status change."""

    model_config = ConfigDict(extra="forbid")
    status: FilingStatus
    note: str = ""


def _registry(ctx: Ctx) -> Registry:
    return Registry(ctx.platform.db, keyring=shared_keyring(ctx.platform.settings))


@router.get("/records", summary="List identifiers under a prefix")
async def list_records(
    ctx: Read,
    prefix: Annotated[str, Query(min_length=1)],
    page: Annotated[int, Query(ge=0)] = 0,
    page_size: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """One page of the tenant's identifiers under ``prefix``."""
    total, handles = await _registry(ctx).list_handles(ctx.tenant_id, prefix, page, page_size, ctx.session)
    return {"prefix": prefix, "total": total, "page": page, "pageSize": page_size, "handles": handles}


def _record_json(rec: Record) -> dict[str, Any]:
    return rec.to_json() | {"version": rec.version, "updatedAt": rec.updated_at.isoformat()}


async def _forget(ctx: Ctx, norms: list[str]) -> None:
    """Commit the write, then drop the identifiers from the shared cache (every process sees it)."""
    if ctx.platform.records is not None and norms:
        await ctx.session.commit()
        await ctx.platform.records.forget(norms, (ctx.tenant_id,))


@router.get("/records/{handle:path}", summary="Get an identifier's record")
async def get_record(handle: HandleParam, ctx: Read) -> Any:
    """The record with every value (the tenant's own records, private values included).

    With ``redis_url`` set, answers come from the shared resolution cache (see docs/operations.md).
    """
    shared = ctx.platform.records
    registry = _registry(ctx)
    h = parse(handle)
    if shared is None:
        return _record_json(
            await _reveal(ctx, registry, h.norm, await registry.get(ctx.tenant_id, handle, ctx.session))
        )

    async def load() -> tuple[bytes, float] | None:
        try:
            rec = await registry.get(ctx.tenant_id, handle, ctx.session)
        except HandleNotFound:
            return None
        ttl = min((float(v.ttl) for v in rec.values), default=shared.max_ttl)
        return orjson.dumps(_record_json(rec)), ttl  # core values stay sealed in the shared cache

    body = await shared.get("api", ctx.tenant_id, h.norm, load)
    if body is None:
        raise HandleNotFound(f"identifier {handle} not found", handle=handle)
    if has_sealed(body.decode()):
        cached = orjson.loads(body)
        values = await reveal(
            registry.keyring, ctx.session, ctx.tenant_id, h.norm, decode_stored(cached["values"]), ctx.role
        )
        return cached | {"values": encode_values(values)}
    return Response(body, media_type="application/json")


async def _reveal(ctx: Ctx, registry: Registry, norm: str, rec: Record) -> Record:
    """The record with its core values opened for a role cleared for core data, masked otherwise."""
    rec.values = await reveal(registry.keyring, ctx.session, ctx.tenant_id, norm, rec.values, ctx.role)
    return rec


@router.put("/records/{handle:path}", summary="Register or replace an identifier")
async def put_record(handle: HandleParam, body: RecordIn, ctx: Write) -> dict[str, Any]:
    """Create a record (``overwrite`` replaces an existing one)."""
    values = decode_values(body.values)
    rec, created = await _registry(ctx).put(ctx.tenant_id, handle, values, body.overwrite, ctx.session)
    await ctx.audit("identifier.register" if created else "identifier.update", rec.handle)
    await _forget(ctx, [parse(handle).norm])
    return {"handle": rec.handle, "created": created, "version": rec.version}


@router.delete("/records/{handle:path}", status_code=204, summary="Delete an identifier")
async def delete_record(handle: HandleParam, ctx: Write) -> None:
    """Delete a record."""
    await _registry(ctx).delete(ctx.tenant_id, handle, ctx.session)
    await ctx.audit("identifier.delete", handle)
    await _forget(ctx, [parse(handle).norm])


@router.post("/batch", summary="Register up to 2,000 identifiers")
async def batch(body: BatchIn, ctx: Write) -> dict[str, Any]:
    """Per-item results; re-sending the same batch is harmless (items come back ``unchanged``)."""
    results = await _registry(ctx).register_batch(
        ctx.tenant_id,
        [(r.handle, r.values) for r in body.records],
        overwrite=body.overwrite,
        session=ctx.session,
    )
    await ctx.audit("identifier.batch", "", count=len(results))
    await _forget(ctx, [parse(r.handle).norm for r in results if r.status in {"created", "updated"}])
    return {"results": [r.to_json() for r in results]}


@router.get("/prefixes", summary="List prefixes and their filing status")
async def list_prefixes(ctx: Read, status: str | None = None) -> list[dict[str, Any]]:
    """The tenant's prefixes."""
    return [p.to_json() for p in await pfx.list_prefixes(ctx.session, ctx.tenant_id, status)]


@router.post("/prefixes", status_code=201, summary="File a prefix")
async def file_prefix(body: PrefixIn, ctx: Admin) -> dict[str, Any]:
    """Submit a prefix filing (status ``submitted``)."""
    info = await pfx.submit(
        ctx.session, ctx.tenant_id, body.prefix, body.kind, org_name=body.org_name, contact=body.contact
    )
    await ctx.audit("identifier.prefix.submit", info.prefix)
    return info.to_json()


@router.post("/prefixes/{prefix}/status", summary="Change a filing's status")
async def set_status(prefix: str, body: TransitionIn, ctx: Admin) -> dict[str, Any]:
    """Move a filing through submitted, verified, active, rejected, suspended."""
    info = await pfx.transition(ctx.session, ctx.tenant_id, prefix, body.status, body.note)
    await ctx.audit("identifier.prefix.status", info.prefix, status=info.status)
    return info.to_json()


@router.get("/templates", summary="List metadata templates")
async def list_templates(ctx: Read) -> list[dict[str, Any]]:
    """Every template version of the tenant."""
    return [t.to_json() for t in await _registry(ctx).list_templates(ctx.tenant_id, ctx.session)]


@router.post("/templates", status_code=201, summary="Save a metadata template")
async def save_template(body: dict[str, Any], ctx: Write) -> dict[str, Any]:
    """Store a definition as the next version of its name; every problem is listed on 422."""
    template = await _registry(ctx).save_template(ctx.tenant_id, body, ctx.session)
    await ctx.audit("identifier.template.save", template.ref, prefix=template.prefix)
    return template.to_json()
