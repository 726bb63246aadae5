"""The simulators speak their real protocols over loopback to independent clients."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from gongyun.edge.codec import DataType, Order, decode
from gongyun.edge.config import load_config
from gongyun.sim.cnc import CncServer
from gongyun.sim.packaging import PackagingServer
from gongyun.sim.pump import PumpServer
from gongyun.sparkplug import payload as spb
from tests.services import free_port, port_open, require_service

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
async def pump() -> AsyncIterator[PumpServer]:
    server = PumpServer(port=free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_pymodbus_client_reads_pump(pump: PumpServer, host: str) -> None:
    client = AsyncModbusTcpClient(host, port=pump.port, timeout=2)
    await client.connect()
    try:
        regs = (await client.read_input_registers(0, count=24, device_id=1)).registers
        flow = decode(regs[0:2], DataType.float32)
        pressure = decode(regs[2:4], DataType.float32)
        assert 100 < float(flow) < 140
        assert 3 < float(pressure) < 5
        assert regs[12] == 1
        assert decode(regs[20:24], DataType.string) == "PUMP-01"
        litres = decode(regs[14:16], DataType.int32, word_order=Order.little)
        assert isinstance(litres, int) and litres >= 0
        assert (await client.read_discrete_inputs(0, count=2, device_id=1)).bits[:2] == [True, False]
        assert not (await client.write_register(0, 900, device_id=1)).isError()
        assert (await client.read_holding_registers(0, count=1, device_id=1)).registers == [900]
        refused = await client.write_register(0, 5000, device_id=1)
        assert refused.isError() and refused.exception_code == 3
    finally:
        client.close()


async def test_pump_protocol_fault_answers_exception(pump: PumpServer) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=pump.port, timeout=1, retries=0)
    await client.connect()
    try:
        pump.mode = "exception"
        reply = await client.read_input_registers(0, count=2, device_id=1)
        assert reply.isError() and reply.exception_code == 4
    finally:
        client.close()


async def run_tool(*args: str, timeout: float = 20) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def test_uaread_reads_cnc_over_both_loopbacks() -> None:
    server = CncServer(port=free_port())
    await server.start()
    try:
        await asyncio.sleep(0.3)
        for host in ("127.0.0.1", "[::1]"):
            url = f"opc.tcp://{host}:{server.port}/gongyun/cnc"
            speed = await run_tool(str(VENV_BIN / "uaread"), "-u", url, "-n", "ns=2;s=CNC.SpindleSpeed")
            assert 7000 < float(speed.strip()) < 9000
        state = await run_tool(str(VENV_BIN / "uaread"), "-u", url, "-n", "ns=2;s=CNC.State")
        assert state.strip() == "RUNNING"
    finally:
        await server.stop()


async def test_mosquitto_sub_sees_packaging_topics() -> None:
    require_service("mqtt")
    group = f"t{uuid.uuid4().hex[:10]}"
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-t",
        f"spBv1.0/{group}/#",
        "-v",
        "-C",
        "3",
        "-W",
        "15",
        stdout=subprocess.PIPE,
    )
    await asyncio.sleep(0.5)
    server = PackagingServer(group=group, interval=0.2, time_scale=5)
    await server.start()
    try:
        out, _ = await asyncio.wait_for(sub.communicate(), 20)
    finally:
        await server.stop()
    topics = [line.split(b" ", 1)[0].decode() for line in out.splitlines() if line.startswith(b"spBv1.0/")]
    assert topics[:3] == [
        f"spBv1.0/{group}/NBIRTH/PackLine1",
        f"spBv1.0/{group}/DBIRTH/PackLine1/Filler",
        f"spBv1.0/{group}/DDATA/PackLine1/Filler",
    ]


def test_gongyun_sim_cli_starts_all_three(tmp_path: Path) -> None:
    require_service("mqtt")
    modbus, opcua = free_port(), free_port()
    group = f"t{uuid.uuid4().hex[:10]}"
    code = "from gongyun.cli.sim import app; app()"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--modbus-port",
            str(modbus),
            "--opcua-port",
            str(opcua),
            "--group",
            group,
            "--write-edge-config",
            str(tmp_path / "edge.toml"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-t", f"spBv1.0/{group}/NBIRTH/#", "-C", "1", "-N", "-W", "20"],
        stdout=subprocess.PIPE,
    )
    try:
        out, _ = sub.communicate(timeout=25)
        assert out, "no NBIRTH from the packaging line"
        birth = spb.parse(out)  # what mosquitto_sub received is a valid Sparkplug B payload
        assert birth.seq == 0 and [m.name for m in birth.metrics][:2] == ["bdSeq", "Node Control/Rebirth"]
        for port in (modbus, opcua):
            assert port_open("127.0.0.1", port)
        config, profiles = load_config(tmp_path / "edge.toml")
        assert [d.port or d.url for d in config.devices][:2] == [
            modbus,
            f"opc.tcp://127.0.0.1:{opcua}/gongyun/cnc",
        ]
        assert profiles["packline-1"].profile.protocol == "sparkplug"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sub.kill()
        sub.wait()
