"""Items, genealogy links, traces and recalls in the database (SQLite, PostgreSQL).

A recall is set-based: one recursive statement walks forward from the recalled item and stores
what it reached as ranges of consecutive item ids (``trace_recall_ranges``; bulk-minted serials
are consecutive, so 100 000 serials are a handful of rows), and an item a campaign's range holds
reads as ``frozen`` (``STATUS``): no item row is rewritten.

Traces (``traces.py``) are recursive SQL (``WITH RECURSIVE``, ``walk_sql``) over ``trace_links``:
forward from a lot to everything made from it, backward from a serial to everything it was made
of. Without a depth limit the walk keeps only item ids (``UNION`` drops repeats, and links never
form a cycle, so it ends); with one it carries the depth. A new link that would close a cycle is
refused inside the same transaction that wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Select, case, func, insert, literal, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.trace.domain.ids import Kind, Minted, split_key
from gongyun.apps.trace.errors import GenealogyCycle, TraceItemNotFound
from gongyun.apps.trace.tables import items, links, notices, recall_ranges, recalls
from gongyun.errors import Conflict, InvalidInput

Direction = Literal["forward", "backward"]
Progress = Callable[[int, int], None]
LINK_KINDS = ("assembly", "split", "merge", "transform", "pack", "ship", "consume")
_CHUNK = 500
# per campaign of the tenant, the nearest range starting at or below the item (ranges of one
# campaign never overlap): a few index probes per item whatever the campaigns' sizes
FROZEN_SQL = (
    "EXISTS (SELECT 1 FROM trace_recalls c WHERE c.tenant_id = i.tenant_id AND "
    "(SELECT f.hi FROM trace_recall_ranges f WHERE f.recall_id = c.id AND f.lo <= i.id "
    "ORDER BY f.lo DESC LIMIT 1) >= i.id)"
)
STATUS = case((text(FROZEN_SQL.replace("i.", "trace_items.")), literal("frozen")), else_=items.c.status)
"""An item's status: ``frozen`` once a recall reached it (a recall writes no item row), else its own."""
ITEM_COLUMNS = [STATUS.label("status") if c.name == "status" else c for c in items.c]


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)


def aware(t: datetime) -> datetime:
    """A stored time as UTC (SQLite gives it back without its offset)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def walk_sql(direction: Direction, limited: bool) -> str:
    """The ``WITH RECURSIVE walk`` clause of a trace from ``:root`` (``:depth`` when ``limited``)."""
    a, b = ("parent_id", "child_id") if direction == "forward" else ("child_id", "parent_id")
    if not limited:
        return (
            "WITH RECURSIVE walk(id) AS (SELECT CAST(:root AS BIGINT) UNION "  # noqa: S608 (column names)
            f"SELECT l.{b} FROM walk w JOIN trace_links l ON l.{a} = w.id)"
        )
    return (
        "WITH RECURSIVE walk(id, depth) AS (SELECT CAST(:root AS BIGINT), 0 UNION "  # noqa: S608
        f"SELECT l.{b}, w.depth + 1 FROM walk w JOIN trace_links l ON l.{a} = w.id WHERE w.depth < :depth)"
    )


@dataclass(frozen=True, slots=True)
class TraceResult:
    """The items a trace reached (with their least depth) and the links between them."""

    root: int
    direction: Direction
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    truncated: bool = False


def _item_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "key": row.key,
        "gtin": row.gtin,
        "lot": row.lot,
        "serial": row.serial,
        "sscc": row.sscc,
        "handle": row.handle,
        "status": row.status,
        "receiver": row.receiver,
        "machine": row.machine,
        "attrs": row.attrs or {},
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


async def add_items(
    s: AsyncSession,
    tenant_id: str,
    minted: Sequence[Minted],
    *,
    machine: str | None = None,
    receiver: str | None = None,
    attrs: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> list[int]:
    """Insert items (``Conflict`` when a key exists in the tenant); their ids in order."""
    ids: list[int] = []
    stamp = now()
    for start in range(0, len(minted), _CHUNK):
        chunk = minted[start : start + _CHUNK]
        rows = [
            {
                "tenant_id": tenant_id,
                "kind": m.kind.value,
                "key": m.key,
                "gtin": m.gtin,
                "lot": m.lot,
                "serial": m.serial,
                "sscc": m.sscc,
                "status": "active",
                "receiver": receiver,
                "machine": machine,
                "attrs": {**(attrs or {}), **m.attrs},
                "created_at": stamp,
            }
            for m in chunk
        ]
        try:
            async with s.begin_nested():
                result = await s.execute(insert(items).returning(items.c.id, items.c.key), rows)
                got = {r.key: r.id for r in result}
        except IntegrityError:
            keys = [m.key for m in chunk]
            taken = (
                await s.execute(
                    select(items.c.key).where(items.c.tenant_id == tenant_id, items.c.key.in_(keys)).limit(5)
                )
            ).scalars()
            raise Conflict("identifiers exist already in this tenant", keys=list(taken)) from None
        ids.extend(got[m.key] for m in chunk)
        if progress is not None:
            progress(len(ids), len(minted))
    return ids


async def item(s: AsyncSession, tenant_id: str, ref: int | str) -> dict[str, Any]:
    """One item by id or key."""
    cond = items.c.id == ref if isinstance(ref, int) else items.c.key == ref
    row = (await s.execute(select(*ITEM_COLUMNS).where(items.c.tenant_id == tenant_id, cond))).first()
    if row is None:
        raise TraceItemNotFound(f"no item {ref} in this tenant", item=str(ref))
    return _item_json(row)


async def item_ids(s: AsyncSession, tenant_id: str, keys: Iterable[str]) -> dict[str, int]:
    """Ids of the items with these keys (missing keys are absent)."""
    out: dict[str, int] = {}
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        q = select(items.c.key, items.c.id).where(items.c.tenant_id == tenant_id, items.c.key.in_(chunk))
        out.update({r.key: r.id for r in await s.execute(q)})
    return out


async def ensure_items(s: AsyncSession, tenant_id: str, keys: Iterable[str], kind: Kind) -> dict[str, int]:
    """Ids of these keys, creating the missing ones as items of ``kind``."""
    found = await item_ids(s, tenant_id, keys)
    missing = [k for k in dict.fromkeys(keys) if k not in found]
    if missing:
        made = []
        for k in missing:
            p = split_key(k)
            made.append(Minted(kind, k, p["gtin"], p["lot"], p["serial"], p["sscc"]))
        found.update(zip(missing, await add_items(s, tenant_id, made), strict=True))
    return found


async def list_items(
    s: AsyncSession, tenant_id: str, kind: str | None = None, status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The tenant's items, newest first."""
    q = select(*ITEM_COLUMNS).where(items.c.tenant_id == tenant_id)
    if kind:
        q = q.where(items.c.kind == kind)
    if status:
        current = STATUS
        q = q.where(current == status)
    rows = await s.execute(q.order_by(items.c.id.desc()).limit(limit))
    return [_item_json(r) for r in rows]


async def add_links(
    s: AsyncSession, tenant_id: str, pairs: Sequence[tuple[int, int]], kind: str = "assembly", **extra: Any
) -> int:
    """Add parent → child links; ``GenealogyCycle`` (nothing kept) when one closes a cycle."""
    if kind not in LINK_KINDS:
        raise InvalidInput(f"link kind must be one of {', '.join(LINK_KINDS)}", field="kind")
    own = await s.execute(
        select(func.count())
        .select_from(items)
        .where(items.c.tenant_id == tenant_id, items.c.id.in_({i for p in pairs for i in p}))
    )
    if int(own.scalar_one()) != len({i for p in pairs for i in p}):
        raise TraceItemNotFound("a link names an item that is not in this tenant")
    selfish = [p for p, c in pairs if p == c]
    if selfish:
        raise GenealogyCycle(f"item {selfish[0]} cannot contain itself", items=selfish[:10])
    async with s.begin_nested() as nested:
        rows = [
            {"tenant_id": tenant_id, "parent_id": p, "child_id": c, "kind": kind, **extra} for p, c in pairs
        ]
        for start in range(0, len(rows), _CHUNK):
            await s.execute(insert(links), rows[start : start + _CHUNK])
        cyclic = await _cycle_through(s, tenant_id, sorted({p for p, _ in pairs}))
        if cyclic is not None:
            await nested.rollback()
            raise GenealogyCycle(
                f"linking would make item {cyclic} its own ancestor", item=cyclic, code_hint="cycle"
            )
    return len(rows)


async def _cycle_through(s: AsyncSession, tenant_id: str, origins: list[int]) -> int | None:
    """An origin reachable from itself (a cycle), or None."""
    for start in range(0, len(origins), _CHUNK):
        chunk = origins[start : start + _CHUNK]
        params = {f"o{i}": o for i, o in enumerate(chunk)}
        marks = ", ".join(f":o{i}" for i in range(len(chunk)))
        sql = (
            "WITH RECURSIVE walk(origin, id) AS ("  # noqa: S608 (placeholders only)
            "SELECT l.parent_id, l.child_id FROM trace_links l "
            f"WHERE l.tenant_id = :tenant AND l.parent_id IN ({marks}) "
            "UNION SELECT w.origin, l.child_id FROM walk w JOIN trace_links l ON l.parent_id = w.id) "
            "SELECT origin FROM walk WHERE id = origin LIMIT 1"
        )
        row = (await s.execute(text(sql), {"tenant": tenant_id, **params})).first()
        if row is not None:
            return int(row[0])
    return None


async def start_recall(
    s: AsyncSession,
    tenant_id: str,
    root: int,
    name: str,
    reason: str = "",
    source: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Freeze everything made from ``root`` and notify the receivers of its shipments."""
    await item(s, tenant_id, root)
    result = await s.execute(
        insert(recalls).returning(recalls.c.id),
        [
            {
                "tenant_id": tenant_id,
                "name": name,
                "reason": reason,
                "root_id": root,
                "status": "open",
                "affected": 0,
                "created_at": now(),
                "source": source,
            }
        ],
    )
    rid = int(result.scalar_one())
    report = progress or (lambda done, total: None)
    report(0, 0)
    walk = walk_sql("forward", False)
    await s.execute(
        text(
            f"{walk} INSERT INTO trace_recall_ranges (recall_id, lo, hi, n) "  # noqa: S608
            "SELECT :rid, MIN(id), MAX(id), COUNT(*) FROM "
            "(SELECT id, id - ROW_NUMBER() OVER (ORDER BY id) AS run FROM walk) w GROUP BY run"
        ),
        {"root": root, "rid": rid},
    )
    total = int(
        (
            await s.execute(
                select(func.coalesce(func.sum(recall_ranges.c.n), 0)).where(recall_ranges.c.recall_id == rid)
            )
        ).scalar_one()
    )
    report(total, 0)
    await s.execute(update(recalls).where(recalls.c.id == rid).values(affected=total))
    receivers = sorted(
        (
            await s.execute(
                select(items.c.receiver)
                .distinct()
                .where(items.c.id.in_(recalled_ids(rid)), items.c.receiver.is_not(None))
            )
        ).scalars()
    )
    for receiver in receivers:
        await s.execute(
            insert(notices),
            [
                {
                    "recall_id": rid,
                    "sender": tenant_id,
                    "receiver": receiver,
                    "keys": await _shipped_keys(s, rid, receiver),
                    "notified_at": now(),
                }
            ],
        )
    report(total, total)
    return await recall(s, tenant_id, rid)


def recalled_ids(rid: int) -> Select[tuple[int]]:
    """The ids of the items a recall campaign holds (a subquery)."""
    return (
        select(items.c.id)
        .select_from(recall_ranges.join(items, items.c.id.between(recall_ranges.c.lo, recall_ranges.c.hi)))
        .where(recall_ranges.c.recall_id == rid)
    )


async def _shipped_keys(s: AsyncSession, rid: int, receiver: str) -> list[str]:
    """What a receiver got of a recall: the affected items shipped to it and, three links back
    from them, the serials, batches, lots, packages and pallets they hold (one recursive query)."""
    sql = (
        "WITH RECURSIVE up(id, d) AS ("
        "SELECT i.id, 0 FROM trace_recall_ranges r JOIN trace_items i ON i.id BETWEEN r.lo AND r.hi "
        "WHERE r.recall_id = :rid AND i.receiver = :receiver "
        "UNION SELECT l.parent_id, u.d + 1 FROM up u JOIN trace_links l ON l.child_id = u.id WHERE u.d < 3) "
        "SELECT DISTINCT i.key FROM up u JOIN trace_items i ON i.id = u.id "
        "WHERE u.d = 0 OR i.kind IN ('serial', 'batch', 'material_lot', 'package', 'pallet')"
    )
    rows = await s.execute(text(sql), {"rid": rid, "receiver": receiver})
    return sorted({r.key for r in rows})


async def recall(s: AsyncSession, tenant_id: str, rid: int) -> dict[str, Any]:
    """A recall campaign: counts of affected items by kind, notices and their acknowledgement."""
    row = (
        await s.execute(select(recalls).where(recalls.c.id == rid, recalls.c.tenant_id == tenant_id))
    ).first()
    if row is None:
        raise TraceItemNotFound(f"no recall {rid} in this tenant", recall=rid)
    by_kind = await s.execute(
        select(items.c.kind, func.count())
        .select_from(recall_ranges.join(items, items.c.id.between(recall_ranges.c.lo, recall_ranges.c.hi)))
        .where(recall_ranges.c.recall_id == rid)
        .group_by(items.c.kind)
    )
    sent = await s.execute(
        select(notices)
        .where(notices.c.recall_id == rid, notices.c.sender == tenant_id, notices.c.remote_notice.is_(None))
        .order_by(notices.c.id)
    )
    told = [notice_json(n) for n in sent]
    return {
        "id": rid,
        "name": row.name,
        "reason": row.reason,
        "root": row.root_id,
        "status": row.status,
        "affected": row.affected,
        "created_at": row.created_at.isoformat(),
        "by_kind": {k: int(n) for k, n in by_kind},
        "notices": told,
        "progress": progress_of(told),
        "source": row.source,
    }


def progress_of(told: list[dict[str, Any]]) -> dict[str, Any]:
    """How far a campaign has got, in percent of its notices acknowledged (a partner's
    acknowledgement comes back from its node; delivered alone is counted, not done)."""
    delivered = sum(1 for n in told if n["push"] and n["delivered_at"])
    acked = sum(1 for n in told if n["acked_at"])
    done = acked
    if done == len(told):
        stage = "complete"
    elif any(n["push"] and not n["delivered_at"] for n in told):
        stage = "notifying"
    else:
        stage = "acknowledging"
    return {
        "percent": 100 if not told else 100 * done // len(told),
        "stage": stage,
        "notices": len(told),
        "done": done,
        "delivered": delivered,
        "acknowledged": acked,
    }


def notice_json(n: Any) -> dict[str, Any]:
    """A recall notice row as the API shows it."""
    return {
        "id": n.id,
        "recall": n.recall_id,
        "sender": n.sender,
        "receiver": n.receiver,
        "keys": n.keys,
        "notified_at": n.notified_at.isoformat(),
        "acked_at": n.acked_at.isoformat() if n.acked_at else None,
        "acked_by": n.acked_by,
        "local_recall": n.local_recall_id,
        "push": bool(n.push),
        "delivered_at": aware(n.delivered_at).isoformat() if n.delivered_at else None,
        "attempts": n.attempts,
        "last_error": n.last_error,
        "remote_notice": n.remote_notice,
        "ack_sent_at": aware(n.ack_sent_at).isoformat() if n.ack_sent_at else None,
    }


async def list_recalls(s: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's recall campaigns, newest first."""
    rows = await s.execute(
        select(recalls.c.id).where(recalls.c.tenant_id == tenant_id).order_by(recalls.c.id.desc())
    )
    return [await recall(s, tenant_id, int(r)) for r in rows.scalars()]


async def inbox(s: AsyncSession, receiver: str) -> list[dict[str, Any]]:
    """Recall notices sent to ``receiver`` (a tenant of this deployment or a partner name)."""
    rows = await s.execute(
        select(notices).where(notices.c.receiver == receiver).order_by(notices.c.id.desc())
    )
    return [notice_json(n) for n in rows]


async def acknowledge(
    s: AsyncSession, receiver: str, notice_id: int, actor: str, apply: bool
) -> dict[str, Any]:
    """Acknowledge a notice; with ``apply``, recall in the receiver's tenant what it holds of the keys."""
    row = (
        await s.execute(select(notices).where(notices.c.id == notice_id, notices.c.receiver == receiver))
    ).first()
    if row is None:
        raise TraceItemNotFound(f"no recall notice {notice_id} for {receiver}", notice=notice_id)
    local: int | None = row.local_recall_id
    if apply and local is None:
        held = await item_ids(s, receiver, row.keys)
        local = await recall_held(
            s, receiver, sorted(held.values()), f"recall notice {notice_id} from {row.sender}", notice_id
        )
    await s.execute(
        update(notices)
        .where(notices.c.id == notice_id)
        .values(acked_at=row.acked_at or now(), acked_by=row.acked_by or actor, local_recall_id=local)
    )
    out = (await s.execute(select(notices).where(notices.c.id == notice_id))).first()
    return notice_json(out)


async def recall_held(
    s: AsyncSession, tenant_id: str, roots: list[int], name: str, notice_id: int
) -> int | None:
    """Recall what a tenant holds of a notice's items: one campaign (from the first, the others
    merged into it); its id, or None when the tenant holds none of them."""
    if not roots:
        return None
    first = await start_recall(s, tenant_id, roots[0], name, source={"notice": notice_id})
    for other in roots[1:]:
        extra = await start_recall(s, tenant_id, other, f"{name} (more)", source={"notice": notice_id})
        await s.execute(update(recalls).where(recalls.c.id == extra["id"]).values(status="merged"))
    return int(first["id"])


async def production(s: AsyncSession, tenant_id: str, item_id: int) -> list[dict[str, Any]]:
    """How an item was made: the links into it (parent, kind, machine, operator, time window)."""
    q = (
        select(links, items.c.key, items.c.kind.label("parent_kind"))
        .join(items, items.c.id == links.c.parent_id)
        .where(links.c.tenant_id == tenant_id, links.c.child_id == item_id)
        .order_by(links.c.id)
    )
    out = []
    for r in await s.execute(q):
        out.append(
            {
                "parent": r.parent_id,
                "parent_key": r.key,
                "parent_kind": r.parent_kind,
                "kind": r.kind,
                "qty": r.qty,
                "machine": r.machine,
                "operator": r.operator,
                "start_at": aware(r.start_at).isoformat() if r.start_at else None,
                "end_at": aware(r.end_at).isoformat() if r.end_at else None,
                "event_id": r.event_id,
            }
        )
    return out


async def recalls_of(s: AsyncSession, tenant_id: str, item_id: int) -> list[dict[str, Any]]:
    """The recall campaigns that reached an item."""
    q = (
        select(recalls.c.id, recalls.c.name, recalls.c.status, recalls.c.created_at)
        .join(recall_ranges, recall_ranges.c.recall_id == recalls.c.id)
        .where(
            recalls.c.tenant_id == tenant_id,
            recall_ranges.c.lo <= item_id,
            recall_ranges.c.hi >= item_id,
        )
        .order_by(recalls.c.id)
    )
    return [
        {"id": r.id, "name": r.name, "status": r.status, "created_at": r.created_at.isoformat()}
        for r in await s.execute(q)
    ]
