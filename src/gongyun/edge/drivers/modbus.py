"""Modbus TCP driver (pymodbus): block-read coalescing, unit id, timeouts, retries, reconnect."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gongyun import __version__
from gongyun.core.types import Quality, Sample
from gongyun.edge.codec import DataType, decode, encode
from gongyun.edge.drivers.base import Driver, DriverManifest, Value
from gongyun.edge.errors import DecodeError, DeviceError
from gongyun.edge.profiles import Table, Tag

log = logging.getLogger(__name__)
BIT_BLOCK_LIMIT = 2000


@dataclass
class Block:
    """One read request covering several tags of one table."""

    table: Table
    start: int
    count: int
    tags: list[Tag] = field(default_factory=list)


def plan_blocks(tags: list[Tag], max_block: int = 120, max_gap: int = 8) -> list[Block]:
    """Coalesce tags into as few reads as possible: same table, gaps of at most ``max_gap``."""
    blocks: list[Block] = []
    by_table: dict[Table, list[Tag]] = defaultdict(list)
    for tag in tags:
        assert tag.table is not None and tag.address is not None
        by_table[tag.table].append(tag)
    for table, members in by_table.items():
        bits = table in (Table.coil, Table.discrete)
        limit = BIT_BLOCK_LIMIT if bits else max_block
        current: Block | None = None
        for tag in sorted(members, key=lambda t: t.address or 0):
            start, size = tag.address or 0, tag.registers
            if current is not None:
                end = current.start + current.count
                new_end = max(end, start + size)
                if start - end <= max_gap and new_end - current.start <= limit:
                    current.count = new_end - current.start
                    current.tags.append(tag)
                    continue
            current = Block(table, start, size, [tag])
            blocks.append(current)
    return blocks


class ModbusDriver(Driver):
    """Polls a Modbus TCP device according to its profile."""

    protocol = "modbus"
    manifest = DriverManifest(
        name="modbus",
        version=__version__,
        protocol="modbus",
        library="pymodbus==3.16.1",
        reads="holding/input registers, coils, discrete inputs",
        writes="holding registers and coils",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        c = self.config
        self.client = AsyncModbusTcpClient(
            c.host, port=c.port or 502, timeout=c.timeout, retries=c.retries, reconnect_delay=0
        )
        self.lock = asyncio.Lock()
        header = self.profile.profile
        groups: dict[float, list[Tag]] = defaultdict(list)
        for tag in self.profile.tags:
            groups[tag.poll_interval or header.poll_interval].append(tag)
        self.plans = {iv: plan_blocks(tags, header.max_block, header.max_gap) for iv, tags in groups.items()}

    async def _ensure_connected(self) -> None:
        if self.client.connected:
            return
        ok = await self.client.connect()
        if not ok:
            self.status.connected = False
            raise DeviceError(f"cannot connect to {self.config.host}:{self.config.port}")
        if not self.status.connected:
            self.status.reconnects += 1
        self.status.connected = True

    async def _request(self, table: Table, start: int, count: int) -> list[int] | list[bool]:
        unit = self.config.unit_id
        async with self.lock:
            await self._ensure_connected()
            try:
                if table is Table.holding:
                    reply = await self.client.read_holding_registers(start, count=count, device_id=unit)
                elif table is Table.input:
                    reply = await self.client.read_input_registers(start, count=count, device_id=unit)
                elif table is Table.coil:
                    reply = await self.client.read_coils(start, count=count, device_id=unit)
                else:
                    reply = await self.client.read_discrete_inputs(start, count=count, device_id=unit)
            except (TimeoutError, ModbusException, OSError) as exc:
                self.client.close()  # after garbage or silence the stream cannot be trusted
                self.status.connected = False
                raise DeviceError(f"no valid answer: {exc}", kind="io") from exc
        if reply.isError():
            raise DeviceError(f"exception code {getattr(reply, 'exception_code', '?')}", kind="exception")
        if table in (Table.coil, Table.discrete):
            return list(reply.bits[:count])
        regs = list(reply.registers)
        if len(regs) < count:
            raise DeviceError(f"short answer: {len(regs)} of {count} registers", kind="garbage")
        return regs

    def _decode(self, block: Block, data: list[int] | list[bool], tag: Tag) -> Value:
        offset = (tag.address or 0) - block.start
        if block.table in (Table.coil, Table.discrete):
            return bool(data[offset])
        regs = [int(r) for r in data[offset : offset + tag.registers]]
        if tag.type is DataType.bool and tag.bit is not None:
            return bool(regs[0] >> tag.bit & 1)
        return decode(regs, tag.type, tag.byte_order, tag.word_order, tag.scale, tag.offset)

    async def read_block(self, block: Block) -> list[Sample]:
        """Read one block and decode its tags (bad-quality samples for undecodable ones)."""
        data = await self._request(block.table, block.start, block.count)
        ts = datetime.now(UTC)
        out = []
        for tag in block.tags:
            try:
                out.append(self.sample(tag, self._decode(block, data, tag), ts))
            except DecodeError as exc:
                self.status.error("decode", f"{tag.name}: {exc}")
                out.append(self.sample(tag, None, ts, Quality.bad))
        return out

    async def poll_once(self, interval: float) -> None:
        """Read every block of one poll group and emit the samples."""
        for block in self.plans[interval]:
            try:
                samples = await self.read_block(block)
            except DeviceError as exc:
                self.status.error(str(exc.details.get("kind", "connect")), str(exc))
                log.warning("%s: %s", self.device, exc)
                self.mark_bad(block.tags)
                continue
            self.status.good()
            self.emit(samples)

    async def _poll_loop(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.poll_once(interval)
            next_at += interval
            delay = next_at - loop.time()
            if delay < 0:  # overrun: skip missed slots rather than burst
                next_at, delay = loop.time(), 0
            if self.status.connected:
                self.backoff.reset()
            else:
                delay = max(delay, self.backoff.next())
            await asyncio.sleep(delay)

    async def run(self) -> None:
        """Poll every interval group concurrently until cancelled."""
        try:
            await asyncio.gather(*(self._poll_loop(iv) for iv in self.plans))
        finally:
            await self.close()

    async def read(self, tag: Tag) -> Value:
        """Read one tag now."""
        assert tag.table is not None and tag.address is not None
        block = Block(tag.table, tag.address, tag.registers, [tag])
        data = await self._request(block.table, block.start, block.count)
        return self._decode(block, data, tag)

    async def write(self, tag: Tag, value: Value) -> None:
        """Write a holding register tag or a coil."""
        if tag.table not in (Table.holding, Table.coil) or tag.address is None:
            raise DeviceError(f"tag {tag.name} is not writable on Modbus", kind="config")
        unit = self.config.unit_id
        async with self.lock:
            await self._ensure_connected()
            try:
                if tag.table is Table.coil:
                    reply = await self.client.write_coil(tag.address, bool(value), device_id=unit)
                else:
                    regs = encode(
                        value if value is not None else 0,
                        tag.type,
                        tag.byte_order,
                        tag.word_order,
                        tag.scale,
                        tag.offset,
                        tag.length,
                    )
                    reply = await self.client.write_registers(tag.address, regs, device_id=unit)
            except (TimeoutError, ModbusException, OSError) as exc:
                self.client.close()
                self.status.connected = False
                raise DeviceError(f"write failed: {exc}", kind="io") from exc
        if reply.isError():
            raise DeviceError(
                f"device refused write: exception code {reply.exception_code}", kind="exception"
            )

    async def close(self) -> None:
        """Close the TCP connection."""
        self.client.close()
        self.status.connected = False
