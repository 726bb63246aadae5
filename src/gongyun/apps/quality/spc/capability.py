"""Process capability: Cp, Cpk, Pp, Ppk, Cpm with confidence intervals, expected fraction out of
specification, a histogram with the fitted normal curve, and an Anderson-Darling normality check.

Within-subgroup σ (for Cp, Cpk) is given by the caller (R̄/d2, S̄/c4 or MR̄/d2 from the chart's
limits) or, without one, taken as the overall σ. Overall σ (for Pp, Ppk, Cpm) is the sample
standard deviation. Intervals (two-sided, ``confidence``):

- Cp, Pp: chi-square, Ĉ·√(χ²_{α/2,ν}/ν) .. Ĉ·√(χ²_{1-α/2,ν}/ν), ν = N - 1
- Cpk, Ppk: Bissell (1990), Ĉ ∓ z_{1-α/2}·√(1/(9N) + Ĉ²/(2(N-1)))
- Cpm: Boyles (1991), chi-square with ν* = N(1+a²)²/(1+2a²), a = (x̄ - T)/s
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gongyun.apps.quality.errors import SpcInputInvalid

NORMALITY_ALPHA = 0.05


@dataclass(frozen=True)
class Index:
    """One capability index and its confidence interval (None where it is undefined)."""

    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        """JSON-able."""
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Capability:
    """A capability study."""

    n: int
    mean: float
    sigma_within: float
    sigma_overall: float
    lsl: float | None
    usl: float | None
    target: float | None
    confidence: float
    cp: Index
    cpk: Index
    pp: Index
    ppk: Index
    cpm: Index
    ppm_within: float
    ppm_overall: float
    normality_statistic: float
    normality_p: float
    normal: bool
    histogram: dict[str, list[float]] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """True when normality is rejected: the indices assume a normal process."""
        return not self.normal

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "n": self.n,
            "mean": self.mean,
            "sigma_within": self.sigma_within,
            "sigma_overall": self.sigma_overall,
            "lsl": self.lsl,
            "usl": self.usl,
            "target": self.target,
            "confidence": self.confidence,
            **{k: getattr(self, k).as_dict() for k in ("cp", "cpk", "pp", "ppk", "cpm")},
            "ppm_within": self.ppm_within,
            "ppm_overall": self.ppm_overall,
            "normality": {
                "test": "anderson-darling",
                "statistic": self.normality_statistic,
                "p_value": self.normality_p,
                "normal": self.normal,
            },
            "flagged": self.flagged,
            "histogram": self.histogram,
        }


def anderson_darling(x: np.ndarray) -> tuple[float, float]:
    """The A² statistic for normality (mean and σ estimated) adjusted by (1 + 0.75/n + 2.25/n²),
    with its p-value (D'Agostino and Stephens, 1986)."""
    from scipy.special import log_ndtr

    n = x.size
    y = np.sort((x - x.mean()) / x.std(ddof=1))
    i = np.arange(1, n + 1)
    a2 = -n - float(np.sum((2 * i - 1) * (log_ndtr(y) + log_ndtr(-y[::-1])))) / n
    a = a2 * (1 + 0.75 / n + 2.25 / n**2)
    if a >= 0.6:
        p = math.exp(1.2937 - 5.709 * a + 0.0186 * a * a)
    elif a >= 0.34:
        p = math.exp(0.9177 - 4.279 * a - 1.38 * a * a)
    elif a >= 0.2:
        p = 1 - math.exp(-8.318 + 42.796 * a - 59.938 * a * a)
    else:
        p = 1 - math.exp(-13.436 + 101.14 * a - 223.73 * a * a)
    return a, min(max(p, 0.0), 1.0)


def _chi_interval(c: float | None, nu: float, alpha: float) -> Index:
    from scipy.stats import chi2

    if c is None:
        return Index(None, None, None)
    return Index(
        c, c * math.sqrt(chi2.ppf(alpha / 2, nu) / nu), c * math.sqrt(chi2.ppf(1 - alpha / 2, nu) / nu)
    )


def _bissell(c: float | None, n: int, alpha: float) -> Index:
    from scipy.stats import norm

    if c is None:
        return Index(None, None, None)
    half = float(norm.ppf(1 - alpha / 2)) * math.sqrt(1 / (9 * n) + c * c / (2 * (n - 1)))
    return Index(c, c - half, c + half)


def _fraction_out(mean: float, sigma: float, lsl: float | None, usl: float | None) -> float:
    from scipy.special import ndtr

    below = float(ndtr((lsl - mean) / sigma)) if lsl is not None else 0.0
    above = float(ndtr((mean - usl) / sigma)) if usl is not None else 0.0
    return below + above


def _indices(mean: float, sigma: float, lsl: float | None, usl: float | None) -> tuple[float | None, float]:
    c = (usl - lsl) / (6 * sigma) if lsl is not None and usl is not None else None
    sides = []
    if usl is not None:
        sides.append((usl - mean) / (3 * sigma))
    if lsl is not None:
        sides.append((mean - lsl) / (3 * sigma))
    return c, min(sides)


def histogram(x: np.ndarray, mean: float, sigma: float, bins: int | None = None) -> dict[str, list[float]]:
    """Bin edges and counts, with the fitted normal density scaled to the counts on 101 points."""
    from scipy.stats import norm

    nb = bins or max(5, min(50, math.ceil(math.sqrt(x.size))))
    counts, edges = np.histogram(x, bins=nb)
    width = float(edges[1] - edges[0]) if edges.size > 1 else 1.0
    lo, hi = min(float(edges[0]), mean - 4 * sigma), max(float(edges[-1]), mean + 4 * sigma)
    cx = np.linspace(lo, hi, 101)
    cy = norm.pdf(cx, mean, sigma) * x.size * width
    return {"edges": edges.tolist(), "counts": counts.astype(float).tolist(), "curve_x": cx.tolist(),
            "curve_y": cy.tolist()}  # fmt: skip


def capability(
    values: Sequence[float] | np.ndarray,
    *,
    lsl: float | None = None,
    usl: float | None = None,
    target: float | None = None,
    sigma_within: float | None = None,
    confidence: float = 0.95,
) -> Capability:
    """A capability study of ``values`` against the specification limits (one side may be absent)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise SpcInputInvalid("measurements must be a flat sequence of finite numbers", reason="not_finite")
    if lsl is None and usl is None:
        raise SpcInputInvalid("give at least one specification limit", reason="spec_limits")
    if lsl is not None and usl is not None and not lsl < usl:
        raise SpcInputInvalid(
            f"specification limits reversed or equal: LSL {lsl} must be below USL {usl}", reason="spec_limits"
        )
    if x.size < 8:
        raise SpcInputInvalid("a capability study needs at least 8 measurements", reason="too_few")
    if not 0 < confidence < 1:
        raise SpcInputInvalid("confidence must be between 0 and 1", reason="confidence")
    n = int(x.size)
    mean, s = float(x.mean()), float(x.std(ddof=1))
    if s <= 0:
        raise SpcInputInvalid("the measurements do not vary: capability is undefined", reason="no_variation")
    sw = float(sigma_within) if sigma_within is not None else s
    if sw <= 0:
        raise SpcInputInvalid("sigma_within must be positive", reason="sigma")
    if target is None and lsl is not None and usl is not None:
        target = (lsl + usl) / 2
    alpha = 1 - confidence
    cp, cpk = _indices(mean, sw, lsl, usl)
    pp, ppk = _indices(mean, s, lsl, usl)
    cpm: float | None = None
    cpm_index = Index(None, None, None)
    if lsl is not None and usl is not None and target is not None:
        tau = math.sqrt(s * s + (mean - target) ** 2)
        cpm = (usl - lsl) / (6 * tau)
        a = (mean - target) / s
        nu_star = n * (1 + a * a) ** 2 / (1 + 2 * a * a)
        cpm_index = _chi_interval(cpm, nu_star, alpha)
    a2, p = anderson_darling(x)
    return Capability(
        n=n,
        mean=mean,
        sigma_within=sw,
        sigma_overall=s,
        lsl=lsl,
        usl=usl,
        target=target,
        confidence=confidence,
        cp=_chi_interval(cp, n - 1, alpha),
        cpk=_bissell(cpk, n, alpha),
        pp=_chi_interval(pp, n - 1, alpha),
        ppk=_bissell(ppk, n, alpha),
        cpm=cpm_index,
        ppm_within=_fraction_out(mean, sw, lsl, usl) * 1e6,
        ppm_overall=_fraction_out(mean, s, lsl, usl) * 1e6,
        normality_statistic=a2,
        normality_p=p,
        normal=p >= NORMALITY_ALPHA,
        histogram=histogram(x, mean, s),
    )
