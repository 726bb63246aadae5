"""The sensor process: file and live sources, the outbox, shipping through bus outages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gongyun.bus import BusError
from gongyun.bus.memory import MemoryBus
from gongyun.security.ids.outbox import Outbox
from gongyun.security.ids.sensor import STREAM, SUBJECTS, Sensor, SensorConfig


class FlakyBus(MemoryBus):
    """A memory bus that refuses to publish while ``down``."""

    down = False

    async def publish(self, subject: str, data: bytes, **kw: Any) -> int:
        if self.down:
            raise BusError("bus down (test)")
        return await super().publish(subject, data, **kw)


async def _collect(bus: MemoryBus) -> tuple[list[dict[str, Any]], dict[str, int]]:
    events: list[dict[str, Any]] = []
    kinds: dict[str, int] = {}

    async def handle(msg: Any) -> None:
        kind = msg.subject.rsplit(".", 1)[-1]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "events":
            events.extend(json.loads(msg.data))
        await msg.ack()

    await bus.ensure_stream(STREAM, SUBJECTS)
    await bus.subscribe("ids.>", durable="test", handler=handle)
    return events, kinds


def test_outage_loses_nothing_and_a_restart_ships_the_rest(ics_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        bus = FlakyBus("ids-test")
        await bus.connect()
        events, kinds = await _collect(bus)
        box = tmp_path / "s.outbox"
        cfg = SensorConfig(name="s1", tenant="t1", outbox_path=str(box), records_per_message=5)
        sensor = Sensor(cfg)
        bus.down = True
        stop = asyncio.Event()
        shipper = asyncio.create_task(sensor.ship(bus, stop, retry_s=0.05))
        await asyncio.to_thread(sensor.run_file, ics_dir / "modbus_example.pcap")
        await asyncio.sleep(0.3)
        assert sensor.outbox.depth() > 0 and events == []
        assert sensor.stats.counts["ship.retries"] >= 1
        shipper.cancel()  # the sensor dies during the outage
        sensor.outbox.close()
        # a new sensor process on the same outbox ships what the first one left
        again = Sensor(cfg)
        bus.down = False
        stop2 = asyncio.Event()
        stop2.set()
        await asyncio.wait_for(again.ship(bus, stop2, retry_s=0.05), 10)
        await asyncio.sleep(0.2)
        assert again.outbox.depth() == 0
        assert len(events) == sensor.stats.counts["events"] == 9
        assert kinds["records"] == 6  # 26 records in messages of 5
        assert kinds["health"] >= 1
        await bus.close()

    asyncio.run(main())


def test_outbox_keeps_order_and_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put_many([("events", b"1"), ("records", b"2"), ("health", b"3")])
    first = box.batch(2)
    assert [p for _, _, p in first] == [b"1", b"2"]
    box.ack([first[0][0]])
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert [p for _, _, p in box.batch(10)] == [b"2", b"3"]


def test_learning_then_baseline_file_and_accept(ics_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "baseline.json"
    s = Sensor(
        SensorConfig(name="s2", tenant="t1", learn_s=3600, baseline_path=str(base), starter_rules=False)
    )
    s.run_file(ics_dir / "modbus_example.pcap")
    # the second connection comes two days later: learning ended there and the baseline was saved
    assert not s.detector.learning
    learned = json.loads(base.read_text())
    assert "modbus 127.0.0.1 127.0.0.1:502" in learned["flows"]
    s2 = Sensor(SensorConfig(name="s2", tenant="t1", baseline_path=str(base), starter_rules=False))
    assert not s2.detector.learning and s2.detector.allowlist
    s2.run_file(ics_dir / "modbus_example.pcap")
    # the learned traffic is normal now (no scan events for it); the late connection was never learned
    assert {e.rule_id for e in s2.events} == {"L-NEW-FLOW"}
    ev = {"detail": {"learn": {"kind": "flows", "key": "modbus 10.0.0.9 127.0.0.1:502"}}}
    assert s2.accept(ev)
    assert "modbus 10.0.0.9 127.0.0.1:502" in json.loads(base.read_text())["flows"]
