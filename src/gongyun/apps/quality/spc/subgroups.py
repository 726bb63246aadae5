"""Subgroups: measurements grouped by count, by time window or by lot, as a NaN-padded matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gongyun.apps.quality.errors import SpcInputInvalid


@dataclass(frozen=True)
class Subgroups:
    """``values[i, :sizes[i]]`` are the measurements of subgroup ``i`` (NaN past the end)."""

    values: np.ndarray
    sizes: np.ndarray
    keys: list[str]
    starts: np.ndarray | None = None  # first timestamp of each subgroup (µs), when known
    stats: tuple[np.ndarray, np.ndarray] | None = None  # (means, ranges) given instead of values

    @classmethod
    def from_stats(
        cls, means: np.ndarray, ranges: np.ndarray, sizes: np.ndarray, keys: list[str], starts: np.ndarray
    ) -> Subgroups:
        """Subgroups known only by mean, range and size (time windows read from the store's rollups)."""
        k = int(np.asarray(sizes).size)
        return cls(
            np.empty((k, 0)),
            np.asarray(sizes),
            keys,
            np.asarray(starts),
            (np.asarray(means), np.asarray(ranges)),
        )

    def __len__(self) -> int:
        return int(self.sizes.size)

    @property
    def means(self) -> np.ndarray:
        """Subgroup averages."""
        if self.stats is not None:
            return self.stats[0]
        if len(self) == 0:
            return np.empty(0)
        return np.asarray(np.nanmean(self.values, axis=1))

    @property
    def ranges(self) -> np.ndarray:
        """Subgroup ranges."""
        if self.stats is not None:
            return self.stats[1]
        if len(self) == 0:
            return np.empty(0)
        return np.asarray(np.nanmax(self.values, axis=1) - np.nanmin(self.values, axis=1))

    @property
    def stdevs(self) -> np.ndarray:
        """Subgroup standard deviations (n - 1 in the denominator)."""
        if self.stats is not None:
            raise SpcInputInvalid(
                "standard deviations need the measurements, not rollups", reason="data_kind"
            )
        if len(self) == 0:
            return np.empty(0)
        m = self.means[:, None]
        ss = np.nansum((self.values - m) ** 2, axis=1)
        return np.asarray(np.sqrt(ss / np.maximum(self.sizes - 1, 1)))

    def constant_size(self) -> int | None:
        """The common size of every subgroup, or None when they differ (or there are none)."""
        if len(self) == 0 or np.any(self.sizes != self.sizes[0]):
            return None
        return int(self.sizes[0])


def _checked(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise SpcInputInvalid("measurements must be a flat sequence of numbers", reason="shape")
    if not np.all(np.isfinite(arr)):
        raise SpcInputInvalid("measurements must be finite numbers", reason="not_finite")
    return arr


def _pack(groups: np.ndarray, order: np.ndarray, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the NaN-padded matrix from a group index per value (values kept in their order)."""
    ngroups = int(groups.max()) + 1 if groups.size else 0
    sizes = np.bincount(groups, minlength=ngroups)
    if ngroups == 0:
        return np.empty((0, 0)), sizes
    g = groups[order]
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(g.size) - first[g]
    out = np.full((ngroups, int(sizes.max())), np.nan)
    out[g, pos] = arr[order]
    return out, sizes


def by_count(values: Sequence[float] | np.ndarray, n: int) -> Subgroups:
    """Consecutive groups of ``n`` (an incomplete last group is left out until it fills)."""
    arr = _checked(values)
    if n < 1:
        raise SpcInputInvalid("subgroup size must be at least 1", reason="subgroup_size")
    k = arr.size // n
    mat = arr[: k * n].reshape(k, n)
    return Subgroups(mat.copy(), np.full(k, n), [str(i) for i in range(k)])


def by_time_window(
    ts_us: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray, window_s: float
) -> Subgroups:
    """One subgroup per time window (aligned to the epoch) that has at least one value."""
    arr = _checked(values)
    ts = np.asarray(ts_us, dtype=np.int64)
    if ts.shape != arr.shape:
        raise SpcInputInvalid("timestamps and values differ in length", reason="shape")
    if window_s <= 0:
        raise SpcInputInvalid("the time window must be positive", reason="window")
    width = int(window_s * 1_000_000)
    win = ts // width
    uniq, groups = np.unique(win, return_inverse=True)
    order = np.argsort(groups, kind="stable")
    mat, sizes = _pack(groups, order, arr)
    return Subgroups(mat, sizes, [str(int(u) * width) for u in uniq], uniq * width)


def by_lot(lots: Sequence[str], values: Sequence[float] | np.ndarray) -> Subgroups:
    """One subgroup per lot identifier, in the order lots first appear."""
    arr = _checked(values)
    if len(lots) != arr.size:
        raise SpcInputInvalid("lot identifiers and values differ in length", reason="shape")
    if arr.size == 0:
        return Subgroups(np.empty((0, 0)), np.zeros(0, np.int64), [])
    names, first, inverse = np.unique(
        np.asarray(lots, dtype=object).astype(str), return_index=True, return_inverse=True
    )
    appear = np.argsort(first, kind="stable")  # lots in the order they first appear
    rank = np.empty(appear.size, np.int64)
    rank[appear] = np.arange(appear.size)
    groups = rank[inverse.ravel()]
    order = np.argsort(groups, kind="stable")
    mat, sizes = _pack(groups, order, arr)
    return Subgroups(mat, sizes, [str(k) for k in names[appear]])


def from_rows(rows: Sequence[Sequence[float]], keys: Sequence[str] | None = None) -> Subgroups:
    """Subgroups given row by row (rows may differ in length)."""
    sizes = np.array([len(r) for r in rows], dtype=np.int64)
    width = int(sizes.max()) if sizes.size else 0
    mat = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        mat[i, : len(r)] = _checked(list(r))
    return Subgroups(mat, sizes, list(keys) if keys is not None else [str(i) for i in range(len(rows))])
