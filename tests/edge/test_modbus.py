"""Modbus driver against the pump simulator over loopback: coalescing, types, faults, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gongyun.core.types import Quality, Sample
from gongyun.edge.config import DeviceConfig
from gongyun.edge.drivers.modbus import ModbusDriver, plan_blocks
from gongyun.edge.errors import DeviceError
from gongyun.edge.profiles import Table, load_profile
from gongyun.sim.pump import PumpServer
from tests.edge.conftest import PROFILES, wait_for


def test_block_planning_coalesces_adjacent_registers() -> None:
    profile = load_profile(PROFILES / "pump.toml")
    blocks = plan_blocks(list(profile.tags))
    summary = sorted((b.table, b.start, b.count, len(b.tags)) for b in blocks)
    assert summary == sorted(
        [(Table.input, 0, 24, 10), (Table.holding, 0, 1, 1), (Table.coil, 0, 1, 1), (Table.discrete, 0, 1, 1)]
    )
    split = plan_blocks(list(profile.tags), max_gap=0)
    assert len([b for b in split if b.table is Table.input]) == 3  # gaps at 17..19 and 24
    small = plan_blocks(list(profile.tags), max_block=10)
    assert all(b.count <= 10 for b in small)


@pytest.fixture
async def driver(pump: PumpServer) -> AsyncIterator[tuple[ModbusDriver, list[Sample]]]:
    got: list[Sample] = []
    cfg = DeviceConfig(
        name="pump1", profile=Path("pump.toml"), port=pump.port, timeout=0.5, retries=0, reconnect_delay=0.1
    )
    drv = ModbusDriver(cfg, load_profile(PROFILES / "pump.toml"), got.extend)
    task = asyncio.create_task(drv.run())
    try:
        yield drv, got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def latest(got: list[Sample], tag: str) -> Sample:
    return [s for s in got if s.tag.tag == tag][-1]


async def test_reads_every_type_with_few_requests(
    driver: tuple[ModbusDriver, list[Sample]], pump: PumpServer
) -> None:
    drv, got = driver
    await wait_for(lambda: drv.status.reads >= 8)
    assert 100 < latest(got, "flow").value < 140  # type: ignore[operator]
    assert latest(got, "serial").value == "PUMP-01"
    assert latest(got, "state").value == 1
    assert latest(got, "running").value is True
    assert latest(got, "speed_setpoint").value == 1450
    temp, temp10 = latest(got, "bearing_temp").value, latest(got, "bearing_temp_x10").value
    assert abs(float(temp) - float(temp10)) < 1.0  # type: ignore[arg-type]
    assert latest(got, "total_volume").value >= 0  # type: ignore[operator]
    assert all(s.quality is Quality.good for s in got)
    assert drv.status.connected and drv.status.error_count == 0
    # one poll = 4 block reads (input, holding, coil, discrete) for 13 tags
    polls = drv.status.reads / 4
    assert pump.reads <= drv.status.reads + 4 and polls >= 2


async def test_write_and_read_back(driver: tuple[ModbusDriver, list[Sample]], pump: PumpServer) -> None:
    drv, _ = driver
    await wait_for(lambda: drv.status.connected)
    await drv.write(drv.profile.tag("speed_setpoint"), 1000)
    assert await drv.read(drv.profile.tag("speed_setpoint")) == 1000
    assert pump.model.speed_setpoint == 1000
    await drv.write(drv.profile.tag("run"), False)
    assert await drv.read(drv.profile.tag("run")) is False
    with pytest.raises(DeviceError, match="exception code 3"):
        await drv.write(drv.profile.tag("speed_setpoint"), 5000)  # the device refuses out-of-range values


@pytest.mark.parametrize(("mode", "kind"), [("exception", "exception"), ("garbage", "io"), ("silent", "io")])
async def test_bad_device_answers_mark_bad_and_recover(
    driver: tuple[ModbusDriver, list[Sample]], pump: PumpServer, mode: str, kind: str
) -> None:
    drv, got = driver
    await wait_for(lambda: drv.status.reads >= 4)
    pump.mode = mode
    await wait_for(lambda: drv.status.errors.get(kind, 0) >= 2, timeout=15)
    assert latest(got, "flow").quality is Quality.bad and latest(got, "flow").value is None
    assert drv.status.last_error and drv.status.last_error.startswith(kind)
    pump.mode = "normal"
    reads = drv.status.reads
    await wait_for(lambda: drv.status.reads > reads + 4, timeout=15)
    assert latest(got, "flow").quality is Quality.good


async def test_reconnects_after_device_restart(
    driver: tuple[ModbusDriver, list[Sample]], pump: PumpServer
) -> None:
    drv, got = driver
    await wait_for(lambda: drv.status.reads >= 4)
    await pump.stop()
    await wait_for(lambda: not drv.status.connected and drv.status.error_count > 0)
    assert latest(got, "flow").quality is Quality.bad
    await pump.start()
    await wait_for(lambda: drv.status.connected and latest(got, "flow").quality is Quality.good, timeout=15)
    assert drv.status.reconnects >= 2


async def test_unreachable_device_counts_connect_errors(tmp_path: Path) -> None:
    from tests.services import free_port

    got: list[Sample] = []
    cfg = DeviceConfig(name="ghost", profile=Path("p"), port=free_port(), timeout=0.2, reconnect_delay=0.05)
    drv = ModbusDriver(cfg, load_profile(PROFILES / "pump.toml"), got.extend)
    task = asyncio.create_task(drv.run())
    try:
        await wait_for(lambda: drv.status.errors.get("connect", 0) >= 3)
        assert not drv.status.connected
        assert {s.quality for s in got} == {Quality.bad}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_unit_id_is_addressed() -> None:
    from tests.services import free_port

    pump = PumpServer(port=free_port(), unit_id=7)
    await pump.start()
    drivers = []
    try:
        for unit in (7, 3):
            cfg = DeviceConfig(
                name=f"u{unit}", profile=Path("p"), port=pump.port, unit_id=unit, timeout=0.3, retries=0
            )
            drv = ModbusDriver(cfg, load_profile(PROFILES / "pump.toml"), lambda s: None)
            drivers.append(drv)
        assert await drivers[0].read(drivers[0].profile.tag("serial")) == "PUMP-01"
        with pytest.raises(DeviceError):
            await drivers[1].read(drivers[1].profile.tag("serial"))
    finally:
        for drv in drivers:
            await drv.close()
        await pump.stop()
