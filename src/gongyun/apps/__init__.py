"""The app framework: apps are packages registered under the ``gongyun.apps`` entry point.

What an app developer uses::

    from gongyun.apps import AppManifest, AppPage, Localized, AppCtx, WorkerContext, current_app, needs

See ``docs/apps.md``. Built-in apps live in sub-packages of this one and register the same way.
"""

from gongyun.apps.context import AppCtx, WorkerContext, app_actor, current_app, needs
from gongyun.apps.discovery import GROUP, AppEntry, AppStatus
from gongyun.apps.host import AppHost
from gongyun.apps.manifest import AppManifest, AppPage, Localized, check_manifest
from gongyun.apps.params import IsoTime, RowId
from gongyun.apps.services import UNAVAILABLE, AppPoint, AppServices

__all__ = [
    "GROUP",
    "UNAVAILABLE",
    "AppCtx",
    "AppEntry",
    "AppHost",
    "AppManifest",
    "AppPage",
    "AppPoint",
    "AppServices",
    "AppStatus",
    "IsoTime",
    "Localized",
    "RowId",
    "WorkerContext",
    "app_actor",
    "check_manifest",
    "current_app",
    "needs",
]
