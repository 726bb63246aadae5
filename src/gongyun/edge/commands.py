"""Device commands: a write checked against permission, write flag and limits, confirmed by reading
back, and recorded with who asked. A refused write raises ``CommandRefused`` saying why."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gongyun.edge.codec import DataType
from gongyun.edge.drivers.base import Driver, Value
from gongyun.edge.errors import CommandNotConfirmed, CommandRefused, DeviceError
from gongyun.edge.profiles import Tag
from gongyun.errors import NotFound
from gongyun.security.rbac import Perm, Role, has_permission

log = logging.getLogger(__name__)
_INTS = {DataType.int16, DataType.uint16, DataType.int32, DataType.uint32, DataType.int64, DataType.uint64}


@dataclass(frozen=True)
class CommandRequest:
    """Who wants which value written to which tag, and why."""

    device: str
    tag: str
    value: Value
    requested_by: str
    role: Role
    tenant_id: str | None = None
    reason: str = ""


@dataclass
class CommandRecord:
    """The outcome of one command, as recorded."""

    id: str
    device: str
    tag: str
    value: Value
    requested_by: str
    role: str
    tenant_id: str | None
    reason: str
    status: str  # confirmed | refused | failed | unconfirmed
    detail: str = ""
    read_back: Value = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    duration_ms: float = 0.0


Journal = Callable[[CommandRecord], Awaitable[None] | None]


class JsonlJournal:
    """Append command records to a JSON-lines file (one record per line, flushed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: CommandRecord) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(record), default=str) + "\n")


def check_value(tag: Tag, value: Value) -> str | None:
    """Why ``value`` may not be written to ``tag`` (None when it may)."""
    if not tag.writable:
        return f"tag {tag.name} is read-only"
    if value is None:
        return "a value is required"
    if tag.type is DataType.bool:
        return None if isinstance(value, bool) else f"tag {tag.name} takes true or false"
    if tag.type is DataType.string:
        return None if isinstance(value, str) else f"tag {tag.name} takes text"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"tag {tag.name} takes a number"
    if tag.type in _INTS and tag.scale == 1 and tag.offset == 0 and float(value) != int(value):
        return f"tag {tag.name} takes a whole number"
    if tag.min is not None and value < tag.min:
        return f"value {value} is below the minimum {tag.min:g} of {tag.name}"
    if tag.max is not None and value > tag.max:
        return f"value {value} is above the maximum {tag.max:g} of {tag.name}"
    return None


def same(tag: Tag, wanted: Value, got: Value) -> bool:
    """Does a read-back confirm the written value (numbers within the tag's resolution)?"""
    if isinstance(wanted, int | float) and not isinstance(wanted, bool) and isinstance(got, int | float):
        tolerance = max(abs(tag.scale) / 2, 1e-6 * abs(float(wanted)), 1e-9)
        if tag.type is DataType.float32:
            tolerance = max(tolerance, 1e-6 * abs(float(wanted)) * 10)
        return abs(float(wanted) - float(got)) <= tolerance
    return wanted == got


class CommandService:
    """Executes device commands against the gateway's drivers."""

    def __init__(
        self,
        drivers: Mapping[str, Driver],
        journal: Journal | None = None,
        confirm_timeout: float = 3.0,
    ) -> None:
        self.drivers, self.journal, self.confirm_timeout = drivers, journal, confirm_timeout
        self.history: list[CommandRecord] = []

    async def _record(self, record: CommandRecord) -> None:
        self.history.append(record)
        log.info(
            "command %s: %s/%s := %r by %s: %s %s",
            record.id,
            record.device,
            record.tag,
            record.value,
            record.requested_by,
            record.status,
            record.detail,
        )
        if self.journal is not None:
            result = self.journal(record)
            if inspect.isawaitable(result):
                await result

    async def execute(self, req: CommandRequest) -> CommandRecord:
        """Check, write, read back and record; raise CommandRefused / DeviceError / CommandNotConfirmed."""
        started = time.monotonic()
        record = CommandRecord(
            uuid.uuid4().hex,
            req.device,
            req.tag,
            req.value,
            req.requested_by,
            str(req.role),
            req.tenant_id,
            req.reason,
            "refused",
        )
        driver = self.drivers.get(req.device)
        if driver is None:
            raise NotFound(f"device {req.device} not found")
        try:
            tag = driver.profile.tag(req.tag)
        except KeyError:
            raise NotFound(f"tag {req.device}/{req.tag} not found") from None
        why = None
        if not has_permission(req.role, Perm.devices_command):
            why = f"role {req.role} may not command devices"
        why = why or check_value(tag, req.value)
        if why is not None:
            record.detail = why
            await self._record(record)
            raise CommandRefused(why, device=req.device, tag=req.tag)
        try:
            await driver.write(tag, req.value)
            record.read_back = await self._read_back(driver, tag, req.value)
        except DeviceError as exc:
            record.status, record.detail = "failed", str(exc)
            record.duration_ms = (time.monotonic() - started) * 1000
            await self._record(record)
            raise
        record.duration_ms = (time.monotonic() - started) * 1000
        if not same(tag, req.value, record.read_back):
            record.status = "unconfirmed"
            record.detail = f"read back {record.read_back!r} instead of {req.value!r}"
            await self._record(record)
            raise CommandNotConfirmed(record.detail, device=req.device, tag=req.tag)
        record.status = "confirmed"
        await self._record(record)
        return record

    async def _read_back(self, driver: Driver, tag: Tag, wanted: Value) -> Value:
        """Read until the value shows up (report-by-exception devices lag) or the timeout passes."""
        deadline = time.monotonic() + self.confirm_timeout
        got: Any = None
        while True:
            try:
                got = await driver.read(tag)
            except DeviceError as exc:
                if exc.details.get("kind") != "no_data" or time.monotonic() > deadline:
                    raise
            else:
                if same(tag, wanted, got) or time.monotonic() > deadline:
                    return got  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)
