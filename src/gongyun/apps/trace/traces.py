"""Backward and forward traces as one statement that answers JSON built by the database.

The walk (``store.walk_sql``), the reached items with their least depth, their status (frozen
when a recall holds them), and the links between them (for up to ``EDGE_NODES`` nodes) are one
statement; the database writes the nodes and the links as two JSON arrays (``json_object`` and
``json_group_array`` on SQLite, ``json_build_object`` and ``json_agg`` on PostgreSQL), so an
answer of 14 000 items costs no Python object per item: the API sends the bytes as they come.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.trace.errors import TraceItemNotFound
from gongyun.apps.trace.store import FROZEN_SQL, Direction, TraceResult, walk_sql

EDGE_NODES = 5_000
"""Traces of up to this many items carry the links between them (the console draws those)."""

FROZEN_INLINE = 64
"""Up to this many disjoint frozen ranges are written into the statement as ``BETWEEN`` tests;
beyond, each item probes the campaigns' ranges (``store.FROZEN_SQL``)."""
_STATUS = "{status}"
_FIELDS = ("id", "kind", "key", "gtin", "lot", "serial", "sscc", "handle")
_TAIL = ("receiver", "machine")
_SQLITE_NODE = (
    "json_object("
    + ", ".join(f"'{f}', i.{f}" for f in _FIELDS)
    + ", 'status', i.st, "
    + ", ".join(f"'{f}', i.{f}" for f in _TAIL)
    + ", 'attrs', CASE WHEN i.attrs IS NULL OR i.attrs = 'null' THEN json('{}') ELSE json(i.attrs) END"
    + ", 'created_at', strftime('%Y-%m-%dT%H:%M:%f+00:00', i.created_at), 'depth', i.depth)"
)
_PG_COLS = (  # json_agg of rows: faster than json_build_object per row
    ", ".join(f"i.{f}" for f in _FIELDS)
    + ", i.st AS status, "
    + ", ".join(f"i.{f}" for f in _TAIL)
    + ", CASE WHEN i.attrs IS NULL OR json_typeof(i.attrs) = 'null' THEN '{}'::json ELSE i.attrs END AS attrs"
    + ", to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+00:00\"') AS created_at"
    + ", i.depth"
)


@dataclass(frozen=True, slots=True)
class TraceJson:
    """A trace as the database wrote it: the nodes and links as JSON arrays."""

    root: int
    direction: Direction
    count: int
    truncated: bool
    nodes: bytes
    edges: bytes

    def answer(self) -> bytes:
        """The API's answer: root, direction, count, truncated, nodes, edges."""
        head = orjson.dumps(
            {"root": self.root, "direction": self.direction, "count": self.count, "truncated": self.truncated}
        )
        return head[:-1] + b',"nodes":' + self.nodes + b',"edges":' + self.edges + b"}"


async def _status_sql(s: AsyncSession, tenant_id: str) -> str:
    """The status of ``trace_items i`` in a trace: the tenant's frozen ranges merged and inlined."""
    rows = await s.execute(
        text(
            "SELECT f.lo, f.hi FROM trace_recall_ranges f JOIN trace_recalls c ON c.id = f.recall_id "
            "WHERE c.tenant_id = :tenant ORDER BY f.lo LIMIT :most"
        ),
        {"tenant": tenant_id, "most": 16 * FROZEN_INLINE + 1},
    )
    merged: list[list[int]] = []
    got = 0
    for lo, hi in rows:
        got += 1
        if merged and int(lo) <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], int(hi))
        else:
            merged.append([int(lo), int(hi)])
    if not merged:
        return "i.status"
    if got > 16 * FROZEN_INLINE or len(merged) > FROZEN_INLINE:
        return f"CASE WHEN {FROZEN_SQL} THEN 'frozen' ELSE i.status END"
    tests = " OR ".join(f"i.id BETWEEN {lo:d} AND {hi:d}" for lo, hi in merged)
    return f"CASE WHEN {tests} THEN 'frozen' ELSE i.status END"


def _sql(dialect: str, direction: Direction, limited: bool) -> str:
    """The one statement of a trace: count, nodes JSON, edges JSON."""
    pg = dialect == "postgresql"
    reached = (
        "SELECT id, MIN(depth) AS depth FROM walk GROUP BY id"
        if limited
        else "SELECT id, 0 AS depth FROM walk"
    )
    edge = "json_build_object" if pg else "json_object"
    edge += "('parent', l.parent_id, 'child', l.child_id, 'kind', l.kind)"
    ordered = (  # the reached items in order, with their depth and status
        f"SELECT r.depth AS depth, {_STATUS} AS st, i.* FROM lim r JOIN trace_items i ON i.id = r.id "  # noqa: S608
        "WHERE r.n <= :limit ORDER BY r.n"
    )
    # both aggregate in the order of their subquery; SQLite's items keep their JSON subtype
    nodes_agg = (
        f"SELECT COALESCE(json_agg(x), '[]'::json)::text FROM (SELECT {_PG_COLS} FROM ({ordered}) i) x"  # noqa: S608
        if pg
        else f"SELECT json_group_array({_SQLITE_NODE}) FROM ({ordered}) i"  # noqa: S608
    )
    edges_agg = (
        f"SELECT COALESCE(json_agg({edge} ORDER BY l.parent_id, l.child_id), '[]'::json)::text"
        if pg
        else f"SELECT json_group_array({edge})"
    )
    mat = "MATERIALIZED "
    return (
        f"{walk_sql(direction, limited)}, "  # noqa: S608 (column names and constants only)
        f"lim AS {mat}(SELECT r.id, r.depth, ROW_NUMBER() OVER (ORDER BY r.depth, r.id) AS n "
        f"FROM ({reached}) r JOIN trace_items i ON i.id = r.id AND i.tenant_id = :tenant "
        "ORDER BY r.depth, r.id LIMIT :limit1) "
        "SELECT (SELECT COUNT(*) FROM lim) AS total, "
        f"({nodes_agg}) AS nodes, "
        f"CASE WHEN (SELECT COUNT(*) FROM lim) <= {EDGE_NODES} THEN ({edges_agg} FROM trace_links l "
        "WHERE l.parent_id IN (SELECT id FROM lim WHERE n <= :limit) "
        "AND l.child_id IN (SELECT id FROM lim WHERE n <= :limit)) END AS edges"
    )


def _bytes(v: Any) -> bytes:
    """A JSON column as bytes (psycopg parses ``json``: dump it again)."""
    if v is None:
        return b"[]"
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytes):
        return v
    return orjson.dumps(v)


def _least_depths(
    root: int, direction: Direction, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]
) -> None:
    """Set each node's least depth from the links (the id-only walk of an unlimited trace has none)."""
    near, far = ("parent", "child") if direction == "forward" else ("child", "parent")
    nxt: dict[int, list[int]] = {}
    for e in edges:
        nxt.setdefault(e[near], []).append(e[far])
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


async def trace_json(
    s: AsyncSession,
    tenant_id: str,
    root: int,
    direction: Direction,
    depth: int | None = None,
    limit: int = 100_000,
) -> TraceJson:
    """Everything reachable from ``root`` forward or backward (to ``depth`` links, or all), as JSON."""
    limited = depth is not None
    dialect = s.get_bind().dialect.name
    params: dict[str, Any] = {"root": root, "tenant": tenant_id, "limit": limit, "limit1": limit + 1}
    if limited:
        params["depth"] = depth
    sql = _sql(dialect, direction, limited).replace(_STATUS, await _status_sql(s, tenant_id))
    row = (await s.execute(text(sql), params)).one()
    total = int(row.total)
    if total == 0:  # the walk always holds its root: no such item in this tenant
        raise TraceItemNotFound(f"no item {root} in this tenant", item=str(root))
    count = min(total, limit)
    nodes, edges = _bytes(row.nodes), _bytes(row.edges)
    if not limited and count <= EDGE_NODES:
        node_list, edge_list = orjson.loads(nodes), orjson.loads(edges)
        _least_depths(root, direction, node_list, edge_list)
        nodes = orjson.dumps(node_list)
    return TraceJson(root, direction, count, total > limit, nodes, edges)


async def trace(
    s: AsyncSession,
    tenant_id: str,
    root: int,
    direction: Direction,
    depth: int | None = None,
    limit: int = 100_000,
) -> TraceResult:
    """The same trace as Python lists (for the app's own use: lifecycle, grants, EPCIS history)."""
    got = await trace_json(s, tenant_id, root, direction, depth, limit)
    return TraceResult(root, direction, orjson.loads(got.nodes), orjson.loads(got.edges), got.truncated)
