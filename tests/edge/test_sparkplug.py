"""Sparkplug B host driver and MQTT JSON driver through the Mosquitto at 127.0.0.1:1883."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from gongyun.core.types import Quality, Sample
from gongyun.edge.config import DeviceConfig
from gongyun.edge.drivers.mqtt import MqttJsonDriver, extract, parse_ts
from gongyun.edge.drivers.sparkplug import SparkplugDriver
from gongyun.edge.profiles import load_profile
from gongyun.sim.packaging import PackagingServer
from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.host import SparkplugHost
from tests.edge.conftest import PROFILES, wait_for
from tests.services import require_service

pytestmark = pytest.mark.mqtt


@pytest.fixture
async def line() -> AsyncIterator[tuple[PackagingServer, SparkplugDriver, list[Sample]]]:
    require_service("mqtt")
    group = f"t{uuid.uuid4().hex[:10]}"
    got: list[Sample] = []
    cfg = DeviceConfig(
        name="pack1",
        profile=Path("p"),
        group=group,
        node="PackLine1",
        sparkplug_device="Filler",
        host_id=f"host-{group}",
        reconnect_delay=0.2,
    )
    drv = SparkplugDriver(cfg, load_profile(PROFILES / "packaging.toml"), got.extend)
    drv.host.rebirth_holdoff = 0.0
    task = asyncio.create_task(drv.run())
    await asyncio.wait_for(drv.host.connected.wait(), 10)
    sim = PackagingServer(group=group, interval=0.1, time_scale=20)
    await sim.start()
    try:
        yield sim, drv, got
    finally:
        await sim.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_host_consumes_births_and_aliased_data(
    line: tuple[PackagingServer, SparkplugDriver, list[Sample]],
) -> None:
    sim, drv, got = line
    await wait_for(lambda: sum(1 for s in got if s.tag.tag == "count") >= 3)
    counts = [s.value for s in got if s.tag.tag == "count"]
    assert counts == sorted(counts) and counts[-1] > 0  # type: ignore[type-var]
    assert next(s.value for s in got if s.tag.tag == "state") == "RUNNING"
    state = drv.host.nodes[f"{sim.group}/PackLine1"]
    assert state.online and state.bdseq == 0
    assert ("Filler", 1) in state.births.aliases
    assert drv.status.error_count == 0 and drv.status.connected
    await drv.write(drv.profile.tag("speed"), 240.0)
    await wait_for(lambda: sim.model.rate_per_min == 240.0)


async def test_non_protobuf_payload_is_counted_and_ignored(
    line: tuple[PackagingServer, SparkplugDriver, list[Sample]],
) -> None:
    sim, drv, got = line
    await wait_for(lambda: len(got) > 3)
    await sim.send_garbage()
    await wait_for(lambda: drv.status.errors.get("decode", 0) == 1)
    n = len(got)
    await wait_for(lambda: len(got) > n + 2)  # still consuming


async def test_sequence_gap_triggers_rebirth(
    line: tuple[PackagingServer, SparkplugDriver, list[Sample]],
) -> None:
    sim, drv, got = line
    await wait_for(lambda: len(got) > 3)
    births = sim.edge.births
    sim.skip_sequence()
    await wait_for(lambda: drv.status.errors.get("sequence", 0) >= 1)
    await wait_for(lambda: sim.edge.births > births)
    assert drv.host.rebirths_requested >= 1


async def test_unknown_alias_and_data_before_birth(
    line: tuple[PackagingServer, SparkplugDriver, list[Sample]],
) -> None:
    sim, drv, got = line
    await wait_for(lambda: len(got) > 3)
    births = sim.edge.births
    payload = spb.Payload()
    payload.seq = (sim.edge.seq + 0) % 256
    metric = payload.metrics.add()
    metric.alias = 999
    spb.set_metric_value(metric, 1, spb.SpbType.Int64)
    assert sim.edge.client is not None
    async with sim.edge.lock:
        payload.seq = sim.edge._next_seq()
        await sim.edge.client.publish(sim.edge.topic("DDATA", "Filler"), payload.SerializeToString(), qos=1)
    await wait_for(lambda: drv.status.errors.get("alias", 0) >= 1)
    await wait_for(lambda: sim.edge.births > births)


async def test_data_before_birth_and_stale_death_are_handled() -> None:
    seen: list[str] = []
    host = SparkplugHost(("127.0.0.1", 1), "g", on_data=lambda key, dev, metrics, kind: seen.append(kind))
    data = spb.Payload()
    data.seq = 5
    await host.handle("spBv1.0/g/NDATA/n1", data.SerializeToString())
    assert host.errors == {"no_birth": 1} and not seen
    birth = spb.Payload()
    birth.seq = 0
    bd = birth.metrics.add()
    bd.name = "bdSeq"
    spb.set_metric_value(bd, 3, spb.SpbType.Int64)
    await host.handle("spBv1.0/g/NBIRTH/n1", birth.SerializeToString())
    assert host.nodes["g/n1"].online and host.nodes["g/n1"].bdseq == 3
    stale = spb.Payload()
    old = stale.metrics.add()
    old.name = "bdSeq"
    spb.set_metric_value(old, 2, spb.SpbType.Int64)
    await host.handle("spBv1.0/g/NDEATH/n1", stale.SerializeToString())
    assert host.nodes["g/n1"].online  # a death certificate of an older session is ignored
    await host.handle("spBv1.0/g/NDATA/n1", b"\x00garbage")
    assert host.errors["decode"] == 1


async def test_ndeath_marks_tags_bad(line: tuple[PackagingServer, SparkplugDriver, list[Sample]]) -> None:
    sim, drv, got = line
    await wait_for(lambda: len(got) > 3)
    await sim.stop()
    await wait_for(lambda: not drv.status.connected)
    assert {s.quality for s in got[-5:]} == {Quality.bad}


def test_json_path_and_timestamps() -> None:
    doc = {"data": {"temp": 21.5, "list": [1, 2]}, "ts": 1_700_000_000_000}
    assert extract(doc, "data.temp") == 21.5
    assert extract(doc, "data.list.1") == 2
    assert extract(5, "$") == 5
    assert parse_ts(1_700_000_000).year == 2023
    assert parse_ts(doc["ts"]) == parse_ts(1_700_000_000)
    assert parse_ts("2024-01-02T03:04:05Z").hour == 3


async def test_mqtt_json_driver(tmp_path: Path) -> None:
    require_service("mqtt")
    base = f"t{uuid.uuid4().hex[:10]}"
    profile = tmp_path / "json.toml"
    profile.write_text(
        f'[profile]\nname = "j"\nprotocol = "mqtt"\n\n[[tags]]\nname = "temp"\ntopic = "{base}/+/temp"\n'
        'path = "data.value"\nts_path = "ts"\nscale = 0.1\n\n'
        f'[[tags]]\nname = "ok"\ntopic = "{base}/ok"\npath = "$"\ntype = "bool"\n'
    )
    got: list[Sample] = []
    drv = MqttJsonDriver(
        DeviceConfig(name="j", profile=profile, reconnect_delay=0.2), load_profile(profile), got.extend
    )
    task = asyncio.create_task(drv.run())
    try:
        await wait_for(lambda: drv.status.connected)
        await asyncio.sleep(0.2)
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(
                f"{base}/a/temp", json.dumps({"data": {"value": 215}, "ts": 1_700_000_000}), qos=1
            )
            await client.publish(f"{base}/ok", "true", qos=1)
            await client.publish(f"{base}/a/temp", b"{not json", qos=1)
            await client.publish(f"{base}/a/temp", json.dumps({"data": {}}), qos=1)
        await wait_for(lambda: drv.status.errors.get("decode", 0) >= 2)
        temps = [s for s in got if s.tag.tag == "temp"]
        assert temps[0].value == pytest.approx(21.5) and temps[0].ts.year == 2023
        assert temps[-1].quality is Quality.bad
        assert [s.value for s in got if s.tag.tag == "ok"] == [True]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
