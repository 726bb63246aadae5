"""Work-order lifecycle: open -> assigned -> in_progress -> done; cancelled from any open state."""

from __future__ import annotations

from typing import Literal

from gongyun.apps.maintenance.errors import WorkOrderTransition

State = Literal["open", "assigned", "in_progress", "done", "cancelled"]
STATES: tuple[State, ...] = ("open", "assigned", "in_progress", "done", "cancelled")
FINAL: frozenset[str] = frozenset({"done", "cancelled"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"assigned", "in_progress", "cancelled"}),
    "assigned": frozenset({"assigned", "in_progress", "open", "cancelled"}),
    "in_progress": frozenset({"done", "assigned", "cancelled"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}


def check_transition(current: str, target: str, *, assignee: str | None, notes: str | None) -> None:
    """Refuse a move the lifecycle does not allow, or one missing what it needs."""
    if target not in STATES:
        raise WorkOrderTransition(f"unknown state {target!r} (one of {', '.join(STATES)})")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none: it is closed"
        raise WorkOrderTransition(
            f"a work order that is {current} cannot become {target} (allowed: {allowed})"
        )
    if target == "assigned" and not assignee:
        raise WorkOrderTransition("assigning a work order needs an assignee")
    if target == "done" and not (notes and notes.strip()):
        raise WorkOrderTransition("closing a work order as done needs notes on what was found")
