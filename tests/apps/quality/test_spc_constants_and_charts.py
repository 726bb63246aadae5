"""SPC numbers: constants against the published tables, every chart against an independent hand
computation (plain Python loops and the published constants), phase I exclusions, versions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gongyun.apps.quality.errors import SpcInputInvalid
from gongyun.apps.quality.spc import (
    ChartKind,
    ControlLimits,
    by_count,
    by_lot,
    by_time_window,
    evaluate,
    phase1,
)
from gongyun.apps.quality.spc.charts import NO_DATA, attribute_data
from gongyun.apps.quality.spc.constants import constants
from gongyun.apps.quality.spc.subgroups import from_rows

# Published table (Montgomery, Introduction to Statistical Quality Control, Appendix VI; ASTM
# STP 15D): n, A2, A3, c4, B3, B4, d2, d3, D3, D4.
PUBLISHED = """
2  1.880 2.659 0.7979 0     3.267 1.128 0.853 0     3.267
3  1.023 1.954 0.8862 0     2.568 1.693 0.888 0     2.574
4  0.729 1.628 0.9213 0     2.266 2.059 0.880 0     2.282
5  0.577 1.427 0.9400 0     2.089 2.326 0.864 0     2.114
6  0.483 1.287 0.9515 0.030 1.970 2.534 0.848 0     2.004
7  0.419 1.182 0.9594 0.118 1.882 2.704 0.833 0.076 1.924
8  0.373 1.099 0.9650 0.185 1.815 2.847 0.820 0.136 1.864
9  0.337 1.032 0.9693 0.239 1.761 2.970 0.808 0.184 1.816
10 0.308 0.975 0.9727 0.284 1.716 3.078 0.797 0.223 1.777
11 0.285 0.927 0.9754 0.321 1.679 3.173 0.787 0.256 1.744
12 0.266 0.886 0.9776 0.354 1.646 3.258 0.778 0.283 1.717
13 0.249 0.850 0.9794 0.382 1.618 3.336 0.770 0.307 1.693
14 0.235 0.817 0.9810 0.406 1.594 3.407 0.763 0.328 1.672
15 0.223 0.789 0.9823 0.428 1.572 3.472 0.756 0.347 1.653
16 0.212 0.763 0.9835 0.448 1.552 3.532 0.750 0.363 1.637
17 0.203 0.739 0.9845 0.466 1.534 3.588 0.744 0.378 1.622
18 0.194 0.718 0.9854 0.482 1.518 3.640 0.739 0.391 1.608
19 0.187 0.698 0.9862 0.497 1.503 3.689 0.734 0.403 1.597
20 0.180 0.680 0.9869 0.510 1.490 3.735 0.729 0.415 1.585
21 0.173 0.663 0.9876 0.523 1.477 3.778 0.724 0.425 1.575
22 0.167 0.647 0.9882 0.534 1.466 3.819 0.720 0.434 1.566
23 0.162 0.633 0.9887 0.545 1.455 3.858 0.716 0.443 1.557
24 0.157 0.619 0.9892 0.555 1.445 3.895 0.712 0.451 1.548
25 0.153 0.606 0.9896 0.565 1.435 3.931 0.708 0.459 1.541
"""
COLUMNS = ("A2", "A3", "c4", "B3", "B4", "d2", "d3", "D3", "D4")
TABLE = {
    int(r.split()[0]): dict(zip(COLUMNS, map(float, r.split()[1:]), strict=True))
    for r in PUBLISHED.strip().splitlines()
}


@pytest.mark.parametrize("n", range(2, 26))
def test_constants_match_the_published_table(n: int) -> None:
    c = constants(n)
    for name, published in TABLE[n].items():
        # published values are rounded to 3 (c4: 4) decimals, some from rounded intermediates
        # (D4 at n = 18 is printed 1.608 for 1.6087): one unit in the last place
        tol = 0.00015 if name == "c4" else 0.0011
        assert getattr(c, name) == pytest.approx(published, abs=tol), (n, name, getattr(c, name), published)


@pytest.mark.parametrize("n", [1, 0, 26, 100])
def test_sizes_outside_the_tables_are_refused(n: int) -> None:
    with pytest.raises(SpcInputInvalid, match=r"outside 2\.\.25"):
        constants(n)


# A worked example: 10 subgroups of 5 fill weights (g), as an operator would write them down.
FILL = [
    [501.2, 499.8, 500.6, 500.1, 499.5],
    [500.4, 501.0, 499.9, 500.7, 500.2],
    [499.6, 500.3, 500.8, 499.9, 500.5],
    [500.9, 500.2, 499.7, 500.6, 501.3],
    [500.0, 499.4, 500.5, 500.8, 499.9],
    [500.3, 500.7, 501.1, 499.8, 500.4],
    [499.7, 500.1, 500.0, 500.9, 500.6],
    [500.8, 499.9, 500.3, 500.2, 501.0],
    [500.1, 500.6, 499.5, 500.4, 500.7],
    [500.5, 500.0, 500.9, 499.6, 500.3],
]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _sd(xs: list[float]) -> float:
    m = _mean(xs)
    return math.sqrt(sum((v - m) ** 2 for v in xs) / (len(xs) - 1))


def test_xbar_r_worked_example() -> None:
    xbars = [_mean(r) for r in FILL]
    ranges = [max(r) - min(r) for r in FILL]
    xbb, rbar = _mean(xbars), _mean(ranges)
    t = TABLE[5]
    res = evaluate(phase1("xbar_r", from_rows(FILL)), from_rows(FILL))
    assert res.primary.cl[0] == pytest.approx(xbb, abs=1e-9)
    assert res.primary.ucl[0] == pytest.approx(xbb + t["A2"] * rbar, abs=1.1e-3 * rbar)
    assert res.primary.lcl[0] == pytest.approx(xbb - t["A2"] * rbar, abs=1.1e-3 * rbar)
    assert res.secondary is not None
    assert res.secondary.cl[0] == pytest.approx(rbar, rel=1e-9)
    assert res.secondary.ucl[0] == pytest.approx(t["D4"] * rbar, abs=1.1e-3 * rbar)
    assert res.secondary.lcl[0] == 0.0
    assert list(res.primary.points) == pytest.approx(xbars)
    assert list(res.secondary.points) == pytest.approx(ranges)


def test_xbar_s_worked_example() -> None:
    sds = [_sd(r) for r in FILL]
    xbb, sbar = _mean([_mean(r) for r in FILL]), _mean(sds)
    t = TABLE[5]
    res = evaluate(phase1("xbar_s", from_rows(FILL)), from_rows(FILL))
    assert res.primary.ucl[0] == pytest.approx(xbb + t["A3"] * sbar, abs=1.1e-3 * sbar)
    assert res.secondary is not None
    assert res.secondary.cl[0] == pytest.approx(sbar, rel=1e-9)
    assert res.secondary.ucl[0] == pytest.approx(t["B4"] * sbar, abs=1.1e-3 * sbar)
    assert res.secondary.lcl[0] == pytest.approx(t["B3"] * sbar, abs=1e-9)
    assert list(res.secondary.points) == pytest.approx(sds)


@pytest.mark.parametrize("n", [2, 10, 25])
def test_xbar_r_and_s_limits_use_the_table_constants_at_every_size(n: int) -> None:
    rng = np.random.default_rng(n)
    data = by_count(rng.normal(50, 2, n * 30), n)
    t = TABLE[n]
    r = evaluate(phase1("xbar_r", data), data)
    rbar, xbb = float(data.ranges.mean()), float(data.means.mean())
    assert r.primary.ucl[0] == pytest.approx(xbb + t["A2"] * rbar, abs=1.1e-3 * rbar)
    assert r.secondary is not None
    assert r.secondary.ucl[0] == pytest.approx(t["D4"] * rbar, abs=1.1e-3 * rbar)
    assert r.secondary.lcl[0] == pytest.approx(t["D3"] * rbar, abs=1.1e-3 * rbar)
    s = evaluate(phase1("xbar_s", data), data)
    sbar = float(data.stdevs.mean())
    assert s.primary.ucl[0] == pytest.approx(xbb + t["A3"] * sbar, abs=1.1e-3 * sbar)
    assert s.secondary is not None
    assert s.secondary.ucl[0] == pytest.approx(t["B4"] * sbar, abs=1.1e-3 * sbar)
    assert s.secondary.lcl[0] == pytest.approx(t["B3"] * sbar, abs=1.1e-3 * sbar)


INDIVIDUALS = [10.2, 9.8, 10.5, 10.1, 9.6, 10.4, 10.0, 9.9, 10.7, 10.3, 9.7, 10.2]


def test_i_mr_worked_example() -> None:
    x = INDIVIDUALS
    mr = [abs(x[i] - x[i - 1]) for i in range(1, len(x))]
    mrbar, xbar = _mean(mr), _mean(x)
    data = by_count(x, 1)
    res = evaluate(phase1("i_mr", data), data)
    assert res.primary.ucl[0] == pytest.approx(xbar + 3 * mrbar / 1.128, rel=1e-4)
    assert res.primary.lcl[0] == pytest.approx(xbar - 3 * mrbar / 1.128, rel=1e-4)
    assert res.secondary is not None
    assert res.secondary.ucl[0] == pytest.approx(3.267 * mrbar, rel=2e-4)
    assert math.isnan(res.secondary.points[0]) and list(res.secondary.points[1:]) == pytest.approx(mr)


def test_ewma_against_the_recursion() -> None:
    x, lam, big_l, mu, sigma = INDIVIDUALS, 0.2, 3.0, 10.0, 0.3
    limits = phase1("ewma", by_count(x, 1), params={"lambda": lam, "L": big_l, "target": mu, "sigma": sigma})
    res = evaluate(limits, by_count(x, 1))
    z = mu
    for i, v in enumerate(x, start=1):
        z = lam * v + (1 - lam) * z
        half = big_l * sigma * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
        assert res.primary.points[i - 1] == pytest.approx(z)
        assert res.primary.ucl[i - 1] == pytest.approx(mu + half)
        assert res.primary.lcl[i - 1] == pytest.approx(mu - half)


def test_cusum_against_the_tabular_recursion() -> None:
    x = [*INDIVIDUALS, 10.6, 10.8, 10.9, 10.7, 11.0, 10.9]
    mu, sigma = 10.0, 0.3
    res = evaluate(phase1("cusum", by_count(x, 1), params={"target": mu, "sigma": sigma}), by_count(x, 1))
    k, h = 0.5 * sigma, 5 * sigma
    cp = cm = 0.0
    first_signal = None
    for i, v in enumerate(x):
        cp = max(0.0, v - (mu + k) + cp)
        cm = max(0.0, (mu - k) - v + cm)
        assert res.primary.points[i] == pytest.approx(cp) and res.secondary is not None
        assert res.secondary.points[i] == pytest.approx(cm)
        if first_signal is None and (cp > h or cm > h):
            first_signal = i
    assert res.primary.ucl[0] == pytest.approx(h)
    flagged = np.flatnonzero(res.violations)
    assert first_signal is not None and flagged[0] == first_signal


def test_attribute_charts_against_hand_formulas() -> None:
    d = [4, 6, 3, 8, 5, 2, 7]
    n = [100, 120, 80, 150, 100, 90, 110]
    pbar = sum(d) / sum(n)
    p = evaluate(phase1("p", attribute_data(d, n)), attribute_data(d, n))
    for i in range(len(d)):
        half = 3 * math.sqrt(pbar * (1 - pbar) / n[i])
        assert p.primary.points[i] == pytest.approx(d[i] / n[i])
        assert p.primary.ucl[i] == pytest.approx(pbar + half)
        assert p.primary.lcl[i] == pytest.approx(max(0.0, pbar - half))
    same = [100] * len(d)
    pb2 = sum(d) / sum(same)
    np_ = evaluate(phase1("np", attribute_data(d, same)), attribute_data(d, same))
    assert np_.primary.cl[0] == pytest.approx(100 * pb2)
    assert np_.primary.ucl[0] == pytest.approx(100 * pb2 + 3 * math.sqrt(100 * pb2 * (1 - pb2)))
    c = evaluate(phase1("c", attribute_data(d)), attribute_data(d))
    cbar = sum(d) / len(d)
    assert c.primary.ucl[0] == pytest.approx(cbar + 3 * math.sqrt(cbar))
    assert c.primary.lcl[0] == pytest.approx(max(0.0, cbar - 3 * math.sqrt(cbar)))
    units = [2.0, 2.5, 1.5, 3.0, 2.0, 1.0, 2.0]
    ubar = sum(d) / sum(units)
    u = evaluate(phase1("u", attribute_data(d, units)), attribute_data(d, units))
    for i in range(len(d)):
        assert u.primary.ucl[i] == pytest.approx(ubar + 3 * math.sqrt(ubar / units[i]))


def test_phase1_records_requested_and_out_of_control_exclusions() -> None:
    rows = [list(r) for r in FILL]
    rows[3] = [v + 3.0 for v in rows[3]]  # a shifted subgroup
    data = from_rows(rows)
    kept = phase1("xbar_r", data, exclude=[7])
    assert kept.excluded == (7,) and kept.exclusion_reasons == {7: "requested"}
    dropped = phase1("xbar_r", data, exclude=[7], drop_out_of_control=True)
    assert 3 in dropped.excluded and dropped.exclusion_reasons[3].startswith("beyond limits")
    clean = [r for i, r in enumerate(rows) if i not in dropped.excluded]
    assert dropped.center == pytest.approx(_mean([_mean(r) for r in clean]))
    frozen = dropped.frozen(2, "engineer", "baseline week 12")
    again = ControlLimits.from_dict(frozen.to_dict())
    assert again == frozen and again.version == 2 and again.excluded == dropped.excluded
    # phase II: frozen limits do not move when new data arrive
    later = evaluate(frozen, from_rows([[v + 0.1 for v in r] for r in FILL]))
    assert later.primary.cl[0] == frozen.center


def test_subgroups_by_time_window_and_by_lot() -> None:
    ts = [0, 10_000_000, 59_000_000, 60_000_000, 61_000_000, 200_000_000]
    vals = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    g = by_time_window(ts, vals, 60)
    assert list(g.sizes) == [3, 2, 1] and list(g.means) == pytest.approx([2.0, 4.5, 6.0])
    assert g.starts is not None and list(g.starts) == [0, 60_000_000, 180_000_000]
    lots = by_lot(["B", "A", "B", "C", "A"], [1.0, 2.0, 3.0, 4.0, 6.0])
    assert lots.keys == ["B", "A", "C"] and list(lots.means) == pytest.approx([2.0, 4.0, 4.0])
    assert list(by_count(range(7), 3).sizes) == [3, 3]


def test_variable_subgroup_sizes_on_xbar_s() -> None:
    rows = [FILL[0], FILL[1][:3], FILL[2][:4], FILL[3]]
    res = evaluate(phase1("xbar_s", from_rows(rows)), from_rows(rows))
    widths = res.primary.ucl - res.primary.cl
    assert widths[1] > widths[2] > widths[0]  # n = 3, 4, 5


BAD = [
    ("xbar_r with subgroups of 26", lambda: phase1("xbar_r", by_count(range(52), 26)), "subgroup_size"),
    ("xbar_s with subgroups of 1", lambda: phase1("xbar_s", by_count(range(10), 1)), "subgroup_size"),
    ("i_mr with subgroups of 5", lambda: phase1("i_mr", by_count(range(10), 5)), "subgroup_size"),
    ("p with more defectives than sample", lambda: phase1("p", attribute_data([3, 11], [10, 10])),
     "count_exceeds_sample"),
    ("np with changing sample sizes", lambda: phase1("np", attribute_data([3, 1], [10, 12])), "sample_size"),
    ("negative count", lambda: attribute_data([-1], [10]), "negative_count"),
    ("non-finite measurement", lambda: by_count([1.0, float("nan")], 1), "not_finite"),
    ("empty baseline", lambda: phase1("c", attribute_data([])), "empty_baseline"),
    ("exclusion outside", lambda: phase1("c", attribute_data([1, 2]), exclude=[5]), "exclude"),
    ("lambda of 0", lambda: phase1("ewma", by_count(range(5), 1), params={"lambda": 0}), "params"),
    ("unknown chart", lambda: phase1("xyz", attribute_data([1])), None),
]  # fmt: skip


@pytest.mark.parametrize(("what", "call", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_a_clear_error(what: str, call: object, reason: str | None) -> None:
    with pytest.raises((SpcInputInvalid, ValueError)) as info:
        call()  # type: ignore[operator]
    if reason is not None:
        assert isinstance(info.value, SpcInputInvalid) and info.value.details["reason"] == reason
        assert info.value.status == 422 and str(info.value)


def test_no_data_in_the_window_gives_an_empty_chart_that_says_so() -> None:
    limits = phase1(ChartKind.XBAR_R, from_rows(FILL))
    res = evaluate(limits, by_count([], 5))
    assert res.empty and res.message == NO_DATA and res.violations.size == 0
