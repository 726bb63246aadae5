"""The trace API, mounted under ``/api/v1/apps/trace/``: templates, items, links, traces, recalls."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gongyun.apps import AppCtx, IsoTime, RowId, needs
from gongyun.apps.trace import epcis_store, outbox, sharing, store, traces
from gongyun.apps.trace import lifecycle as lifecycle_data
from gongyun.apps.trace.domain.ids import Kind, Minted, key_of, mint, parse_template, split_key
from gongyun.apps.trace.domain.labels import MEDIA, Format, label_uri, qr
from gongyun.apps.trace.epcis_routes import router as epcis_router
from gongyun.apps.trace.errors import TraceItemNotFound
from gongyun.apps.trace.registration import register
from gongyun.apps.trace.settings import Settings
from gongyun.apps.trace.sharing_routes import router as sharing_router
from gongyun.apps.trace.tables import templates
from gongyun.errors import InvalidInput
from gongyun.security.rbac import Perm

router = APIRouter()
Reader = Annotated[AppCtx, Depends(needs(Perm.identifiers_read))]
Writer = Annotated[AppCtx, Depends(needs(Perm.identifiers_write))]
MAX_MINT = 100_000
TRACE_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The items reached (least depth, status) and the links between them",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["root", "direction", "count", "truncated", "nodes", "edges"],
                    "properties": {
                        "root": {"type": "integer"},
                        "direction": {"type": "string", "enum": ["forward", "backward"]},
                        "count": {"type": "integer"},
                        "truncated": {"type": "boolean"},
                        "nodes": {"type": "array", "items": {"type": "object"}},
                        "edges": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}


class TemplateIn(BaseModel):
    """An identifier template (validated by the domain, which lists every problem)."""

    name: str
    kind: str
    scheme: str
    gtin: str | None = None
    company_prefix: str | None = None
    extension: str = "0"
    pattern: str = "{seq:06d}"
    links: list[str] = Field(default_factory=list, description='GS1 links: "gs1:pip https://..."')


class MintIn(BaseModel):
    """Mint ``count`` identifiers from a template."""

    template: str
    count: int = Field(ge=1, le=MAX_MINT)
    machine: str | None = None
    receiver: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)


class ItemIn(BaseModel):
    """One item by identifier (EPC URI, Digital Link, or ``own:...``)."""

    id: str
    kind: Kind
    machine: str | None = None
    receiver: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)


class LinkIn(BaseModel):
    """Genealogy links: each parent went into each child."""

    parents: list[str] = Field(min_length=1, max_length=10_000)
    children: list[str] = Field(min_length=1, max_length=100_000)
    kind: str = "assembly"
    qty: float | None = None
    machine: str | None = None
    operator: str | None = None
    start_at: IsoTime | None = None
    end_at: IsoTime | None = None


class RecallIn(BaseModel):
    """Start a recall from one item (usually a material lot)."""

    item: str
    name: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=1000)


def _settings(ctx: AppCtx) -> Settings:
    return ctx.settings_as(Settings) if ctx.settings is not None else Settings()


async def _register(ctx: AppCtx, ids: list[int], minted: list[Minted], links: list[str]) -> None:
    cfg = _settings(ctx)
    if cfg.register_identifiers and ids:
        await register(
            ctx.session,
            ctx.db,
            ctx.tenant_id,
            ids,
            minted,
            base_url=cfg.base_url,
            id_prefix=cfg.id_prefix,
            links=links,
        )


async def _resolve(ctx: AppCtx, ref: str) -> int:
    """An item id from a number or an identifier."""
    if ref.isdigit():
        return int(ref)
    try:
        key = key_of(ref)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="item") from None
    return int((await store.item(ctx.session, ctx.tenant_id, key))["id"])


@router.post("/templates", status_code=201)
async def save_template(body: TemplateIn, ctx: Writer) -> dict[str, Any]:
    """Create or replace an identifier template (a wrong GTIN check digit is refused with 422)."""
    tpl = parse_template(body.model_dump())
    stored = {**tpl.to_json(), "links": body.links}
    make = pg_insert if ctx.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = make(templates).values(tenant_id=ctx.tenant_id, name=tpl.name, body=stored, next_seq=1)
    await ctx.session.execute(
        stmt.on_conflict_do_update(index_elements=["tenant_id", "name"], set_={"body": stored})
    )
    await ctx.audit("template.save", tpl.name)
    return stored


@router.get("/templates")
async def list_templates(ctx: Reader) -> list[dict[str, Any]]:
    """The tenant's templates."""
    rows = await ctx.session.execute(
        select(templates.c.body, templates.c.next_seq).where(templates.c.tenant_id == ctx.tenant_id)
    )
    return [{**r.body, "next_seq": r.next_seq} for r in rows]


@router.post("/mint", status_code=201)
async def mint_items(body: MintIn, ctx: Writer) -> dict[str, Any]:
    """Mint and register ``count`` items from a template (sequence numbers continue per template)."""
    row = (
        await ctx.session.execute(
            select(templates.c.body, templates.c.next_seq).where(
                templates.c.tenant_id == ctx.tenant_id, templates.c.name == body.template
            )
        )
    ).first()
    if row is None:
        raise TraceItemNotFound(f"no template {body.template}", template=body.template)
    tpl = parse_template(row.body)
    minted = mint(tpl, int(row.next_seq), body.count)
    ids = await store.add_items(
        ctx.session, ctx.tenant_id, minted, machine=body.machine, receiver=body.receiver, attrs=body.attrs
    )
    await ctx.session.execute(
        update(templates)
        .where(templates.c.tenant_id == ctx.tenant_id, templates.c.name == body.template)
        .values(next_seq=int(row.next_seq) + body.count)
    )
    await _register(ctx, ids, minted, list(row.body.get("links", [])))
    await ctx.audit("items.mint", body.template, count=body.count)
    return {"count": len(ids), "first": minted[0].key, "last": minted[-1].key, "ids": ids[:1000]}


@router.post("/items", status_code=201)
async def add_item(body: ItemIn, ctx: Writer) -> dict[str, Any]:
    """Register one item by its identifier."""
    try:
        key = key_of(body.id)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="id") from None
    p = split_key(key)
    m = Minted(body.kind, key, p["gtin"], p["lot"], p["serial"], p["sscc"], attrs=body.attrs)
    ids = await store.add_items(ctx.session, ctx.tenant_id, [m], machine=body.machine, receiver=body.receiver)
    await _register(ctx, ids, [m], [])
    await ctx.audit("item.add", key)
    return await store.item(ctx.session, ctx.tenant_id, ids[0])


@router.get("/items")
async def list_items(
    ctx: Reader, kind: str | None = None, status: str | None = None, limit: int = Query(200, le=5000)
) -> list[dict[str, Any]]:
    """Items of the tenant, newest first."""
    return await store.list_items(ctx.session, ctx.tenant_id, kind, status, limit)


@router.get("/labels/{ref:path}")
async def label(
    ref: str, ctx: Reader, format: Format = "svg", scale: int = Query(4, ge=1, le=40)
) -> Response:
    """A QR label of an item's Digital Link URI (SVG, PDF or PNG)."""
    it = await store.item(ctx.session, ctx.tenant_id, await _resolve(ctx, ref))
    uri = label_uri(_settings(ctx).resolver_url, it["key"])
    return Response(qr(uri, format, scale), media_type=MEDIA[format], headers={"X-Digital-Link": uri})


@router.get("/lifecycle/{ref:path}")
async def lifecycle(ref: str, ctx: Reader) -> dict[str, Any]:
    """A serial's record: production (what went into it, where, when, the process data of those
    windows and the quality app's inspections of its lots), shipments, events, recalls."""
    root = await _resolve(ctx, ref)
    it = await store.item(ctx.session, ctx.tenant_id, root)
    back = await traces.trace(ctx.session, ctx.tenant_id, root, "backward", None, 2_000)
    fwd = await traces.trace(ctx.session, ctx.tenant_id, root, "forward", None, 2_000)
    keys = sorted({n["key"] for n in back.nodes} | {n["key"] for n in fwd.nodes})
    history = await epcis_store.events_of_keys(ctx.session, ctx.tenant_id, keys, 500)
    made = await store.production(ctx.session, ctx.tenant_id, root)
    upstream = [root, *(n["id"] for n in back.nodes)]
    codes = [c for n in [it, *back.nodes] for c in (n["key"], n["lot"], n["serial"])]
    return {
        "item": it,
        "label": label_uri(_settings(ctx).resolver_url, it["key"]),
        "production": made,
        "process": await lifecycle_data.process_data(ctx.session, ctx.services, ctx.tenant_id, upstream),
        "inspections": await lifecycle_data.inspections(ctx.session, ctx.tenant_id, codes),
        "components": [n for n in back.nodes if n["id"] != root],
        "shipments": [n for n in fwd.nodes if n["kind"] in {"shipment", "pallet", "package"}],
        "receivers": sorted({n["receiver"] for n in fwd.nodes if n["receiver"]}),
        "events": history,
        "recalls": await store.recalls_of(ctx.session, ctx.tenant_id, root),
    }


@router.get("/items/{ref:path}")
async def get_item(ref: str, ctx: Reader) -> dict[str, Any]:
    """One item by id, EPC URI or Digital Link."""
    return await store.item(ctx.session, ctx.tenant_id, await _resolve(ctx, ref))


@router.post("/links", status_code=201)
async def add_links(body: LinkIn, ctx: Writer) -> dict[str, Any]:
    """Link every parent to every child (a link that closes a cycle is refused, nothing kept)."""
    parents = [await _resolve(ctx, p) for p in body.parents]
    children = [await _resolve(ctx, c) for c in body.children]
    pairs = [(p, c) for p in parents for c in children]
    if len(pairs) > 100_000:
        raise InvalidInput("at most 100,000 links per request")
    extra = body.model_dump(include={"qty", "machine", "operator", "start_at", "end_at"})
    count = await store.add_links(ctx.session, ctx.tenant_id, pairs, body.kind, **extra)
    await ctx.audit("links.add", "", count=count, kind=body.kind)
    return {"links": count}


@router.get("/trace/{direction}/{ref:path}", response_class=Response, responses=TRACE_ANSWER)
async def trace(
    direction: Literal["forward", "backward"],
    ref: str,
    ctx: Reader,
    depth: int | None = Query(None, ge=1, le=100),
    limit: int = Query(10_000, ge=1, le=200_000),
) -> Response:
    """Backward (what went into it) or forward (what was made of it) to ``depth`` links or all."""
    root = await _resolve(ctx, ref)
    res = await traces.trace_json(ctx.session, ctx.tenant_id, root, direction, depth, limit)
    return Response(res.answer(), media_type="application/json")


@router.post("/recalls", status_code=201)
async def start_recall(body: RecallIn, ctx: Writer) -> dict[str, Any]:
    """Freeze everything made from an item and notify the receivers of its shipments."""
    root = await _resolve(ctx, body.item)
    rid = int((await store.start_recall(ctx.session, ctx.tenant_id, root, body.name, body.reason))["id"])
    published = await sharing.mark_recalled(ctx.session, ctx.db, ctx.tenant_id, rid)
    pushed = await outbox.queue_partner_notices(ctx.session, ctx.tenant_id, rid)
    out = {**await store.recall(ctx.session, ctx.tenant_id, rid), "published": published, "pushed": pushed}
    await ctx.audit("recall.start", str(rid), item=root, affected=out["affected"], pushed=pushed)
    return out


@router.get("/recalls")
async def list_recalls(ctx: Reader) -> list[dict[str, Any]]:
    """The tenant's recall campaigns."""
    return await store.list_recalls(ctx.session, ctx.tenant_id)


@router.get("/recalls/{rid}")
async def get_recall(rid: RowId, ctx: Reader) -> dict[str, Any]:
    """One recall campaign with its notices and their acknowledgement."""
    return await store.recall(ctx.session, ctx.tenant_id, rid)


@router.get("/inbox")
async def recall_inbox(ctx: Reader) -> list[dict[str, Any]]:
    """Recall notices other tenants sent to this one."""
    return await store.inbox(ctx.session, ctx.tenant_id)


class AckIn(BaseModel):
    """Acknowledge a notice; ``apply`` recalls what this tenant holds of the notified identifiers."""

    apply: StrictBool = True


@router.post("/inbox/{notice_id}/ack")
async def acknowledge(notice_id: RowId, body: AckIn, ctx: Writer) -> dict[str, Any]:
    """Acknowledge a recall notice."""
    out = await store.acknowledge(ctx.session, ctx.tenant_id, notice_id, ctx.actor, body.apply)
    await ctx.audit("recall.acknowledge", str(notice_id), local_recall=out["local_recall"])
    return out


router.include_router(epcis_router)
router.include_router(sharing_router)
