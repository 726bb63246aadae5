"""What every driver shares: device status, deadband filtering, the emit callback."""

from __future__ import annotations

import abc
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.edge.config import DeviceConfig
from gongyun.edge.profiles import Profile, Tag
from gongyun.sparkplug.tls import client_context

log = logging.getLogger(__name__)
Emit = Callable[[list[Sample]], None]
Value = float | int | bool | str | None


@dataclass
class DeviceStatus:
    """Health of one device as the gateway sees it."""

    device: str
    protocol: str
    connected: bool = False
    last_good_read: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    error_count: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    reads: int = 0
    samples: int = 0
    reconnects: int = 0

    def error(self, kind: str, message: str) -> None:
        """Count an error of ``kind`` and remember the message."""
        self.error_count += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = f"{kind}: {message}"
        self.last_error_at = datetime.now(UTC)

    def good(self) -> None:
        """Record a successful read."""
        self.reads += 1
        self.last_good_read = datetime.now(UTC)

    @property
    def state(self) -> str:
        """``offline`` (not connected), ``error`` (connected, but the last read failed) or ``online``."""
        if not self.connected:
            return "offline"
        if self.last_error_at is not None and (
            self.last_good_read is None or self.last_error_at > self.last_good_read
        ):
            return "error"
        return "online"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "device": self.device,
            "protocol": self.protocol,
            "state": self.state,
            "connected": self.connected,
            "last_good_read": self.last_good_read.isoformat() if self.last_good_read else None,
            "last_error": self.last_error,
            "error_count": self.error_count,
            "errors": dict(self.errors),
            "reads": self.reads,
            "samples": self.samples,
            "reconnects": self.reconnects,
        }


class Deadband:
    """Deadband 0: every read is a sample. Deadband > 0: only moves larger than it (any change for
    text and booleans) and every quality change are samples (report by exception)."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[Value, Quality]] = {}

    def passes(self, tag: Tag, value: Value, quality: Quality) -> bool:
        """True when the sample should be emitted (and remember it)."""
        previous = self.last.get(tag.name)
        self.last[tag.name] = (value, quality)
        if previous is None or previous[1] is not quality:
            return True
        old = previous[0]
        if tag.deadband > 0 and isinstance(value, int | float) and isinstance(old, int | float):
            if abs(float(value) - float(old)) <= tag.deadband:
                self.last[tag.name] = previous
                return False
            return True
        return tag.deadband == 0 or value != old


class Backoff:
    """Reconnect delays doubling from ``initial`` up to ``maximum``; reset after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum = initial, max(initial, maximum)
        self.current = initial

    def next(self) -> float:
        """The delay to wait now."""
        delay, self.current = self.current, min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Back to the initial delay."""
        self.current = self.initial


def broker_tls(config: DeviceConfig) -> ssl.SSLContext | None:
    """The TLS context for an MQTT or Sparkplug device's broker (None: plain TCP, no ``ca_file``)."""
    if config.ca_file is None:
        return None
    return client_context(config.ca_file, config.cert_file, config.key_file)


@dataclass(frozen=True)
class DriverManifest:
    """What a driver is and does, declared the same way by built-in and third-party drivers."""

    name: str
    version: str
    protocol: str
    library: str
    permissions: tuple[str, ...] = ("devices:read", "devices:command")
    reads: str = "device values"
    writes: str = "device setpoints and commands"
    classification: str = "internal"


class Driver(abc.ABC):
    """A connection to one device described by a profile."""

    protocol = "abstract"
    manifest: ClassVar[DriverManifest]

    def __init__(self, config: DeviceConfig, profile: Profile, emit: Emit) -> None:
        self.config, self.device, self.profile, self._emit = config, config.name, profile, emit
        self.status = DeviceStatus(config.name, self.protocol)
        self.deadband = Deadband()
        self.backoff = Backoff(config.reconnect_delay, config.reconnect_max)

    def sample(
        self, tag: Tag, value: Value, ts: datetime | None = None, quality: Quality = Quality.good
    ) -> Sample:
        """Build a Sample of this device."""
        return Sample(TagRef(self.device, tag.name), value, ts or datetime.now(UTC), quality)

    def emit(self, samples: list[Sample]) -> None:
        """Pass samples through the deadband to the gateway."""
        tags = {t.name: t for t in self.profile.tags}
        out = [
            s
            for s in samples
            if s.tag.tag not in tags or self.deadband.passes(tags[s.tag.tag], s.value, s.quality)
        ]
        if out:
            self.status.samples += len(out)
            self._emit(out)

    def mark_bad(self, tags: list[Tag], ts: datetime | None = None) -> None:
        """Emit bad-quality samples for tags whose read failed (only on transition, via deadband)."""
        self.emit([self.sample(tag, None, ts, Quality.bad) for tag in tags])

    @abc.abstractmethod
    async def run(self) -> None:
        """Connect, read and subscribe until cancelled, reconnecting on failures."""

    @abc.abstractmethod
    async def read(self, tag: Tag) -> Value:
        """Read one tag now (raises DeviceError)."""

    @abc.abstractmethod
    async def write(self, tag: Tag, value: Value) -> None:
        """Write one tag (raises DeviceError)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""
