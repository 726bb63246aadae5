"""Export a time range of one or more tags to CSV or Parquet, page by page (bounded memory)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from gongyun.telemetry.store.base import (
    FLAG_INTERPOLATED,
    QUALITY_NAMES,
    Point,
    SeriesKind,
    StoreError,
    TimeSeriesStore,
    check_series,
    from_us,
)

Format = Literal["csv", "parquet"]
PAGE = 50_000
MAX_TAGS = 100
COLUMNS = ("tag", "ts", "value", "quality", "interpolated")
SCHEMA = pa.schema(
    [
        ("tag", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("quality", pa.string()),
        ("interpolated", pa.bool_()),
    ]
)


async def pages(
    store: TimeSeriesStore, tenant: str, tags: Sequence[str], start: int, end: int, series: SeriesKind = "raw"
) -> AsyncIterator[list[Point]]:
    """Points of every tag in [start, end), ``PAGE`` at a time, tag by tag, oldest first."""
    if not tags or len(tags) > MAX_TAGS:
        raise StoreError(f"export 1..{MAX_TAGS} tags")
    kind = check_series(series)
    for tag in tags:
        lo = start
        while lo < end:
            page = await store.raw(tenant, tag, lo, end, series=kind, limit=PAGE)
            if not page:
                break
            yield page
            if len(page) < PAGE:
                break
            lo = page[-1].ts + 1


def _table(page: list[Point]) -> pa.Table:
    return pa.table(
        {
            "tag": pa.array([p.tag for p in page], pa.string()),
            "ts": pa.array([p.ts for p in page], pa.timestamp("us", tz="UTC")),
            "value": pa.array([p.value for p in page], pa.float64()),
            "quality": pa.array([QUALITY_NAMES.get(p.quality, "bad") for p in page], pa.string()),
            "interpolated": pa.array([bool(p.flags & FLAG_INTERPOLATED) for p in page], pa.bool_()),
        },
        schema=SCHEMA,
    )


async def export(
    store: TimeSeriesStore,
    tenant: str,
    tags: Sequence[str],
    start: int,
    end: int,
    out: Path | io.BytesIO,
    fmt: Format = "csv",
    series: SeriesKind = "raw",
) -> int:
    """Write the range to ``out`` (a path or a buffer); return the number of rows written."""
    if fmt not in ("csv", "parquet"):
        raise StoreError(f"unknown export format {fmt!r}: use csv or parquet")
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(out, SCHEMA, compression="zstd") as writer:
            async for page in pages(store, tenant, tags, start, end, series):
                writer.write_table(_table(page))
                rows += len(page)
        return rows
    sink = open(out, "wb") if isinstance(out, Path) else out  # noqa: ASYNC230, SIM115
    try:
        sink.write((",".join(COLUMNS) + "\r\n").encode())
        async for page in pages(store, tenant, tags, start, end, series):
            buf = io.StringIO()
            csv.writer(buf).writerows(
                (
                    p.tag,
                    from_us(p.ts).isoformat().replace("+00:00", "Z"),
                    repr(p.value),
                    QUALITY_NAMES.get(p.quality, "bad"),
                    "true" if p.flags & FLAG_INTERPOLATED else "false",
                )
                for p in page
            )
            sink.write(buf.getvalue().encode())
            rows += len(page)
    finally:
        if sink is not out:
            sink.close()
    return rows
