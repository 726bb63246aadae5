"""Trust: the audit trail becomes an RFC 9162 transparency log.

Adds the tree's right edge to ``audit_heads``, the complete-subtree hashes (``audit_nodes``) and
the signed checkpoints (``audit_checkpoints``), then turns every existing chained event into a
leaf of its tenant's tree, in ``seq`` order.

Revision ID: trust_0001
"""

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "trust_0001"
down_revision = None
branch_labels = ("trust",)
depends_on = "foundation_0004"

# Written out rather than imported: a revision must not change when the models do.
_heads = sa.table(
    "audit_heads",
    sa.column("tenant_id", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("frontier", sa.JSON()),
)
_events = sa.table(
    "audit_events",
    sa.column("tenant_id", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("ts", UTCDateTime()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("target", sa.String()),
    sa.column("outcome", sa.String()),
    sa.column("detail", sa.JSON()),
)
_nodes = sa.table(
    "audit_nodes",
    sa.column("tenant_id", sa.String()),
    sa.column("level", sa.SmallInteger()),
    sa.column("idx", sa.BigInteger()),
    sa.column("hash", sa.LargeBinary()),
)


def _leaf(tenant_id: str, row: Any) -> bytes:
    detail = row.detail if isinstance(row.detail, dict) else json.loads(row.detail or "{}")
    fields = {
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "detail": detail,
    }
    body = json.dumps(
        {"tenant": tenant_id, "seq": row.seq, "ts": row.ts.isoformat(), **fields},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(b"\x00" + body.encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def upgrade() -> None:
    """Create the tree tables and fill them from the existing events."""
    op.add_column("audit_heads", sa.Column("frontier", sa.JSON(), nullable=True))
    op.create_table(
        "audit_nodes",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("level", sa.SmallInteger(), primary_key=True),
        sa.Column("idx", sa.BigInteger(), primary_key=True),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_audit_checkpoints_tenant_size", "audit_checkpoints", ["tenant_id", "size"])
    conn = op.get_bind()
    tenants = [r[0] for r in conn.execute(sa.select(_heads.c.tenant_id))]
    for tenant_id in tenants:
        frontier: list[bytes] = []
        batch: list[dict[str, Any]] = []
        rows = conn.execute(
            sa.select(_events).where(_events.c.tenant_id == tenant_id).order_by(_events.c.seq)
        )
        for size, row in enumerate(rows):
            cur, idx, level = _leaf(tenant_id, row), size, 0
            batch.append({"tenant_id": tenant_id, "level": 0, "idx": size, "hash": cur})
            while idx & 1:
                cur = _node(frontier.pop(), cur)
                idx, level = idx >> 1, level + 1
                batch.append({"tenant_id": tenant_id, "level": level, "idx": idx, "hash": cur})
            frontier.append(cur)
            if len(batch) >= 5000:
                conn.execute(_nodes.insert(), batch)
                batch = []
        if batch:
            conn.execute(_nodes.insert(), batch)
        conn.execute(
            _heads.update()
            .where(_heads.c.tenant_id == tenant_id)
            .values(frontier=[h.hex() for h in frontier])
        )


def downgrade() -> None:
    """Drop the tree tables (the hash chain stays)."""
    op.drop_index("ix_audit_checkpoints_tenant_size", "audit_checkpoints")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_nodes")
    with op.batch_alter_table("audit_heads") as batch:
        batch.drop_column("frontier")
