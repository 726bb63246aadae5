"""Device commands: permission, write flag, limits, read-back confirmation, journal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gongyun.core.types import Sample
from gongyun.edge.commands import CommandRequest, CommandService, JsonlJournal
from gongyun.edge.config import DeviceConfig
from gongyun.edge.drivers.modbus import ModbusDriver
from gongyun.edge.drivers.sparkplug import SparkplugDriver
from gongyun.edge.errors import CommandNotConfirmed, CommandRefused, DeviceError
from gongyun.edge.profiles import load_profile
from gongyun.errors import NotFound
from gongyun.security.rbac import Role
from gongyun.sim.packaging import PackagingServer
from gongyun.sim.pump import PumpServer
from tests.edge.conftest import PROFILES, wait_for
from tests.services import require_service


@pytest.fixture
async def service(pump: PumpServer, tmp_path: Path) -> AsyncIterator[CommandService]:
    cfg = DeviceConfig(name="pump1", profile=Path("p"), port=pump.port, timeout=0.5, retries=0)
    drv = ModbusDriver(cfg, load_profile(PROFILES / "pump.toml"), lambda s: None)
    yield CommandService({"pump1": drv}, JsonlJournal(tmp_path / "commands.jsonl"))
    await drv.close()


def req(tag: str, value: object, role: Role = Role.operator) -> CommandRequest:
    return CommandRequest("pump1", tag, value, "alice", role, tenant_id="t1", reason="test")  # type: ignore[arg-type]


async def test_confirmed_write_is_recorded_with_who_asked(
    service: CommandService, pump: PumpServer, tmp_path: Path
) -> None:
    record = await service.execute(req("speed_setpoint", 1200))
    assert record.status == "confirmed" and record.read_back == 1200
    assert pump.model.speed_setpoint == 1200
    stop = await service.execute(req("run", False, Role.engineer))
    assert stop.status == "confirmed" and pump.model.run_command is False
    lines = [json.loads(x) for x in (tmp_path / "commands.jsonl").read_text().splitlines()]
    assert [(x["tag"], x["requested_by"], x["role"], x["status"]) for x in lines] == [
        ("speed_setpoint", "alice", "operator", "confirmed"),
        ("run", "alice", "engineer", "confirmed"),
    ]


@pytest.mark.parametrize(
    ("tag", "value", "role", "why"),
    [
        ("speed_setpoint", 1000, Role.viewer, "role viewer may not command devices"),
        ("flow", 10.0, Role.operator, "tag flow is read-only"),
        ("speed_setpoint", 2000, Role.operator, "value 2000 is above the maximum 1800 of speed_setpoint"),
        ("speed_setpoint", -5, Role.operator, "below the minimum 0"),
        ("speed_setpoint", "fast", Role.operator, "takes a number"),
        ("speed_setpoint", 10.5, Role.operator, "takes a whole number"),
        ("run", 1, Role.operator, "takes true or false"),
    ],
)
async def test_refused_write_says_why(
    service: CommandService, pump: PumpServer, tag: str, value: object, role: Role, why: str
) -> None:
    with pytest.raises(CommandRefused, match=why) as info:
        await service.execute(req(tag, value, role))
    assert info.value.code == "command_refused"
    assert service.history[-1].status == "refused" and why in service.history[-1].detail
    assert pump.model.speed_setpoint == 1450  # nothing reached the device


async def test_unknown_device_or_tag(service: CommandService) -> None:
    with pytest.raises(NotFound):
        await service.execute(CommandRequest("nope", "x", 1, "alice", Role.operator))
    with pytest.raises(NotFound):
        await service.execute(req("nope", 1))


async def test_device_failure_and_unconfirmed_write(service: CommandService, pump: PumpServer) -> None:
    pump.clamp_rpm = 1500
    with pytest.raises(CommandNotConfirmed, match="read back 1500"):
        await service.execute(req("speed_setpoint", 1700))
    assert service.history[-1].status == "unconfirmed"
    pump.mode = "exception"
    with pytest.raises(DeviceError):
        await service.execute(req("speed_setpoint", 1000))
    assert service.history[-1].status == "failed"


async def test_sparkplug_command_confirmed_by_next_report() -> None:
    require_service("mqtt")
    group = f"t{uuid.uuid4().hex[:10]}"
    got: list[Sample] = []
    cfg = DeviceConfig(
        name="pack1", profile=Path("p"), group=group, node="PackLine1", sparkplug_device="Filler"
    )
    drv = SparkplugDriver(cfg, load_profile(PROFILES / "packaging.toml"), got.extend)
    task = asyncio.create_task(drv.run())
    sim = PackagingServer(group=group, interval=0.1)
    try:
        await asyncio.wait_for(drv.host.connected.wait(), 10)
        await sim.start()
        await wait_for(lambda: "speed" in drv.last)
        record = await CommandService({"pack1": drv}).execute(
            CommandRequest("pack1", "speed", 150.0, "bob", Role.operator)
        )
        assert record.status == "confirmed" and sim.model.rate_per_min == 150.0
    finally:
        await sim.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
