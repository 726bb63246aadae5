"""The manifest of the trace app (registered under ``gongyun.apps`` like any third-party app)."""

from __future__ import annotations

from pathlib import Path

from gongyun.apps import AppManifest, AppPage, Localized
from gongyun.apps.trace import __version__
from gongyun.apps.trace.cli import app as cli
from gongyun.apps.trace.edge import capture
from gongyun.apps.trace.outbox import deliver
from gongyun.apps.trace.routes import router
from gongyun.apps.trace.settings import Settings

HERE = Path(__file__).parent

MANIFEST = AppManifest(
    name="trace",
    version=__version__,
    platform=">=0.1,<1",
    title=Localized(en="Traceability", zh_cn="产品追溯"),
    description=Localized(
        en="Product identifiers, genealogy, EPCIS 2.0 events, trace and recall.",
        zh_cn="产品标识、谱系、EPCIS 2.0 事件、追溯与召回。",
    ),
    permissions=["identifiers:read", "identifiers:write"],
    reads=("identifiers",),
    writes=("identifiers", "genealogy", "EPCIS events", "recalls"),
    classification="important",
    settings=Settings,
    router=router,
    pages=(
        AppPage(slug="main", title=Localized(en="Traceability", zh_cn="产品追溯"), script="trace.js"),
        AppPage(slug="product", title=Localized(en="Product", zh_cn="产品"), script="product.js"),
    ),
    static_dir=HERE / "static",
    migrations=HERE / "migrations",
    cli=cli,
    workers=(capture, deliver),
)
