"""Run rules: each Nelson and Western Electric rule trips exactly at the point that completes its
pattern, and not one point earlier; rules are switchable; the vectorised engine agrees with a
plain loop on random data."""

from __future__ import annotations

import numpy as np
import pytest

from gongyun.apps.quality.errors import SpcInputInvalid
from gongyun.apps.quality.spc import ALL_RULES, RuleSet, by_count, evaluate, evaluate_rules, phase1
from gongyun.apps.quality.spc.rules import BIT, names

# z-scores (centre 0, σ 1); each series completes its rule's pattern at its last point, and
# starts with a value on the boundary that must not count (exactly 3σ, 2σ, 1σ, or the centre).
EDGE: dict[str, list[float]] = {
    "N1": [0.0, 3.0, -3.0, 2.9, 3.001],
    "N2": [-0.5, 0.0, *[0.5] * 9],
    "N3": [5.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "N4": [0.0, 0.0, *[0.5 if i % 2 == 0 else -0.5 for i in range(13)]],
    "N5": [0.0, 2.0, 2.5, -2.5, -1.0, 2.5, 1.0, 2.5],
    "N6": [-1.5, 1.0, 1.5, 1.5, 1.5, 0.5, 1.5],
    "N7": [1.0, *[0.9 if i % 2 else -0.9 for i in range(15)]],
    "N8": [1.0, *[1.5 if i % 2 else -1.5 for i in range(8)]],
    "WE1": [0.0, 3.0, 3.5],
    "WE2": [2.0, 2.1, 0.0, 0.0, 2.1, 1.9, 2.1],
    "WE3": [1.2, 1.2, 1.2, 0.0, 0.0, 1.2, 1.2, 1.2, -1.0, 1.2],
    "WE4": [-0.5, 0.0, *[0.5] * 8],
}


@pytest.mark.parametrize("rule", ALL_RULES)
def test_each_rule_trips_exactly_at_the_edge(rule: str) -> None:
    z = np.array(EDGE[rule])
    flags = evaluate_rules(z, 0.0, 1.0, RuleSet.of([rule])) & BIT[rule]
    assert flags[-1], f"{rule} did not trip at the last point"
    assert not flags[:-1].any(), f"{rule} tripped early at {np.flatnonzero(flags)[0]} of {len(z) - 1}"
    shorter = evaluate_rules(z[:-1], 0.0, 1.0, RuleSet.of([rule]))
    assert not shorter.any(), f"{rule} tripped one point short"


@pytest.mark.parametrize("rule", ALL_RULES)
def test_a_rule_switched_off_never_fires(rule: str) -> None:
    others = RuleSet.of(set(ALL_RULES) - {rule})
    assert not (evaluate_rules(np.array(EDGE[rule]), 0.0, 1.0, others) & BIT[rule]).any()


def test_unknown_rules_are_refused() -> None:
    with pytest.raises(SpcInputInvalid, match="N9"):
        RuleSet.of(["N1", "N9"])


def test_zones_follow_the_chart_centre_and_sigma() -> None:
    x = np.array([10.0, 13.0, 16.01])
    assert list(evaluate_rules(x, 10.0, 2.0, RuleSet.of(["N1"]))) == [0, 0, BIT["N1"]]
    assert names(BIT["N1"] | BIT["WE4"]) == ["N1", "WE4"]


def _naive(z: np.ndarray, rule: str) -> np.ndarray:
    """A plain loop over points, written from the rule's wording."""
    n = z.size
    out = np.zeros(n, dtype=bool)
    for i in range(n):

        def last(k: int, i: int = i) -> np.ndarray | None:
            return z[i - k + 1 : i + 1] if i - k + 1 >= 0 else None

        if rule in ("N1", "WE1"):
            out[i] = abs(z[i]) > 3
        elif rule in ("N2", "WE4"):
            k = 9 if rule == "N2" else 8
            w = last(k)
            out[i] = w is not None and (bool(np.all(w > 0)) or bool(np.all(w < 0)))
        elif rule == "N3":
            w = last(6)
            out[i] = w is not None and (bool(np.all(np.diff(w) > 0)) or bool(np.all(np.diff(w) < 0)))
        elif rule == "N4":
            w = last(14)
            out[i] = w is not None and bool(np.all(np.diff(w)[1:] * np.diff(w)[:-1] < 0))
        elif rule in ("N5", "WE2", "N6", "WE3"):
            k, m, lev = (2, 3, 2.0) if rule in ("N5", "WE2") else (4, 5, 1.0)
            w = z[max(0, i - m + 1) : i + 1]
            out[i] = (z[i] > lev and int(np.sum(w > lev)) >= k) or (
                z[i] < -lev and int(np.sum(w < -lev)) >= k
            )
        elif rule == "N7":
            w = last(15)
            out[i] = w is not None and bool(np.all(np.abs(w) < 1))
        elif rule == "N8":
            w = last(8)
            out[i] = w is not None and bool(np.all(np.abs(w) > 1))
    return out


@pytest.mark.parametrize("rule", ALL_RULES)
def test_vectorised_rules_agree_with_a_plain_loop(rule: str) -> None:
    rng = np.random.default_rng(7)
    z = np.round(rng.normal(0.3, 1.2, 3000), 1)  # rounding makes ties and boundary values common
    got = (evaluate_rules(z, 0.0, 1.0, RuleSet.of([rule])) & BIT[rule]) > 0
    assert np.array_equal(got, _naive(z, rule))


def test_a_drift_on_an_xbar_r_chart_trips_a_rule() -> None:
    rng = np.random.default_rng(3)
    base = by_count(rng.normal(500, 1, 5 * 40), 5)
    limits = phase1("xbar_r", base)
    drift = by_count(rng.normal(500, 1, 5 * 20) + np.repeat(np.linspace(0, 2.5, 20), 5), 5)
    res = evaluate(limits, drift, RuleSet.of(ALL_RULES))
    assert res.violations.any()
