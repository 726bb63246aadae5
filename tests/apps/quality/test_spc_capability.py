"""Capability indices and their intervals against a hand-computed case; normality flagging."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gongyun.apps.quality.errors import SpcInputInvalid
from gongyun.apps.quality.spc import capability
from gongyun.apps.quality.spc.capability import anderson_darling

# 20 values symmetric about 10.0 (so the mean is the target and Cpm's ν* is N)
X = [9.5, 10.5, 9.7, 10.3, 9.8, 10.2, 9.9, 10.1, 9.6, 10.4,
     9.4, 10.6, 9.85, 10.15, 9.75, 10.25, 9.95, 10.05, 9.55, 10.45]  # fmt: skip
# published chi-square quantiles and z
CHI2_19 = (8.907, 32.852)  # χ²(0.025, 19), χ²(0.975, 19)
CHI2_20 = (9.591, 34.170)
Z975 = 1.959964


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def test_hand_computed_case() -> None:
    n = len(X)
    mean = sum(X) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in X) / (n - 1))
    lsl, usl, target, sw = 9.0, 11.5, 10.0, 0.3
    c = capability(X, lsl=lsl, usl=usl, target=target, sigma_within=sw)
    assert c.mean == pytest.approx(mean) and c.sigma_overall == pytest.approx(s)
    cp = (usl - lsl) / (6 * sw)
    cpk = min(usl - mean, mean - lsl) / (3 * sw)
    pp = (usl - lsl) / (6 * s)
    ppk = min(usl - mean, mean - lsl) / (3 * s)
    cpm = (usl - lsl) / (6 * math.sqrt(s * s + (mean - target) ** 2))
    assert c.cp.value == pytest.approx(cp) and c.cpk.value == pytest.approx(cpk)
    assert c.pp.value == pytest.approx(pp) and c.ppk.value == pytest.approx(ppk)
    assert c.cpm.value == pytest.approx(cpm)
    tol = dict(rel=2e-4)
    assert c.cp.low == pytest.approx(cp * math.sqrt(CHI2_19[0] / 19), **tol)
    assert c.cp.high == pytest.approx(cp * math.sqrt(CHI2_19[1] / 19), **tol)
    assert c.pp.low == pytest.approx(pp * math.sqrt(CHI2_19[0] / 19), **tol)
    half = Z975 * math.sqrt(1 / (9 * n) + cpk**2 / (2 * (n - 1)))
    assert c.cpk.low == pytest.approx(cpk - half, **tol) and c.cpk.high == pytest.approx(cpk + half, **tol)
    half_p = Z975 * math.sqrt(1 / (9 * n) + ppk**2 / (2 * (n - 1)))
    assert c.ppk.low == pytest.approx(ppk - half_p, **tol)
    assert c.cpm.low == pytest.approx(cpm * math.sqrt(CHI2_20[0] / 20), **tol)
    assert c.cpm.high == pytest.approx(cpm * math.sqrt(CHI2_20[1] / 20), **tol)
    ppm_w = (_phi((lsl - mean) / sw) + _phi((mean - usl) / sw)) * 1e6
    ppm_o = (_phi((lsl - mean) / s) + _phi((mean - usl) / s)) * 1e6
    assert c.ppm_within == pytest.approx(ppm_w, rel=1e-6) and c.ppm_overall == pytest.approx(ppm_o, rel=1e-6)
    h = c.histogram
    assert sum(h["counts"]) == n and len(h["edges"]) == len(h["counts"]) + 1 and len(h["curve_x"]) == 101


def test_one_sided_specification() -> None:
    c = capability(X, usl=11.0)
    assert c.cp.value is None and c.cpm.value is None
    assert c.cpk.value == pytest.approx((11.0 - c.mean) / (3 * c.sigma_overall))


def test_normality_rejected_flags_the_indices() -> None:
    rng = np.random.default_rng(5)
    normal = capability(rng.normal(10, 1, 200), lsl=6, usl=14)
    skewed = capability(rng.exponential(1.0, 200), lsl=0, usl=8)
    assert normal.normal and not normal.flagged
    assert not skewed.normal and skewed.flagged and skewed.as_dict()["flagged"] is True


def test_anderson_darling_statistic_matches_scipy() -> None:
    import warnings

    from scipy import stats

    x = np.random.default_rng(9).normal(0, 1, 50)
    a, _ = anderson_darling(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.anderson(x, dist="norm").statistic
    assert a / (1 + 0.75 / 50 + 2.25 / 50**2) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"lsl": 11.0, "usl": 9.0}, "spec_limits"),
        ({"lsl": 10.0, "usl": 10.0}, "spec_limits"),
        ({}, "spec_limits"),
        ({"lsl": 9.0, "usl": 11.0, "confidence": 1.5}, "confidence"),
    ],
)
def test_bad_capability_input_is_refused(kwargs: dict[str, float], reason: str) -> None:
    with pytest.raises(SpcInputInvalid) as info:
        capability(X, **kwargs)  # type: ignore[arg-type]
    assert info.value.details["reason"] == reason


def test_too_few_or_constant_values_are_refused() -> None:
    with pytest.raises(SpcInputInvalid, match="at least 8"):
        capability([1.0, 2.0], lsl=0, usl=3)
    with pytest.raises(SpcInputInvalid, match="do not vary"):
        capability([1.0] * 10, lsl=0, usl=3)
