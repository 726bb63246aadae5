"""Append-only audit events: a hash chain and an RFC 9162 Merkle tree per tenant.

Each tenant's events form a chain: ``hash = sha256(prev_hash | canonical event)``, and each
event is also leaf ``seq - 1`` of the tenant's transparency log (``gongyun.security.audit.tlog``):
``leaf = SHA-256(0x00 || canonical event)``. The head in ``audit_heads`` keeps the chain hash and
the tree's right edge (its compact range), so an append writes the leaf and the complete
subtrees it finishes (``audit_nodes``) in O(log n). Appending first bumps the head
(``UPDATE ... RETURNING``), which takes the write lock on SQLite and the row lock on
PostgreSQL, so concurrent writers serialise instead of forking the chain or the tree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, utcnow
from gongyun.security.audit.merkle import CompactRange, leaf_hash
from gongyun.security.tenancy import TenantScoped

GENESIS = "0" * 64


_ACTOR_LEN, _TARGET_LEN = 100, 200


class AuditHead(Base):
    """The newest sequence number and hash of one tenant's chain."""

    __tablename__ = "audit_heads"

    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    # the tree's compact range: hex hashes of the perfect subtrees on its right edge
    frontier: Mapped[list[str]] = mapped_column(JSON, default=list)


class AuditNode(Base):
    """The hash of one complete subtree of a tenant's tree: leaves [idx*2**level, (idx+1)*2**level)."""

    __tablename__ = "audit_nodes"

    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditEvent(TenantScoped, Base):
    """One security-relevant event."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(32), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(_ACTOR_LEN))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(_TARGET_LEN), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("tenant_id", "seq"),)


def leaf_body(tenant_id: str, seq: int, ts: str, fields: dict[str, Any]) -> str:
    """The canonical JSON of an event: what the chain hashes and the tree's leaf data."""
    return json.dumps(
        {"tenant": tenant_id, "seq": seq, "ts": ts, **fields},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def _digest(prev: str, tenant_id: str, seq: int, ts: datetime, fields: dict[str, Any]) -> str:
    body = leaf_body(tenant_id, seq, ts.isoformat(), fields)
    return hashlib.sha256(f"{prev}|{body}".encode()).hexdigest()


async def _bump(session: AsyncSession, tenant_id: str, by: int = 1) -> tuple[int, str, list[str]] | None:
    bumped = await session.execute(
        update(AuditHead)
        .where(AuditHead.tenant_id == tenant_id)
        .values(seq=AuditHead.seq + by)
        .returning(AuditHead.seq, AuditHead.hash, AuditHead.frontier)
        .execution_options(synchronize_session=False)
    )
    row = bumped.first()
    if row is None:
        return None
    frontier = row[2] if isinstance(row[2], list) else json.loads(row[2] or "[]")
    return int(row[0]), str(row[1]), list(frontier)


async def _bump_or_create(session: AsyncSession, tenant_id: str, by: int) -> tuple[int, str, list[str]]:
    row = await _bump(session, tenant_id, by)
    if row is None:
        # First event of this tenant: create the head (a concurrent creator may win; fine).
        dialect = session.get_bind().dialect.name
        make_insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await session.execute(
            make_insert(AuditHead)
            .values(tenant_id=tenant_id, seq=0, hash=GENESIS, frontier=[])
            .on_conflict_do_nothing()
        )
        row = await _bump(session, tenant_id, by)
        assert row is not None
    return row


Entry = tuple[str, str, str, str, dict[str, Any]]  # actor, action, target, outcome, detail


def _fields(actor: str, action: str, target: str, outcome: str, detail: dict[str, Any]) -> dict[str, Any]:
    # an API key's actor ("apikey:" + a 100-character name) or a long target must not fail the
    # caller's transaction: the column keeps a shortened form, the detail keeps the whole text
    if len(actor) > _ACTOR_LEN:
        detail, actor = {**detail, "actor_full": actor}, actor[: _ACTOR_LEN - 1] + "…"
    if len(target) > _TARGET_LEN:
        detail, target = {**detail, "target_full": target}, target[: _TARGET_LEN - 1] + "…"
    return {"actor": actor, "action": action, "target": target, "outcome": outcome, "detail": detail}


async def record_many(session: AsyncSession, tenant_id: str, entries: list[Entry]) -> int:
    """Append events in order (in the caller's transaction) with one head update; return the last seq."""
    if not entries:
        return await _current_seq(session, tenant_id)
    last, prev, frontier = await _bump_or_create(session, tenant_id, len(entries))
    first = last - len(entries) + 1
    tree = CompactRange(first - 1, [bytes.fromhex(h) for h in frontier])
    ts = utcnow()
    events: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    for seq, entry in enumerate(entries, start=first):
        fields = _fields(*entry)
        body = leaf_body(tenant_id, seq, ts.isoformat(), fields)
        digest = hashlib.sha256(f"{prev}|{body}".encode()).hexdigest()
        events.append(
            {"tenant_id": tenant_id, "seq": seq, "ts": ts, "prev_hash": prev, "hash": digest, **fields}
        )
        for lv, ix, h in tree.append(leaf_hash(body.encode())):
            nodes.append({"tenant_id": tenant_id, "level": lv, "idx": ix, "hash": h})
        prev = digest
    await session.execute(insert(AuditEvent), events)
    await session.execute(insert(AuditNode), nodes)
    await session.execute(
        update(AuditHead)
        .where(AuditHead.tenant_id == tenant_id)
        .values(hash=prev, frontier=[h.hex() for h in tree.hashes])
        .execution_options(synchronize_session=False)
    )
    return last


async def _current_seq(session: AsyncSession, tenant_id: str) -> int:
    head = await session.get(AuditHead, tenant_id)
    return int(head.seq) if head is not None else 0


async def record(
    session: AsyncSession,
    tenant_id: str,
    actor: str,
    action: str,
    target: str = "",
    outcome: str = "success",
    **detail: Any,
) -> int:
    """Append an event to the tenant's chain and tree (in the caller's transaction); return its seq."""
    return await record_many(session, tenant_id, [(actor, action, target, outcome, detail)])


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of checking a chain."""

    ok: bool
    count: int
    head: str
    first_bad_seq: int | None = None
    reason: str = ""


async def verify(session: AsyncSession, tenant_id: str) -> Verification:
    """Recompute the tenant's chain and compare it with the stored hashes and head."""
    prev, expected_seq, count = GENESIS, 1, 0
    query = (
        select(AuditEvent)
        .where(AuditEvent.tenant_id == tenant_id)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=1000)
    )
    async for ev in await session.stream_scalars(query):
        if ev.seq != expected_seq:
            return Verification(False, count, prev, expected_seq, "event missing or reordered")
        fields = {
            "actor": ev.actor,
            "action": ev.action,
            "target": ev.target,
            "outcome": ev.outcome,
            "detail": ev.detail,
        }
        if ev.prev_hash != prev or _digest(prev, tenant_id, ev.seq, ev.ts, fields) != ev.hash:
            return Verification(False, count, prev, ev.seq, "event altered")
        prev, expected_seq, count = ev.hash, expected_seq + 1, count + 1
    head = await session.get(AuditHead, tenant_id)
    if head is not None and (head.seq != count or head.hash != prev):
        return Verification(False, count, prev, count + 1, "events removed from the end")
    return Verification(True, count, prev)
