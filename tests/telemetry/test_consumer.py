"""The ingest consumer: plain async iterator and the real in-process bus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from gongyun.telemetry.catalog import StaticCatalog, TagSpec
from gongyun.telemetry.consumer import IngestConsumer, PayloadInvalid, decode_json
from gongyun.telemetry.ingest import Ingestor
from gongyun.telemetry.store import TimeSeriesStore
from gongyun.telemetry.store.base import DAY_US, to_us

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Msg:
    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data = subject, data
        self.acked = self.naked = False

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay_s: float | None = None) -> None:
        self.naked = True


def body(n: int, start: int = 0, tenant: str | None = None) -> bytes:
    samples = [
        {"tag": "m1/speed", "value": float(i), "ts": (NOW - timedelta(seconds=i)).isoformat()}
        for i in range(start, start + n)
    ]
    doc: dict[str, object] = {"samples": samples}
    if tenant:
        doc["tenant"] = tenant
    return orjson.dumps(doc)


def test_decode_json_envelope() -> None:
    tenant, samples = decode_json("telemetry.acme.m1", body(2))
    assert tenant == "acme" and str(samples[0].tag) == "m1/speed" and samples[1].value == 1.0
    assert decode_json("x", body(1, tenant="t9"))[0] == "t9"
    ms = orjson.dumps({"samples": [{"tag": "a/b", "value": 1, "ts": 1_700_000_000_000}]})
    assert decode_json("telemetry.t.x", ms)[1][0].ts == datetime.fromtimestamp(1_700_000_000, UTC)
    for bad in (
        b"nope",
        b"[]",
        orjson.dumps({"samples": [{"tag": "nodevice", "ts": 1}]}),
        orjson.dumps({"samples": [{"tag": "a/b", "ts": "yesterday"}]}),
    ):
        with pytest.raises(PayloadInvalid):
            decode_json("telemetry.t.x", bad)


async def test_consume_async_iterator_acks_after_store(duck: TimeSeriesStore) -> None:
    ing = Ingestor(duck, StaticCatalog({"acme": [TagSpec("m1/speed")]}), clock=NOW.timestamp)
    await ing.start()
    msgs = [Msg("telemetry.acme.m1", body(10, 10 * i)) for i in range(5)] + [Msg("telemetry.acme.m1", b"{")]

    async def it() -> AsyncIterator[Msg]:
        for m in msgs:
            yield m

    consumer = IngestConsumer(ing)
    await consumer.consume(it())
    await ing.stop()
    assert all(m.acked for m in msgs) and consumer.poison == 1
    t = to_us(NOW)
    assert len(await duck.raw("acme", "m1/speed", t - DAY_US, t + DAY_US)) == 50


async def test_store_failure_naks(tmp_path: object, duck: TimeSeriesStore) -> None:
    ing = Ingestor(duck, StaticCatalog({"acme": [TagSpec("m1/speed")]}), clock=NOW.timestamp)
    await ing.start()
    await duck.close()
    m = Msg("telemetry.acme.m1", body(3))
    consumer = IngestConsumer(ing)
    await consumer.handle(m)
    await consumer.drain()
    await ing.stop()
    assert m.naked and not m.acked


async def test_from_the_memory_bus(duck: TimeSeriesStore) -> None:
    from gongyun.bus import open_bus

    ing = Ingestor(duck, StaticCatalog({"acme": [TagSpec("m1/speed")]}), clock=NOW.timestamp)
    await ing.start()
    bus = open_bus(f"memory://{uuid.uuid4().hex[:8]}")
    async with bus:
        await bus.ensure_stream("TELEMETRY", ["telemetry.>"])
        for i in range(4):
            await bus.publish("telemetry.acme.m1", body(25, 25 * i))
        sub = await IngestConsumer(ing).subscribe(bus)
        t = to_us(NOW)
        for _ in range(100):
            if len(await duck.raw("acme", "m1/speed", t - DAY_US, t + DAY_US)) == 100:
                break
            await asyncio.sleep(0.05)
        await sub.close()
    await ing.stop()
    assert len(await duck.raw("acme", "m1/speed", t - DAY_US, t + DAY_US)) == 100
