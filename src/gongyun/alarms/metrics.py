"""Prometheus metrics of the alarm engine: leadership, term, evaluations, saves, failures."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge

LEADER = Gauge("gongyun_alarms_leader", "1 while the alarm engine runs in this process")
TERM = Gauge("gongyun_alarms_term", "Fencing term of this process's current or last leadership (0: none)")
EVALUATED = Counter("gongyun_alarms_evaluated_total", "Samples evaluated against alarm rules")
SAVED = Counter("gongyun_alarms_saved_total", "Alarm transitions saved")
DISCARDED = Counter(
    "gongyun_alarms_discarded_total", "Alarm transitions dropped unsaved (stepping down, stopping, refused)"
)

NOTIFY_FAILED = Counter(
    "gongyun_alarms_notifications_failed_total",
    "Alarm notifications not delivered (errors, and webhook targets the outbound policy refuses)",
)


def watch_leadership(leading: Callable[[], bool], term: Callable[[], int | None]) -> None:
    """Read leadership and term from the running host at each scrape."""
    LEADER.set_function(lambda: 1.0 if leading() else 0.0)
    TERM.set_function(lambda: float(term() or 0))
