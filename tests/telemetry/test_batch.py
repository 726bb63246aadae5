"""Columnar ingest: JSON straight into columns, judged per batch, stored as columns (the Sparkplug B
decoder's columns are tested in tests/sparkplug/test_decode.py)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.telemetry.catalog import DataType, StaticCatalog, TagSpec
from gongyun.telemetry.consumer import (
    PayloadInvalid,
    decode_json,
    decode_json_batch,
    json_batch,
)
from gongyun.telemetry.ingest import IngestConfig, Ingestor, Reason, SampleBatch
from gongyun.telemetry.store import TimeSeriesStore
from gongyun.telemetry.store.base import DAY_US, to_us
from gongyun.telemetry.store.common import dedupe_keys

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def columns_of(samples: list[Sample]) -> tuple[list[str], list[int], list[Any], list[int]]:
    b = SampleBatch.from_samples(samples)
    q = b.quality.tolist() if b.quality is not None else [0] * len(b)
    return b.tags, b.ts.tolist(), list(b.values), q


def test_json_batch_reads_what_decode_json_reads() -> None:
    items = [
        {"tag": "a/b", "value": 1.5, "ts": NOW_MS},
        {"tag": "a/b/c", "value": 2, "ts": NOW.isoformat(), "quality": "uncertain"},
        {"tag": "a/d", "ts": "2026-03-01T12:00:00Z", "quality": "bad"},
        {"tag": "a/e", "value": True, "ts": NOW_MS + 0.5},
    ]
    body = orjson.dumps({"samples": items})
    tenant, batch = decode_json_batch("telemetry.acme.x", body)
    _, samples = decode_json("telemetry.acme.x", body)
    q = batch.quality.tolist() if batch.quality is not None else [0] * len(batch)
    assert tenant == "acme"
    assert (batch.tags, batch.ts.tolist(), list(batch.values), q) == columns_of(samples)
    plain = json_batch([{"tag": "a/b", "value": 1.0, "ts": NOW_MS}])
    assert plain.quality is None and plain.ts.tolist() == [NOW_MS * 1000]


@pytest.mark.parametrize(
    "items",
    [
        [{"tag": "nodevice", "ts": 1}],
        [{"tag": "/x", "ts": 1}],
        [{"tag": "a/b", "ts": "yesterday"}],
        [{"tag": "a/b"}],
        [{"ts": 1}],
        [["a/b", 1]],
        [{"tag": "a/b", "ts": 1, "quality": "great"}],
        [{"tag": "a/b", "ts": 10**18}],
        [{"tag": "a/b", "ts": False}],
    ],
)
def test_json_batch_refuses_what_decode_json_refuses(items: list[Any]) -> None:
    body = orjson.dumps({"samples": items})
    with pytest.raises(PayloadInvalid):
        decode_json("telemetry.t.x", body)
    with pytest.raises(PayloadInvalid):
        decode_json_batch("telemetry.t.x", body)


def test_naive_iso_timestamps_are_kept_for_rejection() -> None:
    b = json_batch([{"tag": "a/b", "value": 1.0, "ts": "2026-03-01T12:00:00"}])
    assert b.naive == {0: datetime(2026, 3, 1, 12, 0)}


def test_dedupe_keys_keeps_the_last_of_equal_keys() -> None:
    sid = np.array([1, 2, 1, 1, 2], np.int32)
    ts = np.array([5, 5, 5, 6, 5], np.int64)
    keep = dedupe_keys(sid, ts)
    assert keep is not None and keep.tolist() == [2, 3, 4]
    assert dedupe_keys(np.array([1, 2], np.int32), np.array([5, 5], np.int64)) is None


async def test_write_columns_on_both_backends(store: TimeSeriesStore) -> None:
    t0 = to_us(NOW)
    write_columns = store.write_columns  # type: ignore[attr-defined]
    n = await write_columns(
        "t1",
        ["d/a", "d/a", "d/b", "d/a"],
        np.array([t0, t0 + 1, t0, t0], np.int64),
        np.array([1.0, 2.0, 3.0, 4.0]),
        np.array([0, 1, 0, 2], np.int16),
    )
    assert n == 3
    await write_columns(
        "t1", ["d/a"], np.array([t0 + 1], np.int64), np.array([-0.25]), np.array([0], np.int16)
    )
    rows = await store.raw("t1", "d/a", t0, t0 + DAY_US)
    assert [(p.ts, p.value, p.quality) for p in rows] == [(t0, 4.0, 2), (t0 + 1, -0.25, 0)]
    assert [p.value for p in await store.raw("t1", "d/b", t0, t0 + DAY_US)] == [3.0]


def catalog() -> StaticCatalog:
    return StaticCatalog(
        {
            "t1": [
                TagSpec("dev/a", DataType.float, low=0, high=100),
                TagSpec("dev/n", DataType.int),
                TagSpec("dev/free"),
            ]
        }
    )


async def test_float_column_judged_per_sample(duck: TimeSeriesStore) -> None:
    ing = Ingestor(duck, catalog(), IngestConfig(max_batch=7), clock=NOW.timestamp)
    await ing.start()
    t = to_us(NOW)
    tags = ["dev/a", "dev/a", "dev/a", "dev/x", "dev/n", "dev/n", "dev/free", "dev/a"]
    values = np.array([1.0, math.nan, 101.0, 1.0, 3.0, 3.5, -math.inf, 2.0])
    ts = np.array([t, t + 1, t + 2, t, t, t + 1, t, t + 3], np.int64)
    ts[1] = t + 3600 * 10**6  # an hour ahead: in the future
    res = await ing.ingest("t1", SampleBatch(tags, ts, values))
    await ing.stop()
    assert [(r.tag, r.reason) for r in res.rejected] == [
        ("dev/a", Reason.oversize_batch),
        ("dev/a", Reason.future),
        ("dev/a", Reason.out_of_range),
        ("dev/x", Reason.unknown_tag),
        ("dev/n", Reason.wrong_type),
        ("dev/free", Reason.infinite),
    ]
    assert res.accepted == 2
    stats = ing.stats.for_tenant("t1")
    assert stats["dev/a"] == {
        "accepted": 1,
        "rejected": {"oversize_batch": 1, "timestamp_in_future": 1, "out_of_range": 1},
    }
    assert stats["dev/n"]["accepted"] == 1
    assert [p.value for p in await duck.raw("t1", "dev/n", t - DAY_US, t + DAY_US)] == [3.0]


async def test_spec_changes_are_seen_after_invalidate_and_expiry(duck: TimeSeriesStore) -> None:
    cat = catalog()
    ing = Ingestor(duck, cat, clock=NOW.timestamp)
    await ing.start()
    sample = [Sample(TagRef("dev", "a"), 150.0, NOW, Quality.good)]
    assert (await ing.ingest("t1", sample)).rejected[0].reason is Reason.out_of_range
    cat.add("t1", TagSpec("dev/a", DataType.float, low=0, high=200))
    ing.invalidate("t1")
    assert (await ing.ingest("t1", sample)).accepted == 1
    await ing.stop()
    quick = Ingestor(duck, cat, IngestConfig(spec_ttl_s=0.0), clock=NOW.timestamp)
    await quick.start()
    cat.add("t1", TagSpec("dev/a", DataType.float, low=0, high=10))
    later = [Sample(TagRef("dev", "a"), 150.0, NOW + timedelta(seconds=1), Quality.good)]
    assert (await quick.ingest("t1", later)).rejected[0].reason is Reason.out_of_range
    cat.add("t1", TagSpec("dev/a", DataType.float, low=0, high=1000))
    assert (await quick.ingest("t1", later)).accepted == 1
    await quick.stop()


async def test_validate_still_returns_points(duck: TimeSeriesStore) -> None:
    ing = Ingestor(duck, catalog(), clock=NOW.timestamp)
    points, res = await ing.validate(
        "t1", [Sample(TagRef("dev", "a"), 5.0, NOW, Quality.uncertain), Sample(TagRef("dev", "n"), 2, NOW)]
    )
    assert res.accepted == 2
    assert [(p.tag, p.ts, p.value, p.quality) for p in points] == [
        ("dev/a", to_us(NOW), 5.0, 1),
        ("dev/n", to_us(NOW), 2.0, 0),
    ]


class SlowCatalog(StaticCatalog):
    """A catalog that yields to the event loop on every lookup (as a database-backed one does)."""

    async def get(self, tenant: str, tag: str) -> TagSpec | None:
        await asyncio.sleep(0)
        return await super().get(tenant, tag)


async def test_concurrent_batches_share_one_tag_table(duck: TimeSeriesStore) -> None:
    cat = SlowCatalog({"t1": [TagSpec(f"dev/m{k}") for k in range(20)]})
    ing = Ingestor(duck, cat, clock=NOW.timestamp)
    await ing.start()
    t = to_us(NOW)

    def batch(offset: int) -> SampleBatch:
        tags = [f"dev/m{(k + offset) % 20}" for k in range(20)]
        return SampleBatch(tags, np.full(20, t + offset, np.int64), np.arange(20, dtype=np.float64))

    results = await asyncio.gather(*(ing.ingest("t1", batch(i)) for i in range(5)))
    await ing.stop()
    assert [r.accepted for r in results] == [20] * 5
    assert ing.stats.for_tenant("t1")["dev/m3"] == {"accepted": 5, "rejected": {}}
    assert len(ing.stats.accepted["t1"]) == 20
