"""The audit transparency log over the database: checkpoints, proofs, export and verification.

One tree per tenant (its ``tenant_id``) and one for the platform (``PLATFORM_LOG``). Leaf
``seq - 1`` is the event with that ``seq``; ``audit_nodes`` keeps every complete subtree, so a
proof reads O(log n) rows by primary key, whatever the size of the tree.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gongyun.db.base import Base, UTCDateTime, utcnow
from gongyun.errors import NotFound
from gongyun.security.audit.chain import AuditEvent, AuditHead, AuditNode, leaf_body
from gongyun.security.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofError,
    consistency_ranges,
    fold,
    inclusion_ranges,
    leaf_hash,
    range_nodes,
    verify_consistency,
)
from gongyun.security.audit.note import Checkpoint, Signer, Verifier

PLATFORM_LOG = "platform"  # the platform's own tree (tenant ids are 32 hex characters)


class AuditCheckpoint(Base):
    """A signed tree head the platform issued for one tree."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_audit_checkpoints_tenant_size", "tenant_id", "size"),)


def origin_for(base: str, tree: str) -> str:
    """The checkpoint origin line of a tree."""
    return f"{base}/audit/{tree}"


async def read_nodes(session: AsyncSession, tree: str, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """The stored hashes of the given complete subtrees (one query)."""
    by_level: dict[int, list[int]] = {}
    for level, idx in set(ids):
        by_level.setdefault(level, []).append(idx)
    if not by_level:
        return {}
    # one statement of primary-key lookups: a UNION ALL of one indexed SELECT per level
    # (an OR of levels or a row-value IN makes SQLite scan the table)
    parts = [
        select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(
            AuditNode.tenant_id == tree, AuditNode.level == lv, AuditNode.idx.in_(sorted(ix))
        )
        for lv, ix in sorted(by_level.items())
    ]
    rows = await session.execute(parts[0] if len(parts) == 1 else union_all(*parts))
    return {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}


async def _range_hashes(session: AsyncSession, tree: str, ranges: list[tuple[int, int]]) -> list[bytes]:
    parts = [range_nodes(a, b) for a, b in ranges]
    known = await read_nodes(session, tree, {n for p in parts for n in p})
    try:
        return [fold([known[n] for n in p]) for p in parts]
    except KeyError as exc:
        raise ProofError(f"node {exc.args[0]} of log {tree} is missing") from None


async def tree_size(session: AsyncSession, tree: str) -> int:
    """The number of leaves in a tree (0 if it has none)."""
    head = await session.get(AuditHead, tree, populate_existing=True)
    return int(head.seq) if head is not None else 0


async def root_at(session: AsyncSession, tree: str, size: int) -> bytes:
    """The root hash of the tree's first ``size`` leaves."""
    if size == 0:
        return EMPTY_ROOT
    return (await _range_hashes(session, tree, [(0, size)]))[0]


async def inclusion_proof(session: AsyncSession, tree: str, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return await _range_hashes(session, tree, inclusion_ranges(index, size))


async def consistency_proof(session: AsyncSession, tree: str, first: int, second: int) -> list[bytes]:
    """The consistency proof from size ``first`` to size ``second``."""
    if first in (second, 0):
        return []
    return await _range_hashes(session, tree, consistency_ranges(first, second))


async def leaf_hash_at(session: AsyncSession, tree: str, index: int) -> bytes:
    """The stored hash of leaf ``index``."""
    found = await read_nodes(session, tree, [(0, index)])
    if (0, index) not in found:
        raise NotFound(f"leaf {index} is not in log {tree}")
    return found[(0, index)]


async def checkpoint(session: AsyncSession, tree: str, signer: Signer, origin_base: str) -> str:
    """A signed checkpoint of the tree as it is now; stored when the tree grew since the last."""
    size = await tree_size(session, tree)
    root = await root_at(session, tree, size)
    last = await latest_stored(session, tree)
    if last is not None and last.size == size and last.root == root.hex():
        return last.note
    note = Checkpoint(origin_for(origin_base, tree), size, root).sign(signer)
    session.add(AuditCheckpoint(tenant_id=tree, size=size, root=root.hex(), note=note))
    await session.flush()
    return note


async def latest_stored(session: AsyncSession, tree: str) -> AuditCheckpoint | None:
    """The newest checkpoint stored for a tree."""
    query = (
        select(AuditCheckpoint)
        .where(AuditCheckpoint.tenant_id == tree)
        .order_by(AuditCheckpoint.size.desc(), AuditCheckpoint.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalars().first()


def export_line(ev: AuditEvent) -> dict[str, Any]:
    """One event as exported: everything its leaf hash covers."""
    return {
        "seq": ev.seq,
        "ts": ev.ts.isoformat(),
        "actor": ev.actor,
        "action": ev.action,
        "target": ev.target,
        "outcome": ev.outcome,
        "detail": ev.detail,
    }


def leaf_of(tree: str, line: dict[str, Any]) -> bytes:
    """The leaf hash of an exported event."""
    fields = {k: line[k] for k in ("actor", "action", "target", "outcome", "detail")}
    return leaf_hash(leaf_body(tree, int(line["seq"]), str(line["ts"]), fields).encode())


async def export(session: AsyncSession, tree: str) -> AsyncIterator[str]:
    """The tree as JSON lines: a header, then every event in ``seq`` order."""
    yield json.dumps({"log": tree, "format": "gongyun-audit-export/1"}) + "\n"
    query = select(AuditEvent).where(AuditEvent.tenant_id == tree).order_by(AuditEvent.seq)
    async for ev in await session.stream_scalars(query.execution_options(yield_per=2000, all_tenants=True)):
        yield json.dumps(export_line(ev), ensure_ascii=False, sort_keys=True, default=str) + "\n"


@dataclass
class LogCheck:
    """What a whole-log check found."""

    ok: bool
    size: int
    root: str
    problems: list[str] = field(default_factory=list)


def check_leaves(
    tree: str,
    lines: Iterable[dict[str, Any]],
    checkpoints: Iterable[Checkpoint] = (),
    head_root: bytes | None = None,
) -> LogCheck:
    """Rebuild the tree from events and hold it against checkpoints (and the stored head).

    Detects an altered, inserted, removed or reordered event (the roots differ), and a log
    shorter than a checkpoint it once issued (events and head removed, the whole trail wiped).
    """
    want = sorted(checkpoints, key=lambda c: c.size)
    problems: list[str] = []
    roots: dict[int, bytes] = {}
    sizes = {c.size for c in want}
    tree_cr = CompactRange()
    if 0 in sizes:
        roots[0] = EMPTY_ROOT
    for line in lines:
        if int(line["seq"]) != tree_cr.size + 1:
            problems.append(f"event seq {line['seq']} where {tree_cr.size + 1} was expected")
        tree_cr.append(leaf_of(tree, line))
        if tree_cr.size in sizes:
            roots[tree_cr.size] = tree_cr.root()
    for c in want:
        if c.size > tree_cr.size:
            problems.append(
                f"checkpoint of {c.size} events but the log has {tree_cr.size}: events were removed"
            )
        elif roots[c.size] != c.root:
            problems.append(f"the first {c.size} events do not match their checkpoint: history was rewritten")
    if head_root is not None and head_root != tree_cr.root():
        problems.append("the stored tree does not match the events")
    return LogCheck(not problems, tree_cr.size, tree_cr.root().hex(), problems)


async def verify_log(
    session: AsyncSession,
    tree: str,
    verifiers: list[Verifier],
    external: Iterable[str] = (),
) -> LogCheck:
    """Check a stored tree: its events against its head, every stored and every external checkpoint."""
    cps: list[Checkpoint] = []
    problems: list[str] = []
    notes = (
        await session.execute(select(AuditCheckpoint.note).where(AuditCheckpoint.tenant_id == tree))
    ).scalars()
    for note in [*notes, *external]:
        try:
            cps.append(Checkpoint.open(note, verifiers))
        except Exception as exc:  # a forged or damaged checkpoint is itself a finding
            problems.append(f"checkpoint rejected: {exc}")
    head = await session.get(AuditHead, tree, populate_existing=True)
    head_root = None
    if head is not None:
        frontier = head.frontier if isinstance(head.frontier, list) else json.loads(head.frontier or "[]")
        try:
            head_root = CompactRange(int(head.seq), [bytes.fromhex(h) for h in frontier]).root()
        except ProofError:
            problems.append("the stored head is damaged")
    query = select(AuditEvent).where(AuditEvent.tenant_id == tree).order_by(AuditEvent.seq)
    lines = [
        export_line(ev)
        async for ev in await session.stream_scalars(
            query.execution_options(yield_per=2000, all_tenants=True)
        )
    ]
    result = check_leaves(tree, lines, cps, head_root)
    result.problems[:0] = problems
    result.ok = not result.problems
    return result


def b64(hashes: Iterable[bytes]) -> list[str]:
    """Hashes as standard base64 strings (the checkpoint's encoding)."""
    return [base64.b64encode(h).decode() for h in hashes]


def unb64(values: Iterable[str]) -> list[bytes]:
    """Base64 strings back to hashes."""
    return [base64.b64decode(v) for v in values]


__all__ = [
    "PLATFORM_LOG",
    "AuditCheckpoint",
    "LogCheck",
    "check_leaves",
    "checkpoint",
    "consistency_proof",
    "export",
    "inclusion_proof",
    "verify_consistency",
    "verify_log",
]
