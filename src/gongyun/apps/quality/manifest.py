"""The manifest of the quality app (statistical process control)."""

from __future__ import annotations

from pathlib import Path

from gongyun.apps import AppManifest, AppPage, Localized
from gongyun.apps.quality.routes import router
from gongyun.apps.quality.worker import evaluate_live

HERE = Path(__file__).parent

MANIFEST = AppManifest(
    name="quality",
    version="0.1.0",
    platform=">=0.1,<1",
    title=Localized(en="Quality (SPC)", zh_cn="质量(统计过程控制)"),
    description=Localized(
        en="Control charts with run rules, frozen limits, capability and inspections per lot.",
        zh_cn="控制图与判异准则、冻结控制限、过程能力及按批次的检验记录。",
    ),
    permissions=[
        "telemetry:read",
        "telemetry:write",
        "assets:read",
        "assets:write",
        "alarms:read",
        "alarms:write",
        "alarms:ack",
    ],
    reads=("telemetry", "inspections"),
    writes=("control charts", "limit versions", "inspections", "violation tags and alarm rules"),
    classification="important",
    router=router,
    pages=(
        AppPage(slug="charts", title=Localized(en="Control charts", zh_cn="控制图"), script="charts.js"),
        AppPage(
            slug="capability", title=Localized(en="Capability", zh_cn="过程能力"), script="capability.js"
        ),
        AppPage(
            slug="inspections", title=Localized(en="Inspections", zh_cn="检验录入"), script="inspections.js"
        ),
    ),
    static_dir=HERE / "static",
    workers=(evaluate_live,),
    migrations=HERE / "migrations",
)
