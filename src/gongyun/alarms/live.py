"""An alarm as the engine holds it in memory, and what every part of the engine shares with it:
time conversions, the console's alarm view and the errors of stored rows that no longer validate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gongyun.alarms.models import AlarmStateRow
from gongyun.alarms.rules import Condition, Debouncer
from gongyun.alarms.states import AlarmStateMachine, State
from gongyun.errors import GongyunError, ValidationFailed

_log = logging.getLogger("gongyun.alarms.engine")
US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRIORITIES = ["low", "medium", "high", "critical"]


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


@dataclass
class LiveAlarm:
    """One rule's evaluation state."""

    tenant: str
    rule_id: str
    spec: Any
    condition: Condition
    debounce: Debouncer
    machine: AlarmStateMachine

    def view(self) -> dict[str, Any]:
        """The alarm as the console shows it."""
        return {
            "rule_id": self.rule_id,
            "name": self.spec.name,
            "kind": self.spec.kind,
            "priority": str(self.spec.priority),
            "state": str(self.machine.state),
            "condition": self.machine.condition,
            "shelved_until": _dt(self.machine.shelved_until).isoformat()
            if self.machine.shelved_until
            else None,
            "value": self.condition.last_value,
            "message": self.spec.message,
            "tags": sorted(self.condition.tags),
            "since": _dt(self.machine.last_change).isoformat() if self.machine.last_change else None,
            "changed_by": self.machine.last_user,
        }


def sort_views(views: list[dict[str, Any]], only_active: bool = False) -> list[dict[str, Any]]:
    """Alarm views highest priority first, then by name (only non-normal ones with ``only_active``)."""
    if only_active:
        views = [a for a in views if a["state"] != State.normal]
    return sorted(views, key=lambda a: (-_PRIORITIES.index(a["priority"]), a["name"]))


class AlarmRuleInvalid(ValidationFailed):
    """A stored alarm rule no longer validates: the engine skips it (see ``AlarmEngine.broken``)."""

    code = "alarm_rule_invalid"
    title = "Stored alarm rule is invalid"


class AlarmTargetInvalid(ValidationFailed):
    """A stored notification target no longer validates: the engine skips it."""

    code = "alarm_target_invalid"
    title = "Stored notification target is invalid"


def _problem(exc: Exception) -> str:
    """A short description of why a stored row does not validate."""
    if isinstance(exc, GongyunError):
        errors = exc.details.get("errors")
        return f"{exc.message}: {errors}"[:500] if errors else exc.message[:500]
    return str(exc)[:500]


def _saved_machine(st: AlarmStateRow | None) -> AlarmStateMachine | None:
    """The saved state of an alarm (None when there is none, or it is unreadable)."""
    if st is None:
        return None
    try:
        state = State(st.state)
    except ValueError:
        _log.error("alarm %s: unknown saved state %r; starting from normal", st.rule_id, st.state)
        return None
    return AlarmStateMachine(state, st.condition, _us(st.shelved_until) if st.shelved_until else None)
