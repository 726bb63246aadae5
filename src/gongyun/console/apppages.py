"""Apps' console pages: each page is the console shell running a script from the app's package.

``/apps/<app>/<page>`` renders the shell (navigation, language, session) around an empty
``#gy-app-root``; the app's script, served from its package under
``/console/apps/<app>/static/``, registers ``Gongyun.pages["app:<app>/<page>"]`` and fills it
with data from the app's API routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from gongyun.apps import AppEntry, AppHost, AppStatus
from gongyun.console.pages import PAGES, ConsoleRenderer
from gongyun.errors import NotFound

APPS_PAGE = next(p for p in PAGES if p.slug == "apps")


def _entry(request: Request, name: str) -> AppEntry:
    platform = getattr(request.app.state, "platform", None)
    host: AppHost | None = getattr(platform, "apps", None)
    entry = host.get(name) if host is not None else None
    if entry is None or entry.manifest is None or entry.status is AppStatus.failed:
        raise NotFound(f"no app called {name!r}")
    return entry


def build_app_pages_router(renderer: ConsoleRenderer) -> APIRouter:
    """The routes of apps' console pages and static files (kept out of the OpenAPI schema)."""
    router = APIRouter(include_in_schema=False)
    static: dict[str, StaticFiles] = {}

    @router.get("/apps/{app}/{page}")
    async def app_page(request: Request, app: str, page: str) -> Response:
        manifest = _entry(request, app).manifest
        assert manifest is not None
        found = next((p for p in manifest.pages if p.slug == page), None)
        if found is None:
            raise NotFound(f"app {app!r} has no page {page!r}")
        return renderer.render(
            request,
            APPS_PAGE,
            "app_page.html",
            body_page=f"app:{app}/{page}",
            app_name=app,
            app_page=found,
            app_manifest=manifest,
        )

    @router.get("/console/apps/{app}/static/{path:path}")
    async def app_static(request: Request, app: str, path: str) -> Response:
        manifest = _entry(request, app).manifest
        assert manifest is not None
        if manifest.static_dir is None:
            raise NotFound(f"app {app!r} has no static files")
        files = static.setdefault(app, StaticFiles(directory=manifest.static_dir))
        # StaticFiles resolves the path safely (no escape from the directory) and sets the headers
        return await files.get_response(path, request.scope)

    return router
