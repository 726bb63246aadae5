"""The manifest of the OEE app (overall equipment effectiveness, ISO 22400-2)."""

from __future__ import annotations

from pathlib import Path

from gongyun.apps import AppManifest, AppPage, Localized
from gongyun.apps.oee.routes import router
from gongyun.apps.oee.worker import detect_stops

HERE = Path(__file__).parent

MANIFEST = AppManifest(
    name="oee",
    version="0.1.0",
    platform=">=0.1,<1",
    title=Localized(en="OEE", zh_cn="设备综合效率"),
    description=Localized(
        en="Availability, performance, quality and ISO 22400-2 KPIs per shift, line and site; losses, stops.",
        zh_cn="按班次、产线和工厂计算可用率、性能、质量及 ISO 22400-2 指标;损失与停机原因。",
    ),
    permissions=["telemetry:read", "assets:read", "alarms:read", "alarms:write", "alarms:ack"],
    reads=("telemetry", "rollups"),
    writes=("machine mappings", "shift calendars", "reason trees", "stops and their reasons"),
    classification="important",
    router=router,
    pages=(
        AppPage(slug="board", title=Localized(en="OEE board", zh_cn="OEE 看板"), script="board.js"),
        AppPage(slug="site", title=Localized(en="Site OEE", zh_cn="工厂 OEE"), script="site.js"),
        AppPage(slug="losses", title=Localized(en="Losses", zh_cn="损失分析"), script="losses.js"),
        AppPage(slug="setup", title=Localized(en="Setup", zh_cn="配置"), script="setup.js"),
    ),
    static_dir=HERE / "static",
    workers=(detect_stops,),
    migrations=HERE / "migrations",
)
