"""Device commands: a write checked against permission, write flag and limits, confirmed by reading
back, and recorded with who asked. A refused write raises ``CommandRefused`` saying why.

Remote commands (Sparkplug NCMD) claim who asked in metric properties; :class:`CommandPolicy` decides
what such a claim may get on this gateway: the tenant must be the gateway's, the role one of its
``allowed_roles``, and, when a shared secret is configured, the command must carry a fresh HMAC
signature made by :func:`sign_command` on the platform side. The signature covers the
``command_id`` the result is reported under, and the nonces of the last ``max_age_s`` are kept on
disk (:class:`NonceStore`), so a signed command runs at most once, across gateway restarts and
clock steps.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import logging
import math
import os
import secrets
import struct
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

SIGNATURE_PROP, ISSUED_AT_PROP, NONCE_PROP, COMMAND_ID_PROP = "signature", "issued_at", "nonce", "command_id"
_SIGNED_PROPS = ("requested_by", "role", "tenant", "reason", ISSUED_AT_PROP, NONCE_PROP, COMMAND_ID_PROP)

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


def _canonical_value(value: Any) -> Any:
    """The signed form of a value: equal on both ends although Sparkplug may retype numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    number = float(value)
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    try:  # a Float metric arrives as float32: sign the value at that precision
        return repr(struct.unpack("f", struct.pack("f", number))[0])
    except OverflowError:
        return repr(number)


def command_signature(
    secret: str, node_key: str, device: str, tag: str, value: Value, props: Mapping[str, Any]
) -> str:
    """HMAC-SHA256 (hex) over the target gateway, device, tag, value and the signed properties."""
    fields = [node_key, device, tag, _canonical_value(value)]
    fields += [str(props.get(k) or "") for k in _SIGNED_PROPS]
    canonical = json.dumps(fields, separators=(",", ":"), default=str)
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def sign_command(
    secret: str, node_key: str, device: str, tag: str, value: Value, props: Mapping[str, str]
) -> dict[str, str]:
    """``props`` plus issue time, nonce, command id (unless given) and signature, for gateway ``group/node``.

    Send the result as is: the gateway refuses a command whose ``command_id`` was changed.
    """
    out = {**props, ISSUED_AT_PROP: str(int(time.time() * 1000)), NONCE_PROP: secrets.token_hex(12)}
    out.setdefault(COMMAND_ID_PROP, uuid.uuid4().hex)
    out[SIGNATURE_PROP] = command_signature(secret, node_key, device, tag, value, out)
    return out


class NonceStore:
    """The nonces of signed commands seen in the last ``max_age_s``, by wall-clock issue time (ms).

    Kept in a JSON file (rewritten atomically at each new nonce) so that a restart forgets none.
    Nonces are forgotten by their issue time; ``floor`` then rises past the newest forgotten one,
    and anything issued before ``floor`` is refused, so a clock stepped back cannot reopen the
    window. Without a file to start from (first start, file lost) ``floor`` is the start time.
    """

    def __init__(self, path: str | Path | None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self.seen: dict[str, int] = {}
        self.floor = int(clock() * 1000) if self.path is not None else 0
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.seen = {str(n): int(t) for n, t in data["seen"].items()}
                self.floor = int(data["floor"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning(
                    "command nonces in %s unreadable (%s): refusing commands issued before now", path, exc
                )

    def problem(self, nonce: str, issued_ms: int, max_age_s: float) -> str | None:
        """Why a command with this nonce and issue time is a replay (None: record it and go on)."""
        if issued_ms < self.floor:
            return "the command was issued before the gateway's replay window (replayed or delayed)"
        cutoff = int(self._clock() * 1000 - max_age_s * 1000)
        old = [t for t in self.seen.values() if t < cutoff]
        if old:
            self.floor = max(self.floor, max(old) + 1)
            self.seen = {n: t for n, t in self.seen.items() if t >= cutoff}
            if issued_ms < self.floor:
                return "the command was issued before the gateway's replay window (replayed or delayed)"
        if not nonce or nonce in self.seen:
            return "the command was replayed"
        self.seen[nonce] = issued_ms
        try:
            self._save()
        except OSError as exc:
            del self.seen[nonce]
            log.error("cannot record command nonce in %s: %s", self.path, exc)
            return f"the gateway cannot record the command against replay: {exc.strerror or exc}"
        return None

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump({"floor": self.floor, "seen": self.seen}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class CommandPolicy:
    """What a remote command's claimed identity may get on this gateway (see the module docstring)."""

    def __init__(
        self,
        node_key: str,
        tenant: str,
        allowed_roles: list[Role],
        secret: str | None = None,
        max_age_s: float = 60.0,
        nonce_path: str | Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``nonce_path``: where used nonces persist (None: memory only); ``clock``: wall clock (s)."""
        self.node_key, self.tenant, self.allowed_roles = node_key, tenant, set(allowed_roles)
        self._secret, self.max_age_s, self._clock = secret, max_age_s, clock
        self.nonces = NonceStore(nonce_path, clock)

    def __repr__(self) -> str:
        return f"CommandPolicy({self.node_key!r}, tenant={self.tenant!r}, signed={self._secret is not None})"

    def _signature_problem(self, device: str, tag: str, value: Value, props: Mapping[str, Any]) -> str | None:
        if self._secret is None:
            return None
        given = props.get(SIGNATURE_PROP)
        if not isinstance(given, str) or not given:
            return "the command is not signed"
        wanted = command_signature(self._secret, self.node_key, device, tag, value, props)
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            return "the command's signature is wrong"
        try:
            issued_ms = int(str(props.get(ISSUED_AT_PROP)))
        except ValueError:
            return "the command has no issue time"
        age = self._clock() - issued_ms / 1000
        if abs(age) > self.max_age_s:
            return f"the command was issued {age:.0f} s ago (more than {self.max_age_s:g} s)"
        return self.nonces.problem(str(props.get(NONCE_PROP) or ""), issued_ms, self.max_age_s)

    def admit(
        self, device: str, tag: str, value: Value, props: Mapping[str, Any]
    ) -> tuple[CommandRequest, str | None]:
        """The request, and why it is refused (None: execute it); checks signature, tenant, role."""
        who = str(props.get("requested_by") or "platform")
        tenant, role_text = props.get("tenant"), props.get("role")
        why = self._signature_problem(device, tag, value, props)
        if why is None and tenant != self.tenant:
            why = f"the command is for tenant {tenant!r}; this gateway serves {self.tenant!r}"
        role: Role | None = None
        try:
            role = Role(str(role_text))
        except ValueError:
            why = why or f"the command's role {role_text!r} is unknown"
        if why is None and role not in self.allowed_roles:
            why = f"role {role} may not command devices on this gateway"
        request = CommandRequest(
            device,
            tag,
            value,
            who,
            role or Role.viewer,
            tenant_id=str(tenant) if tenant is not None else None,
            reason=str(props.get("reason") or ""),
        )
        return request, why


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

    async def refuse(self, req: CommandRequest, why: str, claimed_role: str | None = None) -> CommandRecord:
        """Record a command refused before execution (by :class:`CommandPolicy`), with the role claimed."""
        record = CommandRecord(
            uuid.uuid4().hex,
            req.device,
            req.tag,
            req.value,
            req.requested_by,
            claimed_role if claimed_role is not None else str(req.role),
            req.tenant_id,
            req.reason,
            "refused",
            why,
        )
        await self._record(record)
        return record

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
