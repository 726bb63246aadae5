"""Pump station as a Modbus TCP server (pymodbus), fed by the :class:`Pump` model.

Register map (device id 1, any unit id is answered; addresses are 0-based):

==========  ======  =========  ========================================================
table       addr    type       meaning
==========  ======  =========  ========================================================
input       0       float32    flow, m3/h
input       2       float32    discharge pressure, bar
input       4       float32    motor current, A
input       6       float32    vibration RMS, mm/s
input       8       float32    bearing temperature, degC
input       10      uint32     run hours x 100 (word order big)
input       12      uint16     state (0 stopped, 1 running, 2 tripped)
input       13      uint16     fault code (0 none, 1 bearing failure, 2 clogged)
input       14      int32      total volume, litres (word order LITTLE: low word first)
input       16      int16      bearing temperature x 10
input       20      string     "PUMP-01" (8 bytes)
holding     0       uint16     speed setpoint, rpm (0..1800, writable)
holding     1       uint16     speed, rpm (read-only mirror)
coil        0       bool       run command (writable)
discrete    0       bool       running
discrete    1       bool       fault
==========  ======  =========  ========================================================
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from gongyun.edge.codec import DataType, Order, encode
from gongyun.sim.physics import Pump, PumpState

log = logging.getLogger(__name__)
IR_SIZE, HR_SIZE, BIT_REGS = 32, 8, 1


def _bits_to_regs(bits: list[bool]) -> list[int]:
    reg = 0
    for i, bit in enumerate(bits[:16]):
        reg |= int(bool(bit)) << i
    return [reg]


@dataclass
class PumpServer:
    """A running Modbus TCP pump; ``mode`` injects protocol faults: normal, exception, garbage, silent."""

    port: int = 5020
    hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    seed: int = 1
    time_scale: float = 1.0
    unit_id: int = 0  # 0 answers every unit id; otherwise only this one
    model: Pump = field(init=False)
    mode: str = "normal"
    clamp_rpm: float | None = None  # like a drive's own speed limit: writes above it are silently clamped
    reads: int = 0
    _servers: list[ModbusTcpServer] = field(default_factory=list)
    _last: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.model = Pump(seed=self.seed)

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = (now - self._last) * self.time_scale, now
        while dt > 0:  # bounded sub-steps keep the lags stable after a long idle period
            self.model.step(min(dt, 1.0))
            dt -= 1.0

    def input_registers(self) -> list[int]:
        """Current input register image from the model."""
        m = self.model
        regs = [0] * IR_SIZE
        f32 = DataType.float32
        for addr, value in (
            (0, m.flow),
            (2, m.pressure),
            (4, m.current),
            (6, m.vibration),
            (8, m.bearing_temp),
        ):
            regs[addr : addr + 2] = encode(value, f32)
        regs[10:12] = encode(int(m.run_seconds / 36), DataType.uint32)
        regs[12] = int(m.state)
        regs[13] = m.fault_code
        regs[14:16] = encode(int(m.total_volume * 1000), DataType.int32, word_order=Order.little)
        regs[16:17] = encode(round(m.bearing_temp * 10), DataType.int16)
        regs[20:24] = encode("PUMP-01", DataType.string, length=8)
        return regs

    def holding_registers(self) -> list[int]:
        """Current holding register image."""
        regs = [0] * HR_SIZE
        regs[0] = round(self.model.speed_setpoint)
        regs[1] = round(self.model.speed)
        return regs

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self.mode == "exception":
            return ExcCodes.DEVICE_FAILURE
        if self.mode == "silent":
            await asyncio.sleep(3600)
        self._advance()
        self.reads += 1
        if set_values is not None:
            return self._write(function_code, address, list(set_values))
        if function_code == 4:
            registers[:IR_SIZE] = self.input_registers()
        elif function_code == 3:
            registers[:HR_SIZE] = self.holding_registers()
        elif function_code == 2:
            running = self.model.state is PumpState.running
            registers[:1] = _bits_to_regs([running, self.model.state is PumpState.tripped])
        elif function_code == 1:
            registers[:1] = _bits_to_regs([self.model.run_command])
        return None

    def _write(self, function_code: int, address: int, values: list[Any]) -> ExcCodes | None:
        if function_code in (5, 15):
            if address == 0:
                self.model.run_command = bool(values[0])
                if self.model.state is PumpState.tripped and not values[0]:
                    self.model.state = PumpState.stopped
            return None
        if address != 0 or not values:
            return ExcCodes.ILLEGAL_ADDRESS
        if not 0 <= int(values[0]) <= 1800:
            return ExcCodes.ILLEGAL_VALUE
        wanted = float(values[0])
        self.model.speed_setpoint = min(wanted, self.clamp_rpm) if self.clamp_rpm is not None else wanted
        return None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending and self.mode == "garbage" and len(data) > 8:
            return data[:7] + bytes([data[7]]) + b"\xff\x13\x37" + data[11:]
        return data

    def _device(self) -> SimDevice:
        return SimDevice(
            id=self.unit_id,
            simdata=(
                [SimData(0, count=16, values=False, datatype=SimType.BITS)],
                [SimData(0, count=16, values=False, datatype=SimType.BITS)],
                [SimData(0, count=HR_SIZE, values=0, datatype=SimType.REGISTERS)],
                [SimData(0, count=IR_SIZE, values=0, datatype=SimType.REGISTERS)],
            ),
            action=self._action,
        )

    async def start(self) -> None:
        """Listen on every host in ``hosts``."""
        for host in self.hosts:
            server = ModbusTcpServer(self._device(), address=(host, self.port), trace_packet=self._trace)
            await server.serve_forever(background=True)
            self._servers.append(server)
        log.info("pump station (Modbus TCP) on %s port %d", ", ".join(self.hosts), self.port)

    async def stop(self) -> None:
        """Stop listening and drop connections."""
        for server in self._servers:
            await server.shutdown()  # type: ignore[no-untyped-call]
        self._servers.clear()
