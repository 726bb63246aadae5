"""Conditions: the edges of hysteresis, rate of change, delays, expressions and staleness."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gongyun.alarms.expr import Expression, ExpressionInvalid, MissingInput
from gongyun.alarms.rules import Condition, Debouncer, ExpressionRule, RateRule, StaleRule, ThresholdRule

S = 1_000_000


def test_high_threshold_hysteresis_edges() -> None:
    c = Condition(ThresholdRule(name="hot", tag="p/t", limit=80, deadband=5))
    assert c.observe("p/t", 0, 80.0) is False  # at the limit: not yet
    assert c.observe("p/t", 1, 80.001) is True
    assert c.observe("p/t", 2, 75.0) is True  # at limit - deadband: still active
    assert c.observe("p/t", 3, 79.0) is True
    assert c.observe("p/t", 4, 74.999) is False
    assert c.observe("p/t", 5, 79.999) is False  # inside the band again: stays clear


def test_low_threshold_hysteresis_edges() -> None:
    c = Condition(ThresholdRule(name="cold", tag="p/t", direction="low", limit=10, deadband=2))
    assert c.observe("p/t", 0, 10.0) is False
    assert c.observe("p/t", 1, 9.99) is True
    assert c.observe("p/t", 2, 12.0) is True
    assert c.observe("p/t", 3, 12.01) is False


def test_zero_deadband_clears_just_below() -> None:
    c = Condition(ThresholdRule(name="x", tag="p/t", limit=1))
    assert c.observe("p/t", 0, 1.5) is True
    assert c.observe("p/t", 1, 1.0) is True
    assert c.observe("p/t", 2, 0.999) is False


def test_rate_of_change() -> None:
    c = Condition(RateRule(name="r", tag="p/t", max_rate_per_s=5, deadband=1))
    assert c.observe("p/t", 0, 0.0) is None  # one sample: no rate yet
    assert c.observe("p/t", 1 * S, 5.0) is False  # exactly 5/s: not above
    assert c.observe("p/t", 2 * S, 11.0) is True  # 6/s
    assert c.observe("p/t", 3 * S, 15.0) is True  # 4/s = limit - deadband: still active
    assert c.observe("p/t", 5 * S, 20.0) is False  # 2.5/s
    assert c.observe("p/t", 7 * S, 0.0) is True  # -10/s: either direction
    assert c.observe("p/t", 7 * S, 0.0) is True  # same timestamp: no new rate
    with pytest.raises(ValidationError):
        RateRule(name="r", tag="p/t", max_rate_per_s=1, deadband=1)


def test_on_delay_edges() -> None:
    d = Debouncer(on_delay_s=10, off_delay_s=0)
    assert d.update(True, 0) is False
    assert d.update(True, 10 * S - 1) is False
    assert d.update(True, 10 * S) is True  # exactly the delay
    d2 = Debouncer(10, 0)
    d2.update(True, 0)
    d2.update(False, 5 * S)  # a flicker resets the timer
    assert d2.update(True, 6 * S) is False
    assert d2.tick(16 * S - 1) is False
    assert d2.tick(16 * S) is True  # time alone completes the delay


def test_off_delay_edges() -> None:
    d = Debouncer(on_delay_s=0, off_delay_s=3)
    assert d.update(True, 0) is True
    assert d.update(False, 1 * S) is True
    assert d.tick(4 * S - 1) is True
    assert d.tick(4 * S) is False
    d.update(True, 5 * S)
    d.update(False, 6 * S)
    assert d.update(True, 8 * S) is True  # came back within the delay: never cleared
    assert d.tick(20 * S) is True


def test_expression_over_several_tags() -> None:
    rule = ExpressionRule(
        name="e",
        expression="t > 80 and run and abs(p - 2) <= 0.5",
        inputs={"t": "p/temp", "run": "p/run", "p": "p/press"},
    )
    c = Condition(rule)
    assert c.tags == ["p/press", "p/run", "p/temp"]
    assert c.observe("p/temp", 0, 90.0) is None  # other inputs unknown yet
    assert c.observe("p/run", 1, 1.0) is None
    assert c.observe("p/press", 2, 2.4) is True
    assert c.observe("p/run", 3, 0.0) is False


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('id')",
        "a.__class__",
        "a[0]",
        "lambda: 1",
        "'x' == 'x'",
        "b > 1",
        "(x := 1)",
        "a if a else 1",
        "min(a, key=abs)",
        "a ** 99999",
        "",
        "a >",
        "+".join(["a"] * 300),
    ],
)
def test_expression_refuses_unsafe_or_unknown_syntax(text: str) -> None:
    with pytest.raises(ExpressionInvalid):
        Expression(text, {"a"})


def test_expression_arithmetic_and_missing() -> None:
    e = Expression("-a + 2 * (a % 3) >= 1 or not (a != a)", {"a"})
    assert e.evaluate({"a": 4.0}) is True
    assert Expression("a / 0 > 1", {"a"}).evaluate({"a": 1.0}) is False
    assert Expression("1 < a < 3", {"a"}).evaluate({"a": 2.0}) is True
    assert Expression("1 < a < 3", {"a"}).evaluate({"a": 3.0}) is False
    with pytest.raises(MissingInput):
        e.evaluate({})
    with pytest.raises(ValidationError):
        ExpressionRule(name="x", expression="zz > 1", inputs={"a": "p/t"})


def test_stale_data() -> None:
    c = Condition(StaleRule(name="s", tag="p/t", max_age_s=30))
    assert c.at(0) is False  # the clock starts now
    assert c.at(30 * S) is False  # exactly the limit: not stale yet
    assert c.at(30 * S + 1) is True
    assert c.observe("p/t", 31 * S, 1.0) is False
    assert c.at(61 * S) is False
    assert c.at(61 * S + 1) is True
