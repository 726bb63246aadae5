"""SQL shared by the DuckDB and PostgreSQL stores; each backend supplies a ``Dialect``."""

# ruff: noqa: S608  (SQL is assembled from fixed table names and integer ids; values are bound)

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gongyun.telemetry.store.base import HOUR_US, MINUTE_US, SeriesKind

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Dialect:
    """The few spellings that differ between DuckDB and PostgreSQL."""

    name: str
    intdiv: str  # '//' (DuckDB) or '/' (PostgreSQL, bigint)
    param_style: str  # '$' (DuckDB named) or '%' (psycopg pyformat)

    def p(self, name: str) -> str:
        """A named query parameter."""
        return f"${name}" if self.param_style == "$" else f"%({name})s"

    def div(self, a: str, b: str) -> str:
        """Integer division (floor for the non-negative operands we use)."""
        return f"(({a}) {self.intdiv} ({b}))"

    def first(self, v: str, ts: str) -> str:
        """The value at the smallest ``ts`` in a group."""
        if self.name == "duckdb":
            return f"arg_min({v}, {ts})"
        return f"(array_agg({v} ORDER BY {ts}))[1]"

    def last(self, v: str, ts: str) -> str:
        """The value at the largest ``ts`` in a group."""
        if self.name == "duckdb":
            return f"arg_max({v}, {ts})"
        return f"(array_agg({v} ORDER BY {ts} DESC))[1]"


DUCKDB = Dialect("duckdb", "//", "$")
POSTGRES = Dialect("postgres", "/", "%")

ROLLUP_COLS = "sid, bucket, cnt, total, mn, mx, first_ts, first_v, last_ts, last_v"
_SET_ROLLUP = ", ".join(f"{c} = excluded.{c}" for c in ROLLUP_COLS.split(", ")[2:])


def schema(d: Dialect, k: SeriesKind, points_suffix: str = "") -> list[str]:
    """DDL for one series kind (points table suffix lets PostgreSQL add PARTITION BY)."""
    ints = "SMALLINT"
    return [
        f"""CREATE TABLE IF NOT EXISTS ts_{k}_points (
            sid INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL,
            quality {ints} NOT NULL DEFAULT 0, flags {ints} NOT NULL DEFAULT 0,
            PRIMARY KEY (sid, ts)){points_suffix}""",
        *[
            f"""CREATE TABLE IF NOT EXISTS ts_{k}_rollup_{r} (
            sid INTEGER NOT NULL, bucket BIGINT NOT NULL, cnt BIGINT NOT NULL,
            total DOUBLE PRECISION NOT NULL, mn DOUBLE PRECISION NOT NULL, mx DOUBLE PRECISION NOT NULL,
            first_ts BIGINT NOT NULL, first_v DOUBLE PRECISION NOT NULL,
            last_ts BIGINT NOT NULL, last_v DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (sid, bucket))"""
            for r in ("1m", "1h")
        ],
        f"""CREATE TABLE IF NOT EXISTS ts_{k}_dirty (
            sid INTEGER NOT NULL, hour BIGINT NOT NULL, gen INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (sid, hour))""",
        f"""CREATE TABLE IF NOT EXISTS ts_{k}_latest (
            sid INTEGER PRIMARY KEY, ts BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL,
            quality {ints} NOT NULL, flags {ints} NOT NULL)""",
    ]


def common_schema() -> list[str]:
    """DDL for the retention table (the series table differs: id generation)."""
    return [
        """CREATE TABLE IF NOT EXISTS ts_retention (
            tenant VARCHAR(32) NOT NULL, tag VARCHAR(300) NOT NULL,
            raw_keep_us BIGINT NOT NULL, rollup_keep_us BIGINT NOT NULL,
            PRIMARY KEY (tenant, tag))"""
    ]


def merge_batch(d: Dialect, k: SeriesKind, batch: str) -> list[str]:
    """Statements that move a staged batch (sid, ts, value, quality, flags) into ``k``.

    Rows go in key order so concurrent writers (several ingest processes) lock in one order.
    """
    hour = d.div("ts", str(HOUR_US)) + f" * {HOUR_US}"
    upsert_latest = f"""ON CONFLICT (sid) DO UPDATE SET ts = excluded.ts, value = excluded.value,
            quality = excluded.quality, flags = excluded.flags WHERE excluded.ts >= ts_{k}_latest.ts"""
    if d.name == "duckdb":
        latest = f"""INSERT INTO ts_{k}_latest (sid, ts, value, quality, flags)
            SELECT sid, max(ts), {d.last("value", "ts")}, {d.last("quality", "ts")}, {d.last("flags", "ts")}
            FROM {batch} GROUP BY sid {upsert_latest}"""
    else:
        latest = f"""INSERT INTO ts_{k}_latest (sid, ts, value, quality, flags)
            SELECT DISTINCT ON (sid) sid, ts, value, quality, flags FROM {batch}
            ORDER BY sid, ts DESC {upsert_latest}"""
    return [
        f"""INSERT INTO ts_{k}_points (sid, ts, value, quality, flags)
            SELECT sid, ts, value, quality, flags FROM {batch} ORDER BY sid, ts
            ON CONFLICT (sid, ts) DO UPDATE SET value = excluded.value,
            quality = excluded.quality, flags = excluded.flags""",
        f"""INSERT INTO ts_{k}_dirty (sid, hour, gen) SELECT DISTINCT sid, {hour} AS hour, 0 FROM {batch}
            ORDER BY sid, hour ON CONFLICT (sid, hour) DO UPDATE SET gen = ts_{k}_dirty.gen + 1""",
        latest,
    ]


def refresh(d: Dialect, k: SeriesKind, lo: int, hi: int) -> list[str]:
    """Recompute 1-minute then 1-hour rollups of the hours in temp table ``snap``, all in [lo, hi).

    The constant bounds let PostgreSQL prune the points table to the partitions of [lo, hi)
    when it plans the statement, instead of joining ``snap`` against every partition.
    """
    lo, hi = int(lo), int(hi)
    in_hour = "{t}.sid = s.sid AND {t}.{c} >= s.hour AND {t}.{c} < s.hour + " + str(HOUR_US)
    span = " AND {t}.{c} >= " + str(lo) + " AND {t}.{c} < " + str(hi)
    minute = d.div("p.ts", str(MINUTE_US)) + f" * {MINUTE_US}"
    hour = d.div("r.bucket", str(HOUR_US)) + f" * {HOUR_US}"
    join_p = in_hour.format(t="p", c="ts") + span.format(t="p", c="ts")
    join_r = in_hour.format(t="r", c="bucket") + span.format(t="r", c="bucket")
    stmts: list[str] = []
    for r in ("1m", "1h"):
        t = f"ts_{k}_rollup_{r}"
        cond = in_hour.format(t=t, c="bucket")
        stmts.append(
            f"DELETE FROM {t} WHERE EXISTS (SELECT 1 FROM snap s WHERE {cond}){span.format(t=t, c='bucket')}"
        )
    stmts.append(
        f"""INSERT INTO ts_{k}_rollup_1m ({ROLLUP_COLS})
            SELECT p.sid, {minute}, count(*), sum(p.value), min(p.value), max(p.value),
                   min(p.ts), {d.first("p.value", "p.ts")}, max(p.ts), {d.last("p.value", "p.ts")}
            FROM ts_{k}_points p JOIN snap s ON {join_p}
            GROUP BY p.sid, {minute}
            ON CONFLICT (sid, bucket) DO UPDATE SET {_SET_ROLLUP}"""
    )
    stmts.append(
        f"""INSERT INTO ts_{k}_rollup_1h ({ROLLUP_COLS})
            SELECT r.sid, {hour}, sum(r.cnt), sum(r.total), min(r.mn), max(r.mx),
                   min(r.first_ts), {d.first("r.first_v", "r.first_ts")},
                   max(r.last_ts), {d.last("r.last_v", "r.last_ts")}
            FROM ts_{k}_rollup_1m r JOIN snap s ON {join_r}
            GROUP BY r.sid, {hour}
            ON CONFLICT (sid, bucket) DO UPDATE SET {_SET_ROLLUP}"""
    )
    stmts.append(
        f"""DELETE FROM ts_{k}_dirty WHERE EXISTS (SELECT 1 FROM snap s WHERE s.sid = ts_{k}_dirty.sid
            AND s.hour = ts_{k}_dirty.hour AND s.gen = ts_{k}_dirty.gen)"""
    )
    return stmts


def _agg_exprs(d: Dialect, source: str) -> dict[str, str]:
    if source == "raw":
        return {
            "count": "count(*)",
            "avg": "avg(value)",
            "min": "min(value)",
            "max": "max(value)",
            "first": d.first("value", "ts"),
            "last": d.last("value", "ts"),
        }
    return {
        "count": "sum(cnt)",
        "avg": "sum(total) / sum(cnt)",
        "min": "min(mn)",
        "max": "max(mx)",
        "first": d.first("first_v", "first_ts"),
        "last": d.last("last_v", "last_ts"),
    }


def bucket_query(d: Dialect, k: SeriesKind, source: str, sids: Sequence[int], agg: str | None = None) -> str:
    """Aggregate rows into buckets: columns sid, idx, then count, avg, min, max, first, last
    (or only ``agg`` when given).

    Parameters: ``origin``, ``width``, ``lo``, ``hi``.
    """
    origin, width, lo, hi = (d.p(n) for n in ("origin", "width", "lo", "hi"))
    sid_list = ", ".join(str(int(s)) for s in sids)
    exprs = _agg_exprs(d, source)
    cols = exprs[agg] if agg else ", ".join(exprs[a] for a in ("count", "avg", "min", "max", "first", "last"))
    if source == "raw":
        idx = d.div(f"ts - {origin}", width)
        return f"""SELECT sid, {idx} AS idx, {cols}
            FROM ts_{k}_points WHERE sid IN ({sid_list}) AND ts >= {lo} AND ts < {hi}
            GROUP BY sid, idx"""
    idx = d.div(f"bucket - {origin}", width)
    return f"""SELECT sid, {idx} AS idx, {cols}
        FROM ts_{k}_rollup_{source} WHERE sid IN ({sid_list}) AND bucket >= {lo} AND bucket < {hi}
        GROUP BY sid, idx"""


def raw_query(d: Dialect, k: SeriesKind, limit: int | None) -> str:
    """Points of one sid in a range (parameters ``sid``, ``lo``, ``hi``)."""
    lim = f" LIMIT {int(limit)}" if limit is not None else ""
    return (
        f"SELECT ts, value, quality, flags FROM ts_{k}_points WHERE sid = {d.p('sid')} "
        f"AND ts >= {d.p('lo')} AND ts < {d.p('hi')} ORDER BY ts{lim}"
    )


def latest_query(d: Dialect, k: SeriesKind) -> str:
    """Newest point of every series of a tenant (parameter ``tenant``)."""
    return (
        f"SELECT s.tag, l.ts, l.value, l.quality, l.flags FROM ts_{k}_latest l "
        f"JOIN ts_series s ON s.sid = l.sid WHERE s.tenant = {d.p('tenant')}"
    )


def delete_range(d: Dialect, k: SeriesKind) -> list[str]:
    """Delete one sid's points in a range, mark the hours dirty, recompute its latest point."""
    sid, lo, hi = d.p("sid"), d.p("lo"), d.p("hi")
    hour = d.div("ts", str(HOUR_US)) + f" * {HOUR_US}"
    return [
        f"""INSERT INTO ts_{k}_dirty (sid, hour, gen)
            SELECT DISTINCT sid, {hour}, 0 FROM ts_{k}_points WHERE sid = {sid} AND ts >= {lo} AND ts < {hi}
            ON CONFLICT (sid, hour) DO UPDATE SET gen = ts_{k}_dirty.gen + 1""",
        f"DELETE FROM ts_{k}_points WHERE sid = {sid} AND ts >= {lo} AND ts < {hi}",
        f"DELETE FROM ts_{k}_latest WHERE sid = {sid}",
        f"""INSERT INTO ts_{k}_latest (sid, ts, value, quality, flags)
            SELECT sid, ts, value, quality, flags FROM ts_{k}_points WHERE sid = {sid}
            ORDER BY ts DESC LIMIT 1""",
    ]


def retention(d: Dialect, k: SeriesKind, now: int) -> list[tuple[str, str]]:
    """(table, DELETE) pairs enforcing retention policies relative to ``now`` (µs)."""
    eff = """(SELECT s.sid, COALESCE(t.raw_keep_us, a.raw_keep_us) AS raw_keep,
                COALESCE(t.rollup_keep_us, a.rollup_keep_us) AS rollup_keep
              FROM ts_series s LEFT JOIN ts_retention t ON t.tenant = s.tenant AND t.tag = s.tag
              LEFT JOIN ts_retention a ON a.tenant = s.tenant AND a.tag = ''
              WHERE t.tenant IS NOT NULL OR a.tenant IS NOT NULL)"""
    out = [
        (
            f"ts_{k}_points",
            f"DELETE FROM ts_{k}_points WHERE EXISTS (SELECT 1 FROM {eff} e "
            f"WHERE e.sid = ts_{k}_points.sid AND ts_{k}_points.ts < {now} - e.raw_keep)",
        )
    ]
    for r in ("1m", "1h"):
        t = f"ts_{k}_rollup_{r}"
        out.append(
            (
                t,
                f"DELETE FROM {t} WHERE EXISTS (SELECT 1 FROM {eff} e "
                f"WHERE e.sid = {t}.sid AND {t}.bucket < {now} - e.rollup_keep)",
            )
        )
    return out
