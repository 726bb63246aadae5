"""Items, genealogy links, traces and recalls in the database (SQLite, PostgreSQL).

Traces are recursive SQL (``WITH RECURSIVE``) over ``trace_links``: forward from a lot to
everything made from it, backward from a serial to everything it was made of. Without a depth
limit the walk keeps only item ids (``UNION`` drops repeats, and links never form a cycle, so it
ends); with one it carries the depth. A new link that would close a cycle is refused inside the
same transaction that wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Integer, column, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.trace.domain.ids import Kind, Minted, split_key
from gongyun.apps.trace.errors import GenealogyCycle, TraceItemNotFound
from gongyun.apps.trace.tables import items, links, notices, recall_items, recalls
from gongyun.errors import Conflict, InvalidInput

Direction = Literal["forward", "backward"]
Progress = Callable[[int, int], None]
LINK_KINDS = ("assembly", "split", "merge", "transform", "pack", "ship", "consume")
_CHUNK = 500
_ITEM_COLS = ", ".join(f"i.{c.name}" for c in items.c)


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)


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
    row = (await s.execute(select(items).where(items.c.tenant_id == tenant_id, cond))).first()
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
    q = select(items).where(items.c.tenant_id == tenant_id)
    if kind:
        q = q.where(items.c.kind == kind)
    if status:
        q = q.where(items.c.status == status)
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


async def trace(
    s: AsyncSession,
    tenant_id: str,
    root: int,
    direction: Direction,
    depth: int | None = None,
    limit: int = 100_000,
) -> TraceResult:
    """Everything reachable from ``root`` forward or backward (to ``depth`` links, or all)."""
    await item(s, tenant_id, root)
    limited = depth is not None
    walk = walk_sql(direction, limited)
    reached = (
        "SELECT id, MIN(depth) AS depth FROM walk GROUP BY id"
        if limited
        else "SELECT id, 0 AS depth FROM walk"
    )
    sql = (
        f"{walk} SELECT {_ITEM_COLS}, r.depth FROM ({reached}) r JOIN trace_items i ON i.id = r.id "  # noqa: S608
        "WHERE i.tenant_id = :tenant ORDER BY r.depth, i.id LIMIT :limit"
    )
    params: dict[str, Any] = {"root": root, "tenant": tenant_id, "limit": limit + 1}
    if limited:
        params["depth"] = depth
    rows = list(await s.execute(text(sql).columns(*items.c, column("depth", Integer)), params))
    truncated = len(rows) > limit
    nodes = []
    for r in rows[:limit]:
        node = _item_json(r)
        node["depth"] = int(r.depth)
        nodes.append(node)
    ids = [n["id"] for n in nodes]
    edges: list[dict[str, Any]] = []
    if len(ids) <= 5_000:
        idset = set(ids)
        near = "parent_id" if direction == "forward" else "child_id"
        edge_sql = (
            f"{walk_sql(direction, False)} SELECT l.parent_id, l.child_id, l.kind FROM trace_links l "  # noqa: S608
            f"WHERE l.{near} IN (SELECT id FROM walk)"
        )
        for r in await s.execute(text(edge_sql), {"root": root}):
            if r.parent_id in idset and r.child_id in idset:
                edges.append({"parent": r.parent_id, "child": r.child_id, "kind": r.kind})
        if not limited:  # least depths from the links (the id-only walk does not carry them)
            near_of = {"forward": ("parent", "child"), "backward": ("child", "parent")}[direction]
            nxt: dict[int, list[int]] = {}
            for e in edges:
                nxt.setdefault(e[near_of[0]], []).append(e[near_of[1]])
            level = {root: 0}
            frontier = [root]
            while frontier:
                following = []
                for i in frontier:
                    for j in nxt.get(i, []):
                        if j not in level:
                            level[j] = level[i] + 1
                            following.append(j)
                frontier = following
            for n in nodes:
                n["depth"] = level.get(n["id"], n["depth"])
            nodes.sort(key=lambda n: (n["depth"], n["id"]))
    return TraceResult(root, direction, nodes, edges, truncated)


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
    walk = walk_sql("forward", False)
    await s.execute(
        text(
            f"{walk} INSERT INTO trace_recall_items (recall_id, item_id, previous_status) "  # noqa: S608
            "SELECT :rid, i.id, i.status FROM trace_items i WHERE i.tenant_id = :tenant "
            "AND i.id IN (SELECT id FROM walk)"
        ),
        {"root": root, "tenant": tenant_id, "rid": rid},
    )
    affected = list(
        (
            await s.execute(
                select(recall_items.c.item_id)
                .where(recall_items.c.recall_id == rid)
                .order_by(recall_items.c.item_id)
            )
        ).scalars()
    )
    step = 10_000
    for start in range(0, len(affected), step):
        lo, hi = affected[start], affected[min(start + step, len(affected)) - 1]
        chunk = (
            select(recall_items.c.item_id)
            .where(recall_items.c.recall_id == rid, recall_items.c.item_id.between(lo, hi))
            .scalar_subquery()
        )
        await s.execute(
            update(items)
            .where(items.c.tenant_id == tenant_id, items.c.id.in_(chunk))
            .values(status="frozen")
            .execution_options(synchronize_session=False)
        )
        if progress is not None:
            progress(min(start + step, len(affected)), len(affected))
    await s.execute(update(recalls).where(recalls.c.id == rid).values(affected=len(affected)))
    shipped = await s.execute(
        select(items.c.receiver, items.c.key, items.c.kind).where(
            items.c.tenant_id == tenant_id,
            items.c.id.in_(select(recall_items.c.item_id).where(recall_items.c.recall_id == rid)),
            items.c.receiver.is_not(None),
        )
    )
    by_receiver: dict[str, list[str]] = {}
    for r in shipped:
        by_receiver.setdefault(r.receiver, []).append(r.key)
    # what was shipped: the keys of the shipped items' parents too (the lots and serials in them)
    for receiver, keys in by_receiver.items():
        parents = await _parents_of(s, tenant_id, keys)
        await s.execute(
            insert(notices),
            [
                {
                    "recall_id": rid,
                    "sender": tenant_id,
                    "receiver": receiver,
                    "keys": sorted(set(keys) | parents),
                    "notified_at": now(),
                }
            ],
        )
    return await recall(s, tenant_id, rid)


async def _parents_of(s: AsyncSession, tenant_id: str, keys: list[str]) -> set[str]:
    ids = await item_ids(s, tenant_id, keys)
    walk_ids: set[str] = set()
    for i in ids.values():
        res = await trace(s, tenant_id, i, "backward", depth=3, limit=10_000)
        walk_ids |= {
            n["key"]
            for n in res.nodes
            if n["kind"] in {"serial", "batch", "material_lot", "package", "pallet"}
        }
    return walk_ids


async def recall(s: AsyncSession, tenant_id: str, rid: int) -> dict[str, Any]:
    """A recall campaign: counts of affected items by kind, notices and their acknowledgement."""
    row = (
        await s.execute(select(recalls).where(recalls.c.id == rid, recalls.c.tenant_id == tenant_id))
    ).first()
    if row is None:
        raise TraceItemNotFound(f"no recall {rid} in this tenant", recall=rid)
    by_kind = await s.execute(
        select(items.c.kind, func.count())
        .select_from(recall_items.join(items, items.c.id == recall_items.c.item_id))
        .where(recall_items.c.recall_id == rid)
        .group_by(items.c.kind)
    )
    sent = await s.execute(select(notices).where(notices.c.recall_id == rid).order_by(notices.c.id))
    return {
        "id": rid,
        "name": row.name,
        "reason": row.reason,
        "root": row.root_id,
        "status": row.status,
        "affected": row.affected,
        "created_at": row.created_at.isoformat(),
        "by_kind": {k: int(n) for k, n in by_kind},
        "notices": [_notice_json(n) for n in sent],
        "source": row.source,
    }


def _notice_json(n: Any) -> dict[str, Any]:
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
    return [_notice_json(n) for n in rows]


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
        roots = sorted(held.values())
        if roots:
            # one campaign per notice: from the first held key, then the others added to it
            first = await start_recall(
                s,
                receiver,
                roots[0],
                f"recall notice {notice_id} from {row.sender}",
                source={"notice": notice_id},
            )
            local = int(first["id"])
            for other in roots[1:]:
                extra = await start_recall(
                    s, receiver, other, f"recall notice {notice_id} (more)", source={"notice": notice_id}
                )
                await s.execute(update(recalls).where(recalls.c.id == extra["id"]).values(status="merged"))
    await s.execute(
        update(notices)
        .where(notices.c.id == notice_id)
        .values(acked_at=row.acked_at or now(), acked_by=row.acked_by or actor, local_recall_id=local)
    )
    out = (await s.execute(select(notices).where(notices.c.id == notice_id))).first()
    return _notice_json(out)


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
                "start_at": r.start_at.isoformat() if r.start_at else None,
                "end_at": r.end_at.isoformat() if r.end_at else None,
                "event_id": r.event_id,
            }
        )
    return out


async def recalls_of(s: AsyncSession, tenant_id: str, item_id: int) -> list[dict[str, Any]]:
    """The recall campaigns that reached an item."""
    q = (
        select(recalls.c.id, recalls.c.name, recalls.c.status, recalls.c.created_at)
        .join(recall_items, recall_items.c.recall_id == recalls.c.id)
        .where(recalls.c.tenant_id == tenant_id, recall_items.c.item_id == item_id)
    )
    return [
        {"id": r.id, "name": r.name, "status": r.status, "created_at": r.created_at.isoformat()}
        for r in await s.execute(q)
    ]
