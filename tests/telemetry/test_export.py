"""Export to CSV and Parquet, paged, with the interpolated flag."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gongyun.telemetry import export as ex
from gongyun.telemetry.store import Point, TimeSeriesStore
from gongyun.telemetry.store.base import US, StoreError

T0 = 1_767_225_600 * US


async def test_csv_and_parquet_round_trip(
    duck: TimeSeriesStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ex, "PAGE", 7)  # force several pages
    await duck.write("t1", [Point("d/a", T0 + i * US, i * 0.5) for i in range(20)])
    await duck.write("t1", [Point("d/b", T0 + i * US, -i, quality=1) for i in range(5)])
    await duck.write("t1", [Point("d/a", T0, 9.0, flags=1)], series="clean")
    buf = io.BytesIO()
    n = await ex.export(duck, "t1", ["d/a", "d/b"], T0, T0 + 10 * US, buf, "csv")
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode())))
    assert n == 15 and rows[0] == list(ex.COLUMNS) and len(rows) == 16
    assert rows[1] == ["d/a", "2026-01-01T00:00:00Z", "0.0", "good", "false"]
    assert rows[-1] == ["d/b", "2026-01-01T00:00:04Z", "-4.0", "uncertain", "false"]
    path = tmp_path / "out.parquet"
    assert await ex.export(duck, "t1", ["d/a"], T0, T0 + 100 * US, path, "parquet") == 20
    table = pq.read_table(path)
    assert table.num_rows == 20 and table.column("value").to_pylist()[-1] == 9.5
    csv_path = tmp_path / "clean.csv"
    assert await ex.export(duck, "t1", ["d/a"], T0, T0 + 100 * US, csv_path, "csv", series="clean") == 1
    assert csv_path.read_text().splitlines()[1].endswith(",true")
    assert await ex.export(duck, "t2", ["d/a"], T0, T0 + 100 * US, io.BytesIO(), "csv") == 0


async def test_bad_requests(duck: TimeSeriesStore) -> None:
    with pytest.raises(StoreError):
        await ex.export(duck, "t1", [], T0, T0 + 1, io.BytesIO())
    with pytest.raises(StoreError):
        await ex.export(duck, "t1", ["d/a"], T0, T0 + 1, io.BytesIO(), "xlsx")  # type: ignore[arg-type]
