"""Ingest rules per tag: the tag table (spec, bounds, counters), the counters, one value's check.

Private to ``gongyun.telemetry.ingest``, which re-exports the public names.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

import numpy as np

from gongyun.telemetry._ingest_model import Reason
from gongyun.telemetry.catalog import DataType, TagSpec
from gongyun.telemetry.store.base import from_us
from gongyun.telemetry.units import UnitError, converter

FAST, SLOW, UNKNOWN = 0, 1, 2  # how a tag's samples are judged
MAX_TAGS = 1_000_000  # per tenant, before the tag table starts over
_NUMBERS = (int, float)


class TagTable:
    """One tenant's tags as small integers, with per-tag spec, bounds, expiry and counters."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.specs: list[TagSpec | None] = []
        self.kind = np.zeros(0, np.int8)
        self.lo = np.zeros(0, np.float64)
        self.hi = np.zeros(0, np.float64)
        self.expires = np.zeros(0, np.float64)
        self.accepted = np.zeros(0, np.int64)

    def _grow(self, need: int) -> None:
        size = max(64, len(self.kind))
        while size < need:
            size *= 2
        if size > len(self.kind):
            for name in ("kind", "lo", "hi", "expires", "accepted"):
                old = getattr(self, name)
                new = np.zeros(size, old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)

    def set(self, i: int, spec: TagSpec | None, expires: float) -> None:
        """Record a tag's spec and how its samples are judged."""
        self.specs[i] = spec
        self.expires[i] = expires
        if spec is None:
            self.kind[i] = UNKNOWN
        elif spec.data_type is not DataType.float or (spec.source_unit and spec.unit):
            self.kind[i] = SLOW
        else:
            self.kind[i] = FAST
            self.lo[i] = -math.inf if spec.low is None else spec.low
            self.hi[i] = math.inf if spec.high is None else spec.high

    def add(self, name: str) -> int:
        """A new tag's index (its spec is set by the caller)."""
        i = len(self.names)
        self._grow(i + 1)
        self.index[name] = i
        self.names.append(name)
        self.specs.append(None)
        return i

    def counts(self) -> Counter[str]:
        """Accepted samples per tag."""
        out: Counter[str] = Counter()
        for name, c in zip(self.names, self.accepted[: len(self.names)].tolist(), strict=True):
            if c:
                out[name] += c
        return out


class IngestStats:
    """Counters per (tenant, tag): accepted samples and rejections by reason."""

    def __init__(self) -> None:
        self._earlier: dict[str, Counter[str]] = {}  # counts of tag tables that started over
        self._tables: dict[str, TagTable] = {}
        self.rejected: Counter[tuple[str, str, str]] = Counter()
        self.stored_points = 0
        self.write_errors = 0

    @property
    def accepted(self) -> dict[str, Counter[str]]:
        """tenant -> tag -> samples accepted."""
        out = {t: Counter(c) for t, c in self._earlier.items()}
        for tenant, table in self._tables.items():
            out.setdefault(tenant, Counter()).update(table.counts())
        return out

    def for_tenant(self, tenant: str) -> dict[str, dict[str, Any]]:
        """``{tag: {"accepted": n, "rejected": {reason: n}}}`` for one tenant."""
        out: dict[str, dict[str, Any]] = {}
        for tag, n in self.accepted.get(tenant, Counter()).items():
            out.setdefault(tag, {"accepted": 0, "rejected": {}})["accepted"] = n
        for (t, tag, reason), n in self.rejected.items():
            if t == tenant:
                out.setdefault(tag, {"accepted": 0, "rejected": {}})["rejected"][reason] = n
        return out

    def table(self, tenant: str) -> TagTable:
        """The tenant's tag table (a fresh one once it grew too big)."""
        table = self._tables.get(tenant)
        if table is None or len(table.names) > MAX_TAGS:
            if table is not None:
                self._earlier.setdefault(tenant, Counter()).update(table.counts())
            table = self._tables[tenant] = TagTable()
        return table


def when(us: int) -> datetime | None:
    """A stored timestamp as a datetime for a rejection (None beyond what datetime holds)."""
    try:
        return from_us(us)
    except OverflowError:
        return None


def check_value(spec: TagSpec, value: object) -> tuple[float, Reason | None, str]:
    """Coerce a value to the tag's type and unit and check its range."""
    if value is None:
        return 0.0, Reason.missing_value, ""
    if spec.data_type is DataType.bool:
        if isinstance(value, bool):
            return float(value), None, ""
        if isinstance(value, int) and value in (0, 1):
            return float(value), None, ""
        return 0.0, Reason.wrong_type, f"expected bool, got {type(value).__name__}"
    if isinstance(value, bool) or not isinstance(value, _NUMBERS):
        return 0.0, Reason.wrong_type, f"expected {spec.data_type}, got {type(value).__name__}"
    try:
        v = float(value)
    except OverflowError:  # an int beyond float range
        return math.inf, Reason.infinite, ""
    if math.isnan(v):
        return v, Reason.nan, ""
    if math.isinf(v):
        return v, Reason.infinite, ""
    if spec.data_type is DataType.int and not v.is_integer():
        return v, Reason.wrong_type, "expected an integer"
    if spec.source_unit and spec.unit and spec.source_unit != spec.unit:
        try:
            v = converter(spec.source_unit, spec.unit)(v)
        except UnitError as exc:
            return v, Reason.unit, exc.message
    if (spec.low is not None and v < spec.low) or (spec.high is not None and v > spec.high):
        return v, Reason.out_of_range, f"{v} outside [{spec.low}, {spec.high}]"
    return v, None, ""
