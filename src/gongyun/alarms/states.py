"""ISA-18.2 alarm states and their transitions, plus shelving.

::

    NORMAL ──condition──► UNACK_ACTIVE ──ack──► ACK_ACTIVE
      ▲                      │  ▲                   │
      │                  clear │ condition         clear
      │                      ▼  │                   │
      └───────ack─────── UNACK_RTN ◄────────────────┘ (ACK_ACTIVE clears straight to NORMAL)

Shelving hides an alarm from the operator for a while whatever its condition; when it is
unshelved (by hand or when the shelf time runs out) it re-enters UNACK_ACTIVE if the
condition is still present, else NORMAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gongyun.errors import Conflict


class State(StrEnum):
    """The alarm states of ISA-18.2 (plus shelved)."""

    normal = "normal"
    unack_active = "unack_active"
    ack_active = "ack_active"
    unack_rtn = "unack_rtn"
    shelved = "shelved"


class Priority(StrEnum):
    """Alarm priorities, lowest first."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        """1 (low) .. 4 (critical)."""
        return list(Priority).index(self) + 1


class InvalidTransition(Conflict):
    """The operator action does not apply in the alarm's current state."""

    code = "alarm_transition_invalid"
    title = "Alarm action not allowed in this state"


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change: from, to, the cause and who caused it (``None``: the system)."""

    before: State
    after: State
    cause: str
    ts: int
    user: str | None = None
    value: float | None = None


class AlarmStateMachine:
    """The ISA-18.2 state of one alarm."""

    def __init__(
        self, state: State = State.normal, condition: bool = False, shelved_until: int | None = None
    ):
        self.state = state
        self.condition = condition
        self.shelved_until = shelved_until
        self.last_change: int | None = None  # when the state last changed (µs since epoch)
        self.last_user: str | None = None  # who caused that change (None: the system)

    def _go(
        self, to: State, cause: str, ts: int, user: str | None = None, value: float | None = None
    ) -> Transition:
        tr = Transition(self.state, to, cause, ts, user, value)
        self.state = to
        self.last_change, self.last_user = ts, user
        return tr

    def set_condition(self, active: bool, ts: int, value: float | None = None) -> Transition | None:
        """The (debounced) alarm condition became ``active`` or cleared."""
        if active == self.condition:
            return None
        self.condition = active
        s = self.state
        if s is State.shelved:
            return None
        if active and s in (State.normal, State.unack_rtn):
            return self._go(State.unack_active, "activated", ts, value=value)
        if not active and s is State.unack_active:
            return self._go(State.unack_rtn, "cleared", ts, value=value)
        if not active and s is State.ack_active:
            return self._go(State.normal, "cleared", ts, value=value)
        return None

    def ack(self, user: str, ts: int) -> Transition:
        """The operator acknowledges the alarm."""
        if self.state is State.unack_active:
            return self._go(State.ack_active, "acknowledged", ts, user)
        if self.state is State.unack_rtn:
            return self._go(State.normal, "acknowledged", ts, user)
        raise InvalidTransition(f"cannot acknowledge an alarm that is {self.state}", state=str(self.state))

    def shelve(self, user: str, ts: int, until: int) -> Transition:
        """Hide the alarm until ``until`` (µs)."""
        if self.state is State.shelved:
            raise InvalidTransition("the alarm is already shelved", state=str(self.state))
        if until <= ts:
            raise InvalidTransition("shelving must end in the future")
        self.shelved_until = until
        return self._go(State.shelved, "shelved", ts, user)

    def unshelve(self, ts: int, user: str | None = None) -> Transition:
        """Bring the alarm back (by hand, or because the shelf time ran out)."""
        if self.state is not State.shelved:
            raise InvalidTransition(f"cannot unshelve an alarm that is {self.state}", state=str(self.state))
        self.shelved_until = None
        to = State.unack_active if self.condition else State.normal
        return self._go(to, "unshelved" if user else "shelf_expired", ts, user)

    def tick(self, ts: int) -> Transition | None:
        """Let time pass: shelving ends when its time is up."""
        if self.state is State.shelved and self.shelved_until is not None and ts >= self.shelved_until:
            return self.unshelve(ts)
        return None
