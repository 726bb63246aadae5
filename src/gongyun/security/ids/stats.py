"""Counters of what the sensor decoded and what it skipped, and why."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    """Counts: ``counts`` for work done, ``skips`` for input dropped with its reason."""

    __slots__ = ("counts", "skips")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.skips: Counter[str] = Counter()

    def count(self, what: str, n: int = 1) -> None:
        """Count ``n`` of ``what``."""
        self.counts[what] += n

    def skip(self, reason: str, n: int = 1) -> None:
        """Count input dropped for ``reason``."""
        self.skips[reason] += n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot."""
        return {"counts": dict(self.counts), "skips": dict(self.skips)}
