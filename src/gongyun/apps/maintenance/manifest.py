"""The manifest of the built-in ``maintenance`` app (entry point ``gongyun.apps``: maintenance)."""

from __future__ import annotations

from pathlib import Path

from gongyun.apps import AppManifest, AppPage, Localized
from gongyun.apps.maintenance.cli import app as cli
from gongyun.apps.maintenance.estimator import estimator
from gongyun.apps.maintenance.routes import router
from gongyun.apps.maintenance.settings import Settings
from gongyun.apps.maintenance.worker import scorer

HERE = Path(__file__).parent
VERSION = "0.1.0"
SCRIPT = "maintenance.js"

MANIFEST = AppManifest(
    name="maintenance",
    version=VERSION,
    platform=">=0.1,<1",
    title=Localized(en="Equipment health", zh_cn="设备健康"),
    description=Localized(
        en="Anomaly detection, health index, remaining useful life, fault diagnosis and work orders.",
        zh_cn="异常检测、健康指数、剩余寿命预测、故障诊断与维修工单。",
    ),
    permissions=[
        "assets:read",
        "devices:read",
        "telemetry:read",
        "telemetry:write",
        "alarms:read",
        "alarms:ack",
        "alarms:write",
    ],
    reads=("assets", "telemetry", "alarms"),
    writes=("anomaly scores", "health index", "RUL models", "maintenance work orders", "alarm rules"),
    classification="important",
    settings=Settings,
    router=router,
    pages=(
        AppPage(slug="fleet", title=Localized(en="Equipment health", zh_cn="设备健康"), script=SCRIPT),
        AppPage(slug="equipment", title=Localized(en="Equipment", zh_cn="设备详情"), script=SCRIPT),
        AppPage(slug="models", title=Localized(en="Model registry", zh_cn="模型注册表"), script=SCRIPT),
        AppPage(slug="orders", title=Localized(en="Work orders", zh_cn="维修工单"), script=SCRIPT),
    ),
    static_dir=HERE / "static",
    workers=(scorer, estimator),
    migrations=HERE / "migrations",
    cli=cli,
)
