"""Alarm rules (what to watch) and the conditions they compute, with hysteresis and delays."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    field_validator,
    model_validator,
)

from gongyun.alarms.expr import Expression, ExpressionInvalid, MissingInput
from gongyun.alarms.states import Priority

US = 1_000_000
TagName = Annotated[str, Field(min_length=3, max_length=300, pattern=r"^[^/\s]+/[^\s]+$")]


def _kind_required(schema: dict[str, Any]) -> None:
    # ``kind`` has a default for code that builds rules, but a rule document must name it:
    # it selects the variant of ``RuleSpec`` (a discriminated union).
    schema["required"] = sorted({*schema.get("required", []), "kind"})


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_kind_required)

    name: str = Field(min_length=1, max_length=200)
    priority: Priority = Priority.medium
    message: str = Field(default="", max_length=1000)
    on_delay_s: StrictFloat = Field(default=0.0, ge=0, le=86400)
    off_delay_s: StrictFloat = Field(default=0.0, ge=0, le=86400)
    enabled: StrictBool = True


class ThresholdRule(_Rule):
    """Active above (``high``) or below (``low``) a limit; clears only past the deadband."""

    kind: Literal["threshold"] = "threshold"
    tag: TagName
    direction: Literal["high", "low"] = "high"
    limit: StrictFloat
    deadband: StrictFloat = Field(default=0.0, ge=0)


class RateRule(_Rule):
    """Active when the value changes faster than ``max_rate_per_s`` (either direction)."""

    kind: Literal["rate"] = "rate"
    tag: TagName
    max_rate_per_s: StrictFloat = Field(gt=0)
    deadband: StrictFloat = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _deadband_below_limit(self) -> RateRule:
        if self.deadband >= self.max_rate_per_s:
            raise ValueError("deadband must be smaller than max_rate_per_s")
        return self


class ExpressionRule(_Rule):
    """Active while a boolean expression over several tags is true."""

    kind: Literal["expression"] = "expression"
    expression: str = Field(min_length=1, max_length=1000)
    inputs: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], TagName] = Field(
        min_length=1
    )

    @field_validator("expression")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        return v.strip()

    @model_validator(mode="after")
    def _compiles(self) -> ExpressionRule:
        try:
            Expression(self.expression, set(self.inputs))
        except ExpressionInvalid as exc:
            raise ValueError(exc.message) from exc
        return self


class StaleRule(_Rule):
    """Active when a tag has sent nothing for ``max_age_s``."""

    kind: Literal["stale"] = "stale"
    tag: TagName
    max_age_s: StrictFloat = Field(gt=0, le=30 * 86400)


RuleSpec = Annotated[ThresholdRule | RateRule | ExpressionRule | StaleRule, Field(discriminator="kind")]


class Condition:
    """Turns samples (and the passing of time) into a raw condition: True, False or None (unknown)."""

    def __init__(self, rule: ThresholdRule | RateRule | ExpressionRule | StaleRule) -> None:
        self.rule = rule
        self.state = False
        self.last_value: float | None = None
        self._prev: tuple[int, float] | None = None
        self._values: dict[str, float] = {}
        self._last_seen: int | None = None
        self._expr = (
            Expression(rule.expression, set(rule.inputs)) if isinstance(rule, ExpressionRule) else None
        )

    @property
    def tags(self) -> list[str]:
        """Tags this condition reads."""
        if isinstance(self.rule, ExpressionRule):
            return sorted(set(self.rule.inputs.values()))
        return [self.rule.tag]

    def observe(self, tag: str, ts: int, value: float) -> bool | None:
        """Feed one sample; return the condition after it (None when still unknown)."""
        r = self.rule
        self.last_value = value
        if isinstance(r, ThresholdRule):
            self.state = _hysteresis(
                self.state,
                value if r.direction == "high" else -value,
                r.limit if r.direction == "high" else -r.limit,
                r.deadband,
            )
            return self.state
        if isinstance(r, RateRule):
            prev, self._prev = self._prev, (ts, value)
            if prev is None or ts <= prev[0]:
                return None if prev is None else self.state
            rate = abs(value - prev[1]) / ((ts - prev[0]) / US)
            self.state = _hysteresis(self.state, rate, r.max_rate_per_s, r.deadband)
            return self.state
        if isinstance(r, ExpressionRule):
            for name, t in r.inputs.items():
                if t == tag:
                    self._values[name] = value
            assert self._expr is not None
            try:
                self.state = self._expr.evaluate(self._values)
            except MissingInput:
                return None
            return self.state
        self._last_seen = ts if self._last_seen is None else max(self._last_seen, ts)
        self.state = False
        return False

    def at(self, now: int) -> bool | None:
        """The condition as time passes without samples (only stale rules change)."""
        r = self.rule
        if isinstance(r, StaleRule):
            if self._last_seen is None:
                self._last_seen = now  # start the clock when the rule is first evaluated
            self.state = now - self._last_seen > r.max_age_s * US
            return self.state
        return None


def _hysteresis(active: bool, value: float, limit: float, deadband: float) -> bool:
    """Activate strictly above ``limit``; clear strictly below ``limit - deadband``."""
    if not active:
        return value > limit
    return not value < limit - deadband


class Debouncer:
    """On-delay and off-delay: a condition change counts once it has held long enough."""

    def __init__(self, on_delay_s: float, off_delay_s: float) -> None:
        self.on = int(on_delay_s * US)
        self.off = int(off_delay_s * US)
        self.active = False
        self._candidate: bool | None = None
        self._since = 0

    def update(self, condition: bool, ts: int) -> bool:
        """Feed the raw condition at time ``ts``; return the debounced state."""
        if condition == self.active:
            self._candidate = None
            return self.active
        if self._candidate is not condition:
            self._candidate = condition
            self._since = ts
        if ts - self._since >= (self.on if condition else self.off):
            self.active = condition
            self._candidate = None
        return self.active

    def tick(self, now: int) -> bool:
        """Let time pass with the raw condition unchanged."""
        if self._candidate is not None:
            return self.update(self._candidate, now)
        return self.active
