"""The manifest of the built-in app ``scheduling`` (registered under ``gongyun.apps`` like any app)."""

from __future__ import annotations

from gongyun.apps import AppManifest, Localized

MANIFEST = AppManifest(
    name="scheduling",
    version="0.1.0",
    platform=">=0.1,<1",
    title=Localized(en="Scheduling", zh_cn="智能排产"),
    description=Localized(
        en="Job shop and flexible job shop scheduling with OR-Tools CP-SAT, live rescheduling, Gantt.",
        zh_cn="基于 OR-Tools CP-SAT 的作业车间与柔性作业车间排产、实时重排与甘特图。",
    ),
    permissions=["assets:read", "telemetry:read", "alarms:read", "apps:read", "apps:write"],
    reads=("assets", "telemetry", "alarms"),
    writes=("production orders", "schedules", "dispatch lists"),
    classification="important",
)
