"""Partners, read grants, remote reads and recall sync (``.../apps/trace/partners``, ``/grants``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy import select

from gongyun.apps import AppCtx, needs
from gongyun.apps.trace import outbox, sharing, store, vault
from gongyun.apps.trace.domain.ids import key_of
from gongyun.apps.trace.settings import Settings
from gongyun.apps.trace.tables import items
from gongyun.core.jsonnum import JSON_INTEGER
from gongyun.errors import InvalidInput
from gongyun.security.classify.keyring import shared_keyring
from gongyun.security.egress import check_target
from gongyun.security.rbac import Perm

router = APIRouter()
SAFE_ID = 2**53 - 1
"""The largest notice or campaign id a partner may send (exact in every JSON reader)."""
Reader = Annotated[AppCtx, Depends(needs(Perm.identifiers_read))]
Writer = Annotated[AppCtx, Depends(needs(Perm.identifiers_write))]


class PartnerIn(BaseModel):
    """Another enterprise: its prefix, the resolver to reach it, the grant credentials it gave us."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    prefix: str | None = None
    resolver_url: str | None = None
    grant_handle: str | None = None
    token: str | None = Field(default=None, max_length=200)
    notify_url: str | None = Field(
        default=None,
        max_length=300,
        pattern=r"^https?://\S+$",
        description="where the partner's node takes our recall notices (POST .../partners/{us}/notices)",
    )
    notify_key: str | None = Field(default=None, max_length=200, description="the API key to call it with")


class NoticeIn(BaseModel):
    """A recall notice a partner's node pushes: its notice id, its campaign, the items' keys."""

    notice: Annotated[int, Field(ge=1, le=SAFE_ID), JSON_INTEGER]
    recall: Annotated[int, Field(ge=1, le=SAFE_ID), JSON_INTEGER]
    name: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=1000)
    keys: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=100_000)
    notified_at: str | None = Field(default=None, max_length=40)


class GrantIn(BaseModel):
    """Read access for a partner to value types (and EPCIS events) of items' records."""

    partner: str
    items: list[str] = Field(min_length=1, max_length=1000)
    types: list[str] = Field(default_factory=list, max_length=50)
    events: bool = True
    expires_in: float | None = Field(default=None, gt=0, description="seconds; none = until revoked")


def _cfg(ctx: AppCtx) -> Settings:
    return ctx.settings_as(Settings) if ctx.settings is not None else Settings()


@router.post("/partners", status_code=201)
async def save_partner(body: PartnerIn, ctx: Writer) -> dict[str, Any]:
    """Register or update a partner enterprise (its URLs must reach public addresses or allowed ones)."""
    allow = ctx.platform().outbound_allow
    for field in ("notify_url", "resolver_url"):
        url = getattr(body, field)
        if url is not None:
            await check_target(url, allow, field)
    ring = shared_keyring(ctx.platform())
    out = await sharing.save_partner(ctx.session, ring, ctx.tenant_id, body.model_dump())
    await ctx.audit("partner.save", body.name)
    return out


@router.post("/grants", status_code=201)
async def grant(body: GrantIn, ctx: Writer) -> dict[str, Any]:
    """Grant a partner read access (answers the credentials once: hand them to the partner)."""
    ids = []
    for ref in body.items:
        try:
            ids.append(
                int(ref)
                if ref.isdigit()
                else int((await store.item(ctx.session, ctx.tenant_id, key_of(ref)))["id"])
            )
        except ValueError as exc:
            raise InvalidInput(str(exc), field="items") from None
    out = await sharing.create_grant(
        ctx.session,
        ctx.db,
        ctx.tenant_id,
        body.partner,
        ids,
        body.types,
        body.events,
        body.expires_in,
        _cfg(ctx).id_prefix,
    )
    await ctx.audit(
        "grant.create", out["handle"], partner=body.partner, types=out["types"], handles=out["handles"]
    )
    return out


@router.get("/grants")
async def list_grants(ctx: Reader) -> list[dict[str, Any]]:
    """The grants this tenant gave."""
    return await sharing.list_grants(ctx.session, ctx.tenant_id)


@router.delete("/grants/{gid}")
async def revoke(gid: str, ctx: Writer) -> dict[str, Any]:
    """Revoke a grant (effective at the next read)."""
    out = await sharing.revoke_grant(ctx.session, ctx.db, ctx.tenant_id, gid)
    await ctx.audit("grant.revoke", gid)
    return out


@router.get("/remote/{partner}/{ref:path}")
async def remote(partner: str, ref: str, ctx: Reader) -> dict[str, Any]:
    """A partner's record of an item (by our item id or its key): public and granted values, events."""
    row = await sharing.partner(ctx.session, ctx.tenant_id, partner)
    key = (await store.item(ctx.session, ctx.tenant_id, int(ref)))["key"] if ref.isdigit() else key_of(ref)
    handle = sharing.remote_handle(row, key)
    token = (await vault.secrets_of(ctx.session, shared_keyring(ctx.platform()), ctx.tenant_id, row))["token"]
    out = await sharing.remote_read(row, handle, ctx.platform().outbound_allow, token)
    await ctx.audit("remote.read", handle, partner=partner, granted=[v["type"] for v in out["granted"]])
    return out


@router.post("/partners/{partner}/notices", status_code=201)
async def take_notice(partner: str, body: NoticeIn, ctx: Writer) -> dict[str, Any]:
    """A partner's recall notice (pushed by its node): stored once, and what we received from that
    partner of the notified items is recalled at once."""
    out, new = await outbox.receive(ctx.session, ctx.tenant_id, partner, body.model_dump())
    if new:
        await ctx.audit(
            "recall.notice.received", str(out["id"]), partner=partner, local_recall=out["local_recall"]
        )
    return {**out, "duplicate": not new}


@router.post("/partners/{partner}/notices/{notice_id}/ack")
async def take_ack(
    partner: str, notice_id: Annotated[int, Path(ge=1, le=SAFE_ID)], ctx: Writer
) -> dict[str, Any]:
    """The partner's node acknowledges a notice we pushed to it (its campaign counts it done)."""
    out = await outbox.take_ack(ctx.session, ctx.tenant_id, partner, notice_id)
    await ctx.audit("recall.notice.acknowledged", str(notice_id), partner=partner)
    return out


@router.post("/partners/{partner}/sync")
async def sync(partner: str, ctx: Writer) -> dict[str, Any]:
    """Check the partner's records of the items received from it; recall here what it recalled."""
    row = await sharing.partner(ctx.session, ctx.tenant_id, partner)
    token = (await vault.secrets_of(ctx.session, shared_keyring(ctx.platform()), ctx.tenant_id, row))["token"]
    received = await ctx.session.execute(
        select(items.c.id, items.c.key, items.c.attrs, store.STATUS.label("status")).where(
            items.c.tenant_id == ctx.tenant_id
        )
    )
    started = []
    checked = 0
    for it in list(received):
        if (it.attrs or {}).get("partner") != partner:
            continue
        checked += 1
        handle = sharing.remote_handle(row, it.key)
        out = await sharing.remote_read(row, handle, ctx.platform().outbound_allow, token)
        await ctx.audit("remote.read", handle, partner=partner, granted=[v["type"] for v in out["granted"]])
        if out.get("status") == "recalled" and it.status != "frozen":
            rec = await store.start_recall(
                ctx.session,
                ctx.tenant_id,
                it.id,
                f"recall of {it.key} by {partner}",
                source={"partner": partner},
            )
            await ctx.audit(
                "recall.start", str(rec["id"]), item=it.id, affected=rec["affected"], partner=partner
            )
            started.append(rec)
    return {"checked": checked, "recalls": started}
