"""``gongyun.telemetry.ingest`` keeps its import surface after the split into private modules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import gongyun.telemetry.ingest as ingest
from gongyun.core.types import Quality, Sample, TagRef
from gongyun.errors import ServiceUnavailable
from gongyun.telemetry import _ingest_model, _ingest_rules, _ingest_writer
from gongyun.telemetry.catalog import DataType, StaticCatalog, TagSpec
from gongyun.telemetry.store import TimeSeriesStore

PUBLIC = {
    "Columns": _ingest_model,
    "IngestConfig": _ingest_model,
    "IngestResult": _ingest_model,
    "Reason": _ingest_model,
    "Rejection": _ingest_model,
    "SampleBatch": _ingest_model,
    "Submitted": _ingest_model,
    "IngestStats": _ingest_rules,
    "check_value": _ingest_rules,
    "StoredHook": _ingest_writer,
}


def test_every_name_callers_import_is_the_moved_object() -> None:
    for name, home in PUBLIC.items():
        assert getattr(ingest, name) is getattr(home, name), name
        assert name in ingest.__all__, name
    assert ingest.Ingestor.__module__ == "gongyun.telemetry.ingest"
    # the consumer maps sample quality to stored codes with this table
    assert ingest._QUALITY is _ingest_model.QUALITY
    assert ingest._QUALITY[Quality.good] == 0 and set(ingest._QUALITY) == set(Quality)


def test_check_value_still_judges_one_value() -> None:
    spec = TagSpec("p/t", DataType.int, low=0, high=10)
    assert ingest.check_value(spec, 3) == (3.0, None, "")
    assert ingest.check_value(spec, 2.5)[1:] == (ingest.Reason.wrong_type, "expected an integer")
    assert ingest.check_value(spec, 11)[1] is ingest.Reason.out_of_range


async def test_writer_lifecycle_and_flush_on_stop(duck: TimeSeriesStore) -> None:
    now = datetime.now(UTC)
    cat = StaticCatalog({"t1": [TagSpec("pump/temp")]})
    ing = ingest.Ingestor(duck, cat, ingest.IngestConfig(queue_chunks=3, linger_s=10.0))
    assert ing._writer.queue.maxsize == 3 and ing.queued == 0
    with pytest.raises(ServiceUnavailable):
        await ing.submit("t1", [Sample(TagRef.parse("pump/temp"), 1.0, now)])
    await ing.start()
    task = ing._writer.task
    assert task is not None and task.get_name() == "telemetry-ingest-writer"
    subs = [await ing.submit("t1", [Sample(TagRef.parse("pump/temp"), float(i), now)]) for i in range(3)]
    await ing.stop()  # the writer was lingering for more: stop writes what it holds
    assert task.done() and task.exception() is None and ing._writer.task is None
    assert all(sub.stored.done() and sub.stored.exception() is None for sub in subs)
    assert ing.stats.stored_points == 3
    latest = await duck.latest("t1", ["pump/temp"])
    assert latest["pump/temp"].value in {0.0, 1.0, 2.0}
    with pytest.raises(ServiceUnavailable):
        await ing.submit("t1", [Sample(TagRef.parse("pump/temp"), 1.0, now)])
