"""Recall notices pushed to partner enterprises through an outbox, and taken from them.

A recall queues a notice for every partner that holds affected items: the receiver named on a
shipment (``receiver``) or the grantee of a grant on an affected record. The notice is written in
the recall's transaction, so it cannot be lost. For a partner that named its endpoint
(``notify_url``, with the API key to call it with, ``notify_key``), the worker ``deliver`` (once
per deployment) posts each waiting notice there until the partner's node answers 2xx, retrying
with a growing pause (1 s, 2 s, 4 s ... up to ``MAX_PAUSE_S``). The receiving node takes a notice
once (the sender's notice id is kept) and recalls at once what it holds of the notified items
that it received from that partner (``attrs.partner``), which freezes its serials made of them.
When the receiver acknowledges the notice, its worker sends the acknowledgement back the same way
(``<the sender's notify_url>/<notice id>/ack``, retried alike) if it named the sender's endpoint
too, and the sender's campaign counts the notice done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Select, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps import AppCtx, WorkerContext
from gongyun.apps.trace import sharing, store, vault
from gongyun.apps.trace.errors import TraceItemNotFound
from gongyun.apps.trace.tables import grants, items, notices, partners, recalls
from gongyun.security.classify.keyring import Keyring, shared_keyring
from gongyun.security.egress import Network, OutboundTargetRefused, check_target, redact

POLL_S = 1.0
TIMEOUT_S = 10.0
MAX_PAUSE_S = 300.0
BATCH = 50


async def queue_partner_notices(s: AsyncSession, tenant_id: str, rid: int) -> int:
    """Queue notices of recall ``rid`` to the partners holding affected items; how many are pushed."""
    named = {r.name: r for r in await s.execute(select(partners).where(partners.c.tenant_id == tenant_id))}
    if not named:
        return 0
    by_handle: dict[str, set[str]] = {}
    given = select(grants.c.partner, grants.c.handles).where(grants.c.tenant_id == tenant_id)
    for g in await s.execute(given):
        for h in g.handles:
            by_handle.setdefault(h, set()).add(g.partner)
    keys: dict[str, set[str]] = {}
    handles = sorted(by_handle)
    for start in range(0, len(handles), 500):
        q = select(items.c.handle, items.c.key).where(
            items.c.tenant_id == tenant_id,
            items.c.handle.in_(handles[start : start + 500]),
            items.c.id.in_(store.recalled_ids(rid)),
        )
        for r in await s.execute(q):
            for p in by_handle[r.handle]:
                keys.setdefault(p, set()).add(r.key)
    sent = select(notices).where(notices.c.recall_id == rid, notices.c.sender == tenant_id)
    told = {r.receiver: r for r in await s.execute(sent)}
    for p, got in keys.items():
        if p in told:
            merged = sorted(set(told[p].keys) | got)
            await s.execute(update(notices).where(notices.c.id == told[p].id).values(keys=merged))
        else:
            await s.execute(
                insert(notices).values(
                    recall_id=rid, sender=tenant_id, receiver=p, keys=sorted(got), notified_at=store.now()
                )
            )
    pushed = [n for n, r in named.items() if r.notify_url and (n in told or n in keys)]
    if pushed:
        await s.execute(
            update(notices)
            .where(notices.c.recall_id == rid, notices.c.sender == tenant_id, notices.c.receiver.in_(pushed))
            .values(push=1)
        )
    return len(pushed)


def _due(q: Select[Any], now: datetime, limit: int) -> Select[Any]:
    """Rows of ``q`` whose partner has an endpoint and whose next attempt is due, oldest first."""
    return (
        q.where(
            partners.c.notify_url.is_not(None),
            (notices.c.next_attempt_at.is_(None)) | (notices.c.next_attempt_at <= now),
        )
        .order_by(notices.c.id)
        .limit(limit)
    )


async def waiting(
    s: AsyncSession, ring: Keyring, tenant_id: str, now: datetime, limit: int = BATCH
) -> list[dict[str, Any]]:
    """Notices of the tenant due for delivery: each with its endpoint, key (unsealed) and the body."""
    q = (
        select(
            notices,
            partners.c.notify_url,
            partners.c.notify_key,
            recalls.c.name,
            recalls.c.reason,
        )
        .join(partners, (partners.c.tenant_id == notices.c.sender) & (partners.c.name == notices.c.receiver))
        .join(recalls, recalls.c.id == notices.c.recall_id)
        .where(
            notices.c.sender == tenant_id,
            notices.c.push == 1,
            notices.c.delivered_at.is_(None),
        )
    )
    q = _due(q, now, limit)
    return [
        {
            "id": r.id,
            "url": r.notify_url,
            "key": await vault.unseal(s, ring, tenant_id, r.receiver, "notify_key", r.notify_key) or "",
            "attempts": r.attempts,
            "body": {
                "notice": r.id,
                "recall": r.recall_id,
                "name": r.name,
                "reason": r.reason,
                "keys": r.keys,
                "notified_at": store.aware(r.notified_at).isoformat(),
            },
        }
        for r in await s.execute(q)
    ]


async def acks_waiting(
    s: AsyncSession, ring: Keyring, tenant_id: str, now: datetime, limit: int = BATCH
) -> list[dict[str, Any]]:
    """Acknowledgements of notices received from partners, due to be sent back to the sender's node
    (``<its notify_url>/<its notice id>/ack``, with the key it gave us)."""
    q = (
        select(notices, partners.c.notify_url, partners.c.notify_key)
        .join(partners, (partners.c.tenant_id == notices.c.receiver) & (partners.c.name == notices.c.sender))
        .where(
            notices.c.receiver == tenant_id,
            notices.c.remote_notice.is_not(None),
            notices.c.acked_at.is_not(None),
            notices.c.ack_sent_at.is_(None),
        )
    )
    q = _due(q, now, limit)
    return [
        {
            "id": r.id,
            "ack": True,
            "url": f"{r.notify_url.rstrip('/')}/{r.remote_notice}/ack",
            "key": await vault.unseal(s, ring, tenant_id, r.sender, "notify_key", r.notify_key) or "",
            "attempts": r.attempts,
            "body": {"acked_at": store.aware(r.acked_at).isoformat()},
        }
        for r in await s.execute(q)
    ]


async def take_ack(s: AsyncSession, tenant_id: str, partner: str, notice_id: int) -> dict[str, Any]:
    """A partner's node acknowledges our notice ``notice_id``: the campaign counts it done."""
    await sharing.partner(s, tenant_id, partner)
    mine = (notices.c.id == notice_id) & (notices.c.sender == tenant_id) & (notices.c.receiver == partner)
    row = (await s.execute(select(notices).where(mine, notices.c.push == 1))).first()
    if row is None:
        raise TraceItemNotFound(f"no recall notice {notice_id} was sent to {partner}", notice=notice_id)
    if row.acked_at is None:
        await s.execute(
            update(notices).where(mine).values(acked_at=store.now(), acked_by=f"partner:{partner}")
        )
    return store.notice_json((await s.execute(select(notices).where(mine))).one())


def pause(attempts: int) -> timedelta:
    """The wait before the next attempt after ``attempts`` failed ones."""
    return timedelta(seconds=min(MAX_PAUSE_S, 2.0 ** max(attempts - 1, 0)))


async def post(client: httpx.AsyncClient, note: dict[str, Any], allow: Sequence[Network] = ()) -> str | None:
    """Post one notice to its partner's endpoint (if the outbound policy lets it reach it); None
    when taken, else what went wrong."""
    try:
        await check_target(note["url"], allow, "notify_url")
    except OutboundTargetRefused as exc:
        return f"refused: {exc}"[:300]
    try:
        r = await client.post(note["url"], json=note["body"], headers={"X-API-Key": note["key"]})
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    if 200 <= r.status_code < 300:
        return None
    return f"HTTP {r.status_code}: {r.text}"[:300]


async def settle(ctx: AppCtx, note: dict[str, Any], error: str | None) -> None:
    """Record a delivery attempt of a notice or an acknowledgement (taken, or the error and when to
    try again) and audit it."""
    now = store.now()
    tries = int(note["attempts"]) + 1
    field, what = ("ack_sent_at", "recall.ack") if note.get("ack") else ("delivered_at", "recall.notice")
    done = {field: now, "last_error": None} if error is None else {"last_error": error}
    nxt = None if error is None else now + pause(tries)
    await ctx.session.execute(
        update(notices).where(notices.c.id == note["id"]).values(attempts=tries, next_attempt_at=nxt, **done)
    )
    if error is None:
        await ctx.audit(f"{what}.delivered", str(note["id"]), url=redact(note["url"]), attempts=tries)
    elif tries == 1 or tries % 10 == 0:
        await ctx.audit(
            f"{what}.failed", str(note["id"]), url=redact(note["url"]), attempts=tries, error=error
        )


async def deliver_once(ctx: WorkerContext, client: httpx.AsyncClient) -> int:
    """One pass over every enabled tenant's outbox; the notices delivered."""
    delivered = 0
    for tenant in await ctx.tenants():
        async with ctx.acting_in(tenant) as app:
            ring = shared_keyring(app.platform())
            due = await waiting(app.session, ring, tenant, store.now())
            due += await acks_waiting(app.session, ring, tenant, store.now())
            allow = app.platform().outbound_allow
        for note in due:  # no transaction is held while posting
            error = await post(client, note, allow)
            async with ctx.acting_in(tenant) as app:
                await settle(app, note, error)
            delivered += error is None
    return delivered


async def deliver(ctx: WorkerContext) -> None:
    """Push waiting recall notices to partners' endpoints, retrying until each is taken."""
    await ctx.services.wait_leader()
    for tenant in await ctx.tenants():  # secrets stored in clear before sealing came in
        async with ctx.acting_in(tenant) as app:
            await vault.seal_legacy(app.session, shared_keyring(app.platform()), tenant)
    async with httpx.AsyncClient(timeout=TIMEOUT_S, trust_env=False) as client:
        while True:
            try:
                await deliver_once(ctx, client)
            except Exception:
                ctx.log.exception("trace: delivering recall notices failed")
            await asyncio.sleep(POLL_S)


async def receive(
    s: AsyncSession, tenant_id: str, partner: str, body: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Take a partner's notice (once per sender's notice id) and recall at once what this tenant
    received from that partner of the notified items; the notice and whether it is new."""
    await sharing.partner(s, tenant_id, partner)
    seen = select(notices).where(
        notices.c.receiver == tenant_id,
        notices.c.sender == partner,
        notices.c.remote_notice == body["notice"],
    )
    row = (await s.execute(seen)).first()
    if row is not None:
        return store.notice_json(row), False
    try:
        async with s.begin_nested():
            nid = (
                await s.execute(
                    insert(notices)
                    .values(
                        recall_id=body["recall"],
                        sender=partner,
                        receiver=tenant_id,
                        keys=body["keys"],
                        notified_at=store.now(),
                        remote_notice=body["notice"],
                    )
                    .returning(notices.c.id)
                )
            ).scalar_one()
    except IntegrityError:  # the same notice, delivered twice at once
        return store.notice_json((await s.execute(seen)).one()), False
    held = []
    for start in range(0, len(body["keys"]), 500):
        q = select(items.c.id, items.c.attrs).where(
            items.c.tenant_id == tenant_id, items.c.key.in_(body["keys"][start : start + 500])
        )
        held += [r.id for r in await s.execute(q) if (r.attrs or {}).get("partner") == partner]
    name = f"{body.get('name') or 'recall'} (notice {body['notice']} from {partner})"
    local = await store.recall_held(s, tenant_id, sorted(held), name[:200], nid)
    await s.execute(update(notices).where(notices.c.id == nid).values(local_recall_id=local))
    return store.notice_json((await s.execute(select(notices).where(notices.c.id == nid))).one()), True
