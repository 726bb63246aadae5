"""Features of engine histories for RUL models: windowed statistics and trends per cycle.

Every row (cycle) of a unit gets features computed only from that unit's cycles up to it: so a
history cut short gets, at its last cycle, exactly the features a full history had at that cycle.
Windows shorter than ``window`` are used at the start of a history (expanding, then rolling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.apps.maintenance.cmapss import Histories, constant_columns

Array = npt.NDArray[np.float64]


@dataclass
class Normaliser:
    """Per operating condition (or global) mean and spread of each sensor, learned on training data."""

    sensors: tuple[str, ...]
    keys: list[list[float]] = field(default_factory=list)  # condition keys (rounded settings)
    mean: list[list[float]] = field(default_factory=list)  # one row per key
    std: list[list[float]] = field(default_factory=list)

    @staticmethod
    def condition_keys(settings: Array) -> Array:
        """Operating conditions: the settings rounded (altitude, Mach number, throttle angle)."""
        return np.column_stack(
            [np.round(settings[:, 0]), np.round(settings[:, 1], 2), np.round(settings[:, 2])]
        )

    @classmethod
    def fit(
        cls, settings: Array, values: Array, sensors: tuple[str, ...], max_conditions: int = 10
    ) -> Normaliser:
        """Normalise per condition when there are 2..``max_conditions`` frequent ones, else globally."""
        keys = cls.condition_keys(settings)
        uniq, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        norm = cls(sensors)
        if 1 < len(uniq) <= max_conditions and counts.min() >= 50:
            for k in range(len(uniq)):
                rows = values[inverse.ravel() == k]
                norm.keys.append([float(x) for x in uniq[k]])
                norm.mean.append(rows.mean(axis=0).tolist())
                norm.std.append(np.maximum(rows.std(axis=0), 1e-9).tolist())
        else:
            norm.mean.append(values.mean(axis=0).tolist())
            norm.std.append(np.maximum(values.std(axis=0), 1e-9).tolist())
        return norm

    def apply(self, settings: Array, values: Array) -> Array:
        """Standardised values; a row of an unknown condition uses the nearest known one."""
        mean = np.asarray(self.mean)
        std = np.asarray(self.std)
        if not self.keys:
            return np.asarray((values - mean[0]) / std[0], dtype=np.float64)
        keys = self.condition_keys(settings)
        known = np.asarray(self.keys)
        scale = np.maximum(np.abs(known).max(axis=0), 1e-9)
        dist = (((keys[:, None, :] - known[None, :, :]) / scale) ** 2).sum(axis=2)
        idx = dist.argmin(axis=1)
        return np.asarray((values - mean[idx]) / std[idx], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {"sensors": list(self.sensors), "keys": self.keys, "mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Normaliser:
        """Inverse of ``to_json``."""
        return cls(tuple(d["sensors"]), d["keys"], d["mean"], d["std"])


def informative_sensors(h: Histories, min_distinct: int = 3) -> list[str]:
    """Sensors that vary: not constant and with at least ``min_distinct`` distinct values."""
    constant = set(constant_columns(h.sensors, h.sensor_names))
    out = []
    for j, name in enumerate(h.sensor_names):
        if name in constant:
            continue
        if len(np.unique(h.sensors[:, j])) < min_distinct:
            continue
        out.append(name)
    return out


def _rolling(x: Array, w: int) -> tuple[Array, Array, Array]:
    """Trailing mean, std and least-squares slope over the last ``w`` rows (fewer at the start)."""
    n, m = x.shape
    t = np.arange(n, dtype=np.float64)[:, None]
    zero = np.zeros((1, m))
    c1 = np.vstack([zero, np.cumsum(x, axis=0)])
    c2 = np.vstack([zero, np.cumsum(x * x, axis=0)])
    ct = np.vstack([zero, np.cumsum(x * t, axis=0)])
    end = np.arange(1, n + 1)
    start = np.maximum(0, end - w)
    k = (end - start).astype(np.float64)[:, None]
    s1 = c1[end] - c1[start]
    s2 = c2[end] - c2[start]
    st = ct[end] - ct[start]
    mean = s1 / k
    var = np.maximum(s2 / k - mean * mean, 0.0)
    # time index sums over [start, end)
    a = start.astype(np.float64)[:, None]
    b = end.astype(np.float64)[:, None] - 1
    sum_t = (a + b) * k / 2
    mean_t = sum_t / k
    var_t = ((k * k - 1) / 12).clip(min=1e-9)
    slope = (st / k - mean_t * mean) / var_t
    slope[k[:, 0] < 3] = 0.0
    return mean, np.sqrt(var), slope


def _ewm(x: Array, alpha: float) -> Array:
    out = np.empty_like(x)
    acc = x[0].copy()
    for i in range(len(x)):
        acc = alpha * x[i] + (1 - alpha) * acc
        out[i] = acc
    return out


def _baseline(x: Array, n0: int) -> Array:
    """Mean of the first ``min(n0, i+1)`` rows, at each row i."""
    c = np.cumsum(x, axis=0)
    idx = np.minimum(np.arange(len(x)), n0 - 1)
    return np.asarray(c[idx] / (idx + 1)[:, None], dtype=np.float64)


@dataclass(frozen=True)
class FeatureSpec:
    """How features are made (stored with a model)."""

    window: int = 30
    long_window: int = 60
    baseline: int = 15
    ewm_alpha: float = 0.1

    def names(self, sensors: list[str]) -> list[str]:
        """Feature names in column order."""
        out = ["cycle"]
        for kind in ("last", "mean", "std", "slope", "mean_long", "slope_long", "ewm", "delta_base"):
            out += [f"{s}:{kind}" for s in sensors]
        out += ["hi:mean", "hi:slope"]
        return out


def unit_features(z: Array, cycles: npt.NDArray[np.int64], spec: FeatureSpec) -> Array:
    """Features of one unit's standardised sensors ``z`` (rows = cycles)."""
    mean, std, slope = _rolling(z, spec.window)
    mean_l, _, slope_l = _rolling(z, spec.long_window)
    ewm = _ewm(z, spec.ewm_alpha)
    base = _baseline(z, spec.baseline)
    # A crude health indicator: the mean of sensors' drift, each signed by its own trend direction.
    hi_src = mean - base
    hi = hi_src.mean(axis=1, keepdims=True) if hi_src.shape[1] else np.zeros((len(z), 1))
    hi_mean, _, hi_slope = _rolling(np.abs(hi_src).mean(axis=1, keepdims=True), spec.window)
    del hi
    return np.hstack(
        [
            cycles.astype(np.float64)[:, None],
            z,
            mean,
            std,
            slope,
            mean_l,
            slope_l,
            ewm,
            mean - base,
            hi_mean,
            hi_slope,
        ]
    )


def build(h: Histories, sensors: list[str], norm: Normaliser, spec: FeatureSpec) -> Array:
    """Feature matrix of every row of ``h``, using ``sensors`` normalised by ``norm``."""
    cols = [h.sensor_names.index(s) for s in sensors]
    z = norm.apply(h.settings, h.sensors[:, cols])
    out = np.empty((len(z), len(spec.names(sensors))), dtype=np.float64)
    for sl in h.unit_slices().values():
        out[sl] = unit_features(z[sl], h.cycles[sl], spec)
    return out
