"""The manifest of the built-in app ``scheduling`` (registered under ``gongyun.apps`` like any app)."""

from __future__ import annotations

from pathlib import Path

from gongyun.apps import AppManifest, AppPage, Localized
from gongyun.apps.scheduling.cli import app as cli
from gongyun.apps.scheduling.routes import router
from gongyun.apps.scheduling.settings import Settings
from gongyun.apps.scheduling.worker import watch_late, watch_machines

HERE = Path(__file__).parent

MANIFEST = AppManifest(
    name="scheduling",
    version="0.1.0",
    platform=">=0.1,<1",
    title=Localized(en="Scheduling", zh_cn="智能排产"),
    description=Localized(
        en="Job shop and flexible job shop scheduling with OR-Tools CP-SAT, live rescheduling, Gantt.",
        zh_cn="基于 OR-Tools CP-SAT 的作业车间与柔性作业车间排产、实时重排与甘特图。",
    ),
    permissions=["apps:read", "apps:write", "assets:read", "telemetry:read", "alarms:ack"],
    reads=("assets", "telemetry"),
    writes=("production orders", "schedules", "dispatch lists"),
    classification="important",
    settings=Settings,
    router=router,
    pages=(
        AppPage(slug="gantt", title=Localized(en="Scheduling", zh_cn="智能排产"), script="gantt.js"),
        AppPage(slug="dispatch", title=Localized(en="Dispatch list", zh_cn="派工单"), script="dispatch.js"),
    ),
    static_dir=HERE / "static",
    workers=(watch_machines, watch_late),
    migrations=HERE / "migrations",
    cli=cli,
)
