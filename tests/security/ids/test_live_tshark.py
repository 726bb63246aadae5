"""Live capture on loopback around the demo pump, cross-checked against tshark's Modbus dissector."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from gongyun.security.ids.capture import read_capture, write_pcap
from gongyun.security.ids.decoder import Decoder
from gongyun.security.ids.modbus import ModbusRecord
from gongyun.security.ids.stats import Stats
from gongyun.sim.pump import PumpServer
from tests.security.ids.loopback import capture_ports, free_port

TSHARK_FIELDS = [
    "frame.number",
    "tcp.dstport",
    "mbtcp.trans_id",
    "mbtcp.unit_id",
    "modbus.func_code",
    "modbus.reference_num",
    "modbus.word_cnt",
    "modbus.bit_cnt",
    "modbus.exception_code",
]


async def _pump_traffic(port: int) -> None:
    pump = PumpServer(port=port, hosts=("127.0.0.1",))
    await pump.start()
    try:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        await client.read_input_registers(0, count=24, device_id=1)
        await client.read_holding_registers(0, count=2, device_id=1)
        await client.read_coils(0, count=1, device_id=3)
        await client.read_discrete_inputs(0, count=2, device_id=1)
        await client.write_register(0, 1200, device_id=1)
        await client.write_register(0, 5000, device_id=1)  # ILLEGAL_VALUE
        await client.write_register(7, 1, device_id=1)  # ILLEGAL_ADDRESS
        await client.write_coil(0, True, device_id=1)
        await client.write_registers(0, [900], device_id=1)
        await client.write_coils(0, [True, False, True], device_id=2)
        await client.read_holding_registers(100, count=5, device_id=1)  # outside the map
        for unit in range(1, 4):
            await client.read_input_registers(2, count=2, device_id=unit)
        client.close()
        await asyncio.sleep(0.2)
    finally:
        await pump.stop()


def tshark_rows(pcap: Path, port: int) -> list[dict[str, str]]:
    """tshark's Modbus fields per PDU of a capture (decoding ``port`` as Modbus/TCP)."""
    args = [
        "tshark",
        "-r",
        str(pcap),
        "-o",
        f"mbtcp.tcp.port:{port}",
        "-Y",
        "modbus",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=f",
    ]
    for f in TSHARK_FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    return [dict(zip(TSHARK_FIELDS, line.split("|"), strict=True)) for line in out.splitlines() if line]


def compare_with_tshark(records: list[ModbusRecord], rows: list[dict[str, str]], port: int) -> int:
    """Assert every tshark PDU agrees with the sensor's record; return how many were compared."""
    by_tid: dict[int, list[ModbusRecord]] = {}
    for r in records:
        by_tid.setdefault(r.tid, []).append(r)
    compared = 0
    for row in rows:
        tid, unit, fc = int(row["mbtcp.trans_id"]), int(row["mbtcp.unit_id"]), int(row["modbus.func_code"])
        request = row["tcp.dstport"] == str(port)
        cands = [r for r in by_tid.get(tid, []) if r.unit == unit and r.fc == fc]
        assert cands, f"no record for {row}"
        rec = cands[0]
        if request and rec.address is not None and fc in (1, 2, 3, 4, 5, 6, 15, 16):
            assert row["modbus.reference_num"] == str(rec.address), (row, rec)
        if request and fc in (1, 2, 15):
            assert row["modbus.bit_cnt"] == str(rec.quantity), (row, rec)
        if request and fc in (3, 4, 16):
            assert row["modbus.word_cnt"] == str(rec.quantity), (row, rec)
        if not request:
            exc = row["modbus.exception_code"]
            assert (exc != "") == (rec.exception is not None), (row, rec)
        compared += 1
    return compared


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (Debian package tshark) is not installed")
def test_reference_capture_agrees_with_tshark(ics_dir: Path) -> None:
    stats = Stats()
    recs = [
        r
        for r in Decoder(stats=stats).frames(read_capture(ics_dir / "modbus_example.pcap", stats))
        if isinstance(r, ModbusRecord)
    ]
    assert compare_with_tshark(recs, tshark_rows(ics_dir / "modbus_example.pcap", 502), 502) == 48


def test_live_loopback_capture_of_the_pump(tmp_path: Path) -> None:
    port = free_port()
    with capture_ports({port}) as frames:
        asyncio.run(_pump_traffic(port))
    pcap = tmp_path / "pump.pcap"
    import shutil as _s

    _s.copy  # noqa
    write_pcap(pcap, frames)
    stats = Stats()
    recs = [
        r
        for r in Decoder({port: "modbus"}, stats).frames(read_capture(pcap, stats))
        if isinstance(r, ModbusRecord)
    ]
    assert len(recs) == 14, [r.zeek_row() for r in recs]
    assert all(r.matched for r in recs)
    exc = {(r.fc, r.address): r.exception for r in recs if r.exception}
    assert exc[(6, 0)] == "ILLEGAL_DATA_VALUE" and exc[(6, 7)] == "ILLEGAL_DATA_ADDRESS"
    assert [r.request_values for r in recs if r.fc == 16] == [[900]]
    assert [r.request_values for r in recs if r.fc == 15] == [[1, 0, 1]]
    if shutil.which("tshark"):
        assert compare_with_tshark(recs, tshark_rows(pcap, port), port) == 28
