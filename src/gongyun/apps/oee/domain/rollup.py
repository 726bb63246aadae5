"""Timelines and counts from the store's rollups, refined only where a bucket is mixed.

A month at 1 Hz is 2.6 M samples per tag; its 1-hour rollups are 720 rows. An hour whose
samples all map to one state (min and max classify alike) and that is fully covered becomes
one segment; any other hour is read again as 1-minute rollups, and only the minutes that are
still mixed or partly covered are read raw. Counters use the rollups' first and last values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from gongyun.apps.oee.domain.machine import Counter
from gongyun.apps.oee.domain.states import StateMapping, Timeline, derive_timeline

US = 1_000_000
WIDTH = {"1h": 3600 * US, "1m": 60 * US}
Resolution = Literal["1h", "1m"]


@dataclass(frozen=True)
class Buckets:
    """Rollup rows of one tag: bucket start (µs), count, min, max, first, last (empty buckets left out)."""

    start: np.ndarray
    count: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first: np.ndarray
    last: np.ndarray
    avg: np.ndarray | None = None


class RollupReader(Protocol):
    """Where the rollups and raw points of a tenant's tags come from."""

    async def buckets(self, tag: str, start: int, end: int, resolution: Resolution) -> Buckets:
        """Rollup rows of [start, end) (bucket-aligned)."""

    async def raw(self, tag: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw (timestamps µs, values) of [start, end)."""


@dataclass
class ReadStats:
    """How much was read at each resolution (to show that long ranges stay on rollups)."""

    hour_rows: int = 0
    minute_rows: int = 0
    raw_points: int = 0
    raw_reads: int = 0


def _ranges(starts: np.ndarray, width: int) -> list[tuple[int, int]]:
    """Contiguous [a, b) ranges covering the buckets that start at ``starts``."""
    if starts.size == 0:
        return []
    s = np.sort(starts)
    brk = np.flatnonzero(np.diff(s) != width)
    firsts = np.concatenate([[s[0]], s[brk + 1]])
    lasts = np.concatenate([s[brk], [s[-1]]])
    return [(int(a), int(b) + width) for a, b in zip(firsts, lasts, strict=True)]


def _pure(mapping: StateMapping, b: Buckets, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Which buckets are one state throughout and fully covered, and that state."""
    smin, smax = mapping.classify(b.min), mapping.classify(b.max)
    full = b.count * mapping.sample_period_s * US >= width
    same = (smin == smax) & ((b.min == b.max) | (mapping.mode != "state_tag"))
    return same & full, smin


def _flag_placed(mapping: StateMapping, b: Buckets, avg: np.ndarray, width: int) -> Timeline:
    """Mixed buckets of a 0/1 running flag laid out exactly in duration: running seconds are
    avg·count·period, the rest of the covered time stopped, placed by the first and last values
    (a stop that starts in one bucket and ends in the next joins up); uncovered time is left out."""
    period = int(mapping.sample_period_s * US)
    covered = np.minimum(b.count.astype(np.int64) * period, width)
    run = np.rint(avg * b.count * period).astype(np.int64)
    run = np.minimum(run, covered)
    stop = covered - run
    starts, ends, states = [], [], []
    r, s_ = int(mapping.classify(np.array([1.0]))[0]), int(mapping.stopped_state)
    for i in range(b.start.size):
        t, ru, st = int(b.start[i]), int(run[i]), int(stop[i])
        first_run, last_run = b.first[i] != 0, b.last[i] != 0
        if first_run and not last_run:
            parts = [(ru, r), (st, s_)]
        elif last_run and not first_run:
            parts = [(st, s_), (ru, r)]
        elif first_run:
            parts = [(ru // 2, r), (st, s_), (ru - ru // 2, r)]
        else:
            parts = [(st // 2, s_), (ru, r), (st - st // 2, s_)]
        for length, state in parts:
            if length > 0:
                starts.append(t)
                ends.append(t + length)
                states.append(state)
                t += length
    return Timeline(np.array(starts, np.int64), np.array(ends, np.int64), np.array(states, np.int8))


def _is_flag(mapping: StateMapping, b: Buckets) -> np.ndarray:
    return np.asarray((mapping.mode == "running_flag") & (b.min >= 0) & (b.max <= 1))


def _contains_edge(starts: np.ndarray, width: int, edges: np.ndarray) -> np.ndarray:
    inner = edges[(edges % width) != 0] // width * width
    return np.isin(starts, inner)


async def timeline_from_rollups(
    reader: RollupReader,
    mapping: StateMapping,
    start: int,
    end: int,
    stats: ReadStats | None = None,
    edges: Sequence[int] = (),
) -> Timeline:
    """The state timeline of [start, end) from 1 h rollups, refined to 1 min and raw where needed.

    A running flag's mixed hour is laid out from its average (exact in duration) unless it holds
    one of ``edges`` (a shift or break boundary), which is refined to minutes; a mixed minute of
    a flag is laid out the same way. Other mappings refine mixed hours to minutes and mixed
    minutes to raw points.
    """
    st = stats if stats is not None else ReadStats()
    if mapping.uses_increments:
        return await _counts_timeline(reader, mapping, start, end, st)
    h, m = WIDTH["1h"], WIDTH["1m"]
    e = np.asarray(sorted(edges), dtype=np.int64)
    a, b = start // h * h, -(-end // h) * h
    hours = await reader.buckets(mapping.tag, a, b, "1h")
    st.hour_rows += int(hours.start.size)
    pure, state = _pure(mapping, hours, h)
    parts = [Timeline(hours.start[pure], hours.start[pure] + h, state[pure])]
    full = hours.count * mapping.sample_period_s * US >= h
    # a partly covered hour is refined: where its gap lies matters for the timeline
    flag = _is_flag(mapping, hours) & ~pure & full & ~_contains_edge(hours.start, h, e)
    if np.any(flag):
        parts.append(_flag_placed(mapping, _take(hours, flag), _avg(hours, flag), h))
    need = ~pure & ~flag
    if np.any(need):
        ha, hb = int(hours.start[need].min()), int(hours.start[need].max()) + h
        mins = await reader.buckets(mapping.tag, ha, hb, "1m")
        st.minute_rows += int(mins.start.size)
        mins = _take(mins, np.isin(mins.start // h * h, hours.start[need]))
        mpure, mstate = _pure(mapping, mins, m)
        parts.append(Timeline(mins.start[mpure], mins.start[mpure] + m, mstate[mpure]))
        mflag = _is_flag(mapping, mins) & ~mpure
        if np.any(mflag):
            parts.append(_flag_placed(mapping, _take(mins, mflag), _avg(mins, mflag), m))
        for xa, xb in _ranges(mins.start[~mpure & ~mflag], m):
            ts, vals = await reader.raw(mapping.tag, xa, xb)
            st.raw_points += int(ts.size)
            st.raw_reads += 1
            parts.append(_cut(derive_timeline(mapping, ts, vals), xa, xb))
    whole = Timeline.concat(parts)
    s, e2, states = whole.clip(start, end)
    return Timeline(s, e2, states)


def _take(b: Buckets, mask: np.ndarray) -> Buckets:
    return Buckets(
        b.start[mask],
        b.count[mask],
        b.min[mask],
        b.max[mask],
        b.first[mask],
        b.last[mask],
        None if b.avg is None else b.avg[mask],
    )


def _avg(b: Buckets, mask: np.ndarray) -> np.ndarray:
    if b.avg is None:
        raise ValueError("this reader gives no averages")
    return np.asarray(b.avg[mask])


def _cut(t: Timeline, a: int, b: int) -> Timeline:
    s, e, st = t.clip(a, b)
    return Timeline(s, e, st)


async def _counts_timeline(
    reader: RollupReader, mapping: StateMapping, start: int, end: int, st: ReadStats
) -> Timeline:
    """Counts mode, to the minute: a minute whose counter rose is running, else stopped."""
    m = WIDTH["1m"]
    a, b = start // m * m, -(-end // m) * m
    mins = await reader.buckets(mapping.tag, a, b, "1m")
    st.minute_rows += int(mins.start.size)
    if mins.start.size == 0:
        return Timeline.empty()
    prev_last = np.concatenate([[mins.first[0]], mins.last[:-1]])
    rose = (mins.last > mins.first) | (mins.first > prev_last)
    states = mapping.classify(rose.astype(np.float64))
    return _cut(Timeline(mins.start, mins.start + m, states).merged(), start, end)


def _increments(b: Buckets, prev_last: float | None) -> np.ndarray:
    inside = np.maximum(b.last - b.first, 0.0)
    before = np.concatenate([[b.first[0] if prev_last is None else prev_last], b.last[:-1]])
    between = b.first - before
    # a drop between buckets is a reset: the new bucket's first reading counts from 0
    return np.asarray(inside + np.where(between >= 0, between, b.first))


async def counter_from_rollups(
    reader: RollupReader,
    tag: str,
    start: int,
    end: int,
    edges: Sequence[int] = (),
    stats: ReadStats | None = None,
) -> Counter:
    """A counter's increments per bucket (attributed to the bucket's start): 1 h rollups, and 1 min
    rollups for the hours that contain one of ``edges`` (window boundaries), so that a window's
    total is exact to the minute."""
    st = stats if stats is not None else ReadStats()
    h = WIDTH["1h"]
    a, b = start // h * h, -(-end // h) * h
    hours = await reader.buckets(tag, a, b, "1h")
    st.hour_rows += int(hours.start.size)
    if hours.start.size == 0:
        return Counter.empty()
    e = np.asarray(sorted(edges), dtype=np.int64)
    cut = e[(e % h) != 0] // h * h
    split = np.isin(hours.start, cut)
    inc = _increments(hours, None)
    ts_parts, inc_parts = [hours.start[~split]], [inc[~split]]
    if np.any(split):
        # one read of the minutes under every split hour; the increment into a split hour's
        # first minute comes from the previous bucket's last reading
        ha, hb = int(hours.start[split].min()), int(hours.start[split].max()) + h
        mins = await reader.buckets(tag, ha, hb, "1m")
        st.minute_rows += int(mins.start.size)
        if mins.start.size:
            idx = np.searchsorted(hours.start, ha)
            prev = float(hours.last[idx - 1]) if idx > 0 else None
            minc = _increments(mins, prev)
            keep = np.isin(mins.start // h * h, hours.start[split])
            # a kept minute right after a dropped stretch: its increment from the hour before
            hour_of = mins.start // h * h
            after_gap = keep & np.concatenate([[True], ~keep[:-1]])
            for i in np.flatnonzero(after_gap):
                j = int(np.searchsorted(hours.start, hour_of[i]))
                before = float(hours.last[j - 1]) if j > 0 else float(mins.first[i])
                rise = float(mins.first[i]) - before
                minc[i] = max(float(mins.last[i] - mins.first[i]), 0.0) + (
                    rise if rise >= 0 else float(mins.first[i])
                )
            ts_parts.append(mins.start[keep])
            inc_parts.append(minc[keep])
    ts = np.concatenate(ts_parts)
    order = np.argsort(ts, kind="stable")
    return Counter(ts[order], np.concatenate(inc_parts)[order])
