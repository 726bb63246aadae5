"""Data cleaning (工业大数据清洗), configurable per tag, with a report of every change and why.

Steps, in order: duplicates and out-of-order samples; unit normalisation (pint); quality
filter; range filter; Hampel spike removal; stuck-sensor detection; gap detection; and,
only when asked, linear interpolation across gaps (interpolated points carry a flag).
The raw series is never touched: the result is written as the tag's ``clean`` series.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, model_validator

from gongyun.core.jsonnum import JsonInt
from gongyun.telemetry.store.base import (
    FLAG_INTERPOLATED,
    QUALITY_CODES,
    US,
    Point,
    TimeSeriesStore,
    from_us,
)
from gongyun.telemetry.units import converter

FLAG_STUCK = 2
FLAG_SPIKE_REPLACED = 4
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of sigma for normal noise


class CleaningConfig(BaseModel):
    """Per-tag cleaning settings (every step is off unless configured, except de-duplication)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dedupe: StrictBool = True
    unit_from: str | None = None
    unit_to: str | None = None
    min_quality: Literal["good", "uncertain", "bad"] = "uncertain"
    low: StrictFloat | None = None
    high: StrictFloat | None = None
    hampel_half_window: JsonInt = Field(default=0, ge=0, le=500)
    hampel_sigmas: StrictFloat = Field(default=3.0, gt=0)
    hampel_min_deviation: StrictFloat = Field(default=0.0, ge=0)
    spike_action: Literal["replace", "drop"] = "replace"
    stuck_min_duration_s: StrictFloat | None = Field(default=None, gt=0)
    stuck_min_count: JsonInt = Field(default=3, ge=2)
    stuck_tolerance: StrictFloat = Field(default=0.0, ge=0)
    stuck_action: Literal["flag", "drop"] = "flag"
    gap_threshold_s: StrictFloat | None = Field(default=None, gt=0)
    interpolate: Literal["none", "linear"] = "none"
    interpolate_period_s: StrictFloat | None = Field(default=None, gt=0)
    interpolate_max_gap_s: StrictFloat | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> CleaningConfig:
        if (self.unit_from is None) != (self.unit_to is None):
            raise ValueError("unit_from and unit_to go together")
        if self.unit_from and self.unit_to:
            converter(self.unit_from, self.unit_to)  # raises UnitError for bad units
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low must not exceed high")
        if self.interpolate == "linear" and (
            self.interpolate_period_s is None or self.gap_threshold_s is None
        ):
            raise ValueError("linear interpolation needs gap_threshold_s and interpolate_period_s")
        return self


@dataclass(frozen=True, slots=True)
class Change:
    """One thing cleaning did to one sample."""

    ts: int
    action: Literal["dropped", "replaced", "flagged", "interpolated", "converted"]
    reason: str
    old: float | None
    new: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "ts": from_us(self.ts).isoformat(),
            "action": self.action,
            "reason": self.reason,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True, slots=True)
class Period:
    """A stretch of time found by a detector (a gap, or a stuck sensor at ``value``)."""

    start: int
    end: int
    count: int = 0
    value: float | None = None

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return (self.end - self.start) / US

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "start": from_us(self.start).isoformat(),
            "end": from_us(self.end).isoformat(),
            "duration_s": self.duration_s,
            "count": self.count,
            "value": self.value,
        }


@dataclass(slots=True)
class CleaningReport:
    """What cleaning changed in one tag's series, and why."""

    tag: str
    input_count: int = 0
    output_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    gaps: list[Period] = field(default_factory=list)
    stuck: list[Period] = field(default_factory=list)

    def note(self, change: Change) -> None:
        """Record one change and count its reason."""
        if change.action != "converted":
            self.changes.append(change)
        self.counts[change.reason] = self.counts.get(change.reason, 0) + 1

    def to_dict(self, max_changes: int = 1000) -> dict[str, Any]:
        """JSON-friendly form (the change list capped)."""
        return {
            "tag": self.tag,
            "input_count": self.input_count,
            "output_count": self.output_count,
            "counts": dict(self.counts),
            "changes": [c.to_dict() for c in self.changes[:max_changes]],
            "changes_truncated": len(self.changes) > max_changes,
            "gaps": [g.to_dict() for g in self.gaps],
            "stuck": [s.to_dict() for s in self.stuck],
        }


def clean(tag: str, points: list[Point], cfg: CleaningConfig) -> tuple[list[Point], CleaningReport]:
    """Clean one tag's points (in arrival order); return the cleaned series and the report."""
    rep = CleaningReport(tag, input_count=len(points))
    pts = _order(points, cfg, rep)
    if cfg.unit_from and cfg.unit_to and cfg.unit_from != cfg.unit_to:
        conv = converter(cfg.unit_from, cfg.unit_to)
        pts = [p._replace(value=conv(p.value)) for p in pts]
        rep.counts["unit_converted"] = len(pts)
    limit = QUALITY_CODES[cfg.min_quality]
    kept: list[Point] = []
    for p in pts:
        if p.quality > limit:
            rep.note(Change(p.ts, "dropped", "bad_quality", p.value, None))
        elif (cfg.low is not None and p.value < cfg.low) or (cfg.high is not None and p.value > cfg.high):
            rep.note(Change(p.ts, "dropped", "out_of_range", p.value, None))
        else:
            kept.append(p)
    if cfg.hampel_half_window:
        kept = _hampel(kept, cfg, rep)
    if cfg.stuck_min_duration_s is not None:
        kept = _stuck(kept, cfg, rep)
    if cfg.gap_threshold_s is not None:
        rep.gaps = find_gaps([p.ts for p in kept], cfg.gap_threshold_s)
        if cfg.interpolate == "linear":
            kept = _interpolate(kept, rep.gaps, cfg, rep)
    rep.output_count = len(kept)
    return kept, rep


def _order(points: list[Point], cfg: CleaningConfig, rep: CleaningReport) -> list[Point]:
    last_ts: int | None = None
    by_ts: dict[int, Point] = {}
    for p in points:
        if last_ts is not None and p.ts < last_ts:
            rep.counts["out_of_order"] = rep.counts.get("out_of_order", 0) + 1
        last_ts = p.ts if last_ts is None else max(last_ts, p.ts)
        if cfg.dedupe and p.ts in by_ts:
            old = by_ts[p.ts]
            rep.note(Change(p.ts, "dropped", "duplicate", old.value, p.value))
        by_ts[p.ts] = p
    if not cfg.dedupe:
        return sorted(points, key=lambda p: p.ts)
    return [by_ts[t] for t in sorted(by_ts)]


def hampel_outliers(
    x: np.ndarray, k: int, sigmas: float, min_dev: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Hampel filter: a boolean mask of outliers and the window medians (windows of 2k+1)."""
    n = len(x)
    med = np.empty(n)
    mad = np.empty(n)
    if n >= 2 * k + 1:
        win = np.lib.stride_tricks.sliding_window_view(x, 2 * k + 1)
        m = np.median(win, axis=1)
        med[k : n - k] = m
        mad[k : n - k] = np.median(np.abs(win - m[:, None]), axis=1)
        edges = [*range(k), *range(n - k, n)]
    else:
        edges = list(range(n))
    for i in edges:  # truncated windows at both ends
        w = x[max(0, i - k) : i + k + 1]
        med[i] = np.median(w)
        mad[i] = np.median(np.abs(w - med[i]))
    dev = np.abs(x - med)
    return (dev > sigmas * MAD_SCALE * mad) & (dev > min_dev), med


def _hampel(pts: list[Point], cfg: CleaningConfig, rep: CleaningReport) -> list[Point]:
    if len(pts) < 3:
        return pts
    x = np.fromiter((p.value for p in pts), float, len(pts))
    mask, med = hampel_outliers(x, cfg.hampel_half_window, cfg.hampel_sigmas, cfg.hampel_min_deviation)
    out: list[Point] = []
    for p, bad, m in zip(pts, mask.tolist(), med.tolist(), strict=True):
        if not bad:
            out.append(p)
        elif cfg.spike_action == "replace":
            rep.note(Change(p.ts, "replaced", "spike", p.value, m))
            out.append(p._replace(value=m, flags=p.flags | FLAG_SPIKE_REPLACED))
        else:
            rep.note(Change(p.ts, "dropped", "spike", p.value, None))
    return out


def find_stuck(pts: list[Point], min_duration_s: float, min_count: int, tol: float) -> list[Period]:
    """Runs of values within ``tol`` of the run's first value lasting long enough."""
    found: list[Period] = []
    i, n = 0, len(pts)
    while i < n:
        j = i
        while j + 1 < n and abs(pts[j + 1].value - pts[i].value) <= tol:
            j += 1
        count = j - i + 1
        if count >= min_count and (pts[j].ts - pts[i].ts) / US >= min_duration_s:
            found.append(Period(pts[i].ts, pts[j].ts, count, pts[i].value))
        i = j + 1
    return found


def _stuck(pts: list[Point], cfg: CleaningConfig, rep: CleaningReport) -> list[Point]:
    assert cfg.stuck_min_duration_s is not None
    rep.stuck = find_stuck(pts, cfg.stuck_min_duration_s, cfg.stuck_min_count, cfg.stuck_tolerance)
    if not rep.stuck:
        return pts
    out: list[Point] = []
    k = 0
    for p in pts:
        while k < len(rep.stuck) and rep.stuck[k].end < p.ts:
            k += 1
        inside = k < len(rep.stuck) and rep.stuck[k].start <= p.ts <= rep.stuck[k].end
        if not inside:
            out.append(p)
        elif cfg.stuck_action == "flag":
            rep.note(Change(p.ts, "flagged", "stuck", p.value, p.value))
            out.append(p._replace(flags=p.flags | FLAG_STUCK))
        else:
            rep.note(Change(p.ts, "dropped", "stuck", p.value, None))
    return out


def find_gaps(ts: list[int], threshold_s: float) -> list[Period]:
    """Intervals between consecutive timestamps longer than ``threshold_s``."""
    limit = int(threshold_s * US)
    return [Period(a, b) for a, b in itertools.pairwise(ts) if b - a > limit]


def _interpolate(
    pts: list[Point], gaps: list[Period], cfg: CleaningConfig, rep: CleaningReport
) -> list[Point]:
    assert cfg.interpolate_period_s is not None
    step = int(cfg.interpolate_period_s * US)
    max_gap = None if cfg.interpolate_max_gap_s is None else int(cfg.interpolate_max_gap_s * US)
    by_start = {g.start: g for g in gaps if max_gap is None or g.end - g.start <= max_gap}
    out: list[Point] = []
    for i, p in enumerate(pts):
        out.append(p)
        gap = by_start.get(p.ts)
        if gap is None or i + 1 >= len(pts):
            continue
        nxt = pts[i + 1]
        t = p.ts + step
        while t < nxt.ts:
            v = p.value + (nxt.value - p.value) * (t - p.ts) / (nxt.ts - p.ts)
            rep.note(Change(t, "interpolated", "gap", None, v))
            out.append(Point(p.tag, t, v, max(p.quality, nxt.quality), FLAG_INTERPOLATED))
            t += step
    return out


async def clean_range(
    store: TimeSeriesStore, tenant: str, tag: str, start: int, end: int, *, cfg: CleaningConfig
) -> CleaningReport:
    """Clean one tag's raw [start, end) and replace its clean series over that range."""
    raw = await store.raw(tenant, tag, start, end)
    cleaned, rep = clean(tag, raw, cfg)
    await store.delete(tenant, tag, start, end, series="clean")
    await store.write(tenant, cleaned, series="clean")
    return rep
