"""Ingest data types: rejection reasons and results, limits, and batches as columns.

Private to ``gongyun.telemetry.ingest``, which re-exports the public names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.core.types import Quality, Sample
from gongyun.telemetry.store.base import QUALITY_CODES, Point

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
QUALITY: dict[object, int] = {Quality(k): v for k, v in QUALITY_CODES.items()}

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I16 = npt.NDArray[np.int16]


class Reason(StrEnum):
    """Why a sample was rejected."""

    unknown_tag = "unknown_tag"
    wrong_type = "wrong_type"
    missing_value = "missing_value"
    nan = "nan"
    infinite = "infinite"
    out_of_range = "out_of_range"
    future = "timestamp_in_future"
    past = "timestamp_too_old"
    naive_timestamp = "timestamp_without_zone"
    unit = "unit_not_convertible"
    oversize_batch = "oversize_batch"
    malformed = "malformed"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected sample."""

    tag: str
    ts: datetime | None
    reason: Reason
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "tag": self.tag,
            "ts": self.ts.isoformat() if self.ts else None,
            "reason": str(self.reason),
            "detail": self.detail,
        }


@dataclass(slots=True)
class IngestResult:
    """What happened to a batch: how many were accepted, and each rejection."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"accepted": self.accepted, "rejected": [r.to_dict() for r in self.rejected]}


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Limits of the ingest pipeline."""

    max_batch: int = 10_000
    write_batch: int = 20_000
    linger_s: float = 0.05
    spec_ttl_s: float = 5.0
    queue_chunks: int = 64
    max_future: timedelta = timedelta(minutes=10)
    max_past: timedelta = timedelta(days=5 * 366)


@dataclass(slots=True)
class SampleBatch:
    """Samples as columns: ``device/tag`` names, µs timestamps, values, quality codes.

    ``values`` is a float64 array when every value is a float (the fast case), else a list
    of anything a device may send. ``quality`` None means all good. ``naive`` maps the index
    of each sample whose timestamp had no time zone to that timestamp (it is rejected).
    """

    tags: list[str]
    ts: I64
    values: F64 | list[Any]
    quality: I16 | None = None
    naive: dict[int, datetime] | None = None

    def __len__(self) -> int:
        return len(self.tags)

    @classmethod
    def from_samples(cls, samples: Sequence[Sample]) -> SampleBatch:
        """Columns of a sequence of ``Sample`` objects."""
        tags = [str(s.tag) for s in samples]
        stamps: list[int] = []
        naive: dict[int, datetime] = {}
        last: datetime | None = None
        us = 0
        for i, s in enumerate(samples):
            ts = s.ts
            if ts is not last:  # samples of one message usually share their timestamp object
                last = ts
                us = 0 if ts.tzinfo is None else (ts - EPOCH) // ONE_US
            if ts.tzinfo is None:
                naive[i] = ts
            stamps.append(us)
        quality = [QUALITY.get(s.quality, 2) for s in samples]
        return cls(
            tags,
            np.array(stamps, np.int64),
            [s.value for s in samples],
            np.array(quality, np.int16) if any(quality) else None,
            naive or None,
        )


@dataclass(slots=True)
class Columns:
    """Accepted points as columns (what the writer queues and the store takes)."""

    tags: list[str]
    ts: I64
    values: F64
    quality: I16

    def points(self) -> list[Point]:
        """The same points as ``Point`` tuples."""
        return list(map(Point, self.tags, self.ts.tolist(), self.values.tolist(), self.quality.tolist()))

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        """One set of columns from several."""
        if len(parts) == 1:
            return parts[0]
        tags: list[str] = []
        for p in parts:
            tags.extend(p.tags)
        return cls(
            tags,
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.quality for p in parts]),
        )


@dataclass(slots=True)
class Submitted:
    """A validated batch in the queue: its result now, and a future set once it is stored."""

    result: IngestResult
    stored: asyncio.Future[None]
