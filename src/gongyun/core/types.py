"""Domain value types: samples, quality, tag references, tenant ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import NewType

TenantId = NewType("TenantId", str)


class Quality(StrEnum):
    """Sample quality as OPC UA and Sparkplug understand it."""

    good = "good"
    uncertain = "uncertain"
    bad = "bad"


@dataclass(frozen=True, slots=True)
class TagRef:
    """A tag named within a device: ``device/tag``."""

    device: str
    tag: str

    def __str__(self) -> str:
        return f"{self.device}/{self.tag}"

    @classmethod
    def parse(cls, text: str) -> TagRef:
        """Parse ``device/tag``."""
        device, sep, tag = text.partition("/")
        if not sep or not device or not tag:
            raise ValueError(f"tag reference must be 'device/tag', got {text!r}")
        return cls(device, tag)


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one tag at one instant, as born at a device."""

    tag: TagRef
    value: float | int | bool | str | None
    ts: datetime
    quality: Quality = Quality.good
    seq: int | None = None
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
