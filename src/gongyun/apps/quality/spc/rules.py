"""Run rules, vectorised: the eight Nelson rules and the four Western Electric rules.

Each rule is evaluated on z = (x - centre) / σ over the whole series at once with cumulative
sums and run lengths (no Python loop over points). A rule marks the point that completes its
pattern, and every later point while the pattern holds; a point with NaN breaks every run.

====  =====================================================================================
N1    one point beyond 3σ
N2    nine points in a row on the same side of the centre line
N3    six points in a row steadily increasing or decreasing
N4    fourteen points in a row alternating up and down
N5    two out of three points in a row beyond 2σ on the same side (the marked one beyond)
N6    four out of five points in a row beyond 1σ on the same side (the marked one beyond)
N7    fifteen points in a row within 1σ of the centre line (either side)
N8    eight points in a row beyond 1σ, on either side
WE1   one point beyond 3σ
WE2   two out of three points in a row beyond 2σ on the same side
WE3   four out of five points in a row beyond 1σ on the same side
WE4   eight points in a row on the same side of the centre line
====  =====================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from gongyun.apps.quality.errors import SpcInputInvalid

ALL_RULES: tuple[str, ...] = (
    "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8", "WE1", "WE2", "WE3", "WE4",
)  # fmt: skip
BIT = {r: 1 << i for i, r in enumerate(ALL_RULES)}
DESCRIPTIONS: dict[str, str] = {
    "N1": "one point beyond 3 sigma",
    "N2": "nine points in a row on one side of the centre line",
    "N3": "six points in a row steadily increasing or decreasing",
    "N4": "fourteen points in a row alternating up and down",
    "N5": "two of three points beyond 2 sigma on one side",
    "N6": "four of five points beyond 1 sigma on one side",
    "N7": "fifteen points in a row within 1 sigma",
    "N8": "eight points in a row beyond 1 sigma on either side",
    "WE1": "one point beyond 3 sigma",
    "WE2": "two of three points beyond 2 sigma on one side",
    "WE3": "four of five points beyond 1 sigma on one side",
    "WE4": "eight points in a row on one side of the centre line",
}


@dataclass(frozen=True)
class RuleSet:
    """Which rules are switched on."""

    enabled: frozenset[str]

    @classmethod
    def of(cls, rules: Iterable[str]) -> RuleSet:
        """A rule set from rule ids; unknown ids are refused."""
        ids = frozenset(rules)
        unknown = sorted(ids - set(ALL_RULES))
        if unknown:
            raise SpcInputInvalid(f"unknown run rule(s): {', '.join(unknown)}", reason="rules")
        return cls(ids)

    @classmethod
    def default(cls) -> RuleSet:
        """The eight Nelson rules."""
        return cls(frozenset(ALL_RULES[:8]))


def run_length(mask: np.ndarray) -> np.ndarray:
    """For each index, how many consecutive True values end there (0 where False)."""
    idx = np.arange(mask.size)
    last_false = np.maximum.accumulate(np.where(mask, -1, idx))
    return np.where(mask, idx - last_false, 0)


def window_count(mask: np.ndarray, w: int) -> np.ndarray:
    """For each index, how many True values in the window of ``w`` points ending there."""
    cs = np.cumsum(mask, dtype=np.int64)
    out = cs.copy()
    out[w:] -= cs[:-w]
    return out


def _k_of_m(z: np.ndarray, k: int, m: int, level: float) -> np.ndarray:
    """k of m in a row beyond ``level`` σ on one side, the marked point itself beyond."""
    hi, lo = z > level, z < -level
    return ((window_count(hi, m) >= k) & hi) | ((window_count(lo, m) >= k) & lo)


def _trend(x: np.ndarray, points: int) -> np.ndarray:
    out = np.zeros(x.size, dtype=bool)
    if x.size < 2:
        return out
    d = np.diff(x)
    need = points - 1
    out[1:] = (run_length(d > 0) >= need) | (run_length(d < 0) >= need)
    return out


def _alternating(x: np.ndarray, points: int) -> np.ndarray:
    out = np.zeros(x.size, dtype=bool)
    if x.size < 3:
        return out
    d = np.diff(x)
    alt = (d[1:] * d[:-1]) < 0  # alt[j-1]: diffs j-1 and j change sign, j = 1..
    out[2:] = run_length(alt) >= points - 2
    return out


def evaluate_rules(
    x: np.ndarray, center: np.ndarray | float, sigma: np.ndarray | float, rules: RuleSet
) -> np.ndarray:
    """A uint16 bit mask per point: bit ``BIT[rule]`` set where that rule is violated."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.size, dtype=np.uint16)
    if x.size == 0:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - center) / sigma
    on = rules.enabled

    def put(rule: str, mask: np.ndarray) -> None:
        out[mask] |= np.uint16(BIT[rule])

    with np.errstate(invalid="ignore"):
        if on & {"N1", "WE1"}:
            m = np.abs(z) > 3
            for r in on & {"N1", "WE1"}:
                put(r, m)
        if on & {"N2", "WE4"}:
            above, below = run_length(z > 0), run_length(z < 0)
            if "N2" in on:
                put("N2", (above >= 9) | (below >= 9))
            if "WE4" in on:
                put("WE4", (above >= 8) | (below >= 8))
        if "N3" in on:
            put("N3", _trend(x, 6))
        if "N4" in on:
            put("N4", _alternating(x, 14))
        if on & {"N5", "WE2"}:
            m = _k_of_m(z, 2, 3, 2.0)
            for r in on & {"N5", "WE2"}:
                put(r, m)
        if on & {"N6", "WE3"}:
            m = _k_of_m(z, 4, 5, 1.0)
            for r in on & {"N6", "WE3"}:
                put(r, m)
        if "N7" in on:
            put("N7", run_length(np.abs(z) < 1) >= 15)
        if "N8" in on:
            put("N8", run_length(np.abs(z) > 1) >= 8)
    return out


def names(mask: int) -> list[str]:
    """The rule ids set in one point's bit mask."""
    return [r for r in ALL_RULES if mask & BIT[r]]
