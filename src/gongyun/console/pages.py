"""Console pages: the registry of areas and the routes that render them.

Pages are shells rendered in the visitor's language; their data comes from the JSON API,
called by ``static/console.js`` with the token kept in the browser's sessionStorage.
Later issues fill an area by giving its ``Page`` its own template.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gongyun import __version__
from gongyun.console.i18n import CATALOGUES, COOKIE, LANGUAGES, negotiate, normalize_lang, translator
from gongyun.security.rbac import RANK, Role

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
STATIC_PREFIX = "/console/static"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600

# Applied to every console page: scripts and styles only from this origin, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Page:
    """One console page: its URL slug, template, navigation icon and readiness."""

    slug: str
    template: str = "area.html"
    icon: str = ""
    ready: bool = False
    auth: bool = True

    @property
    def title_key(self) -> str:
        """Catalogue key of the page title (also its navigation label)."""
        return f"nav.{self.slug}"

    @property
    def desc_key(self) -> str:
        """Catalogue key of the one-line description under the title."""
        return f"area.{self.slug}.desc"


# SVG path data (24x24 viewBox, stroked) for the navigation icons.
_ICONS = {
    "overview": "M3 13h8V3H3zM13 21h8V11h-8zM3 21h8v-6H3zM13 3v6h8V3z",
    "assets": "M3 21V9l6-4v4l6-4v4l6-4v16zM7 17h2M11 17h2M15 17h2",
    "devices": "M4 6h16v10H4zM8 20h8M12 16v4M8 10h.01M12 10h4",
    "identifiers": "M4 5h3v14H4zM10 5h1v14h-1zM14 5h2v14h-2zM19 5h1v14h-1z",
    "alarms": "M12 3a6 6 0 0 1 6 6v5l2 3H4l2-3V9a6 6 0 0 1 6-6zM10 20a2 2 0 0 0 4 0",
    "apps": "M4 4h6v6H4zM14 4h6v6h-6zM4 14h6v6H4zM14 14h6v6h-6z",
    "security": "M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6zM9 12l2 2 4-4",
    "admin": (
        "M12 8a4 4 0 1 1 0 8 4 4 0 0 1 0-8zM12 2v3M12 19v3M2 12h3M19 12h3M5 5l2 2M17 17l2 2M5 19l2-2M17 7l2-2"
    ),
}

PAGES: tuple[Page, ...] = (
    Page("overview", "overview.html", _ICONS["overview"], ready=True),
    Page("assets", "assets.html", _ICONS["assets"], ready=True),
    Page("devices", "devices.html", _ICONS["devices"], ready=True),
    Page("identifiers", "identifiers.html", _ICONS["identifiers"], ready=True),
    Page("alarms", "alarms.html", _ICONS["alarms"], ready=True),
    Page("apps", "apps.html", _ICONS["apps"], ready=True),
    Page("security", "security.html", _ICONS["security"], ready=True),
    Page("admin", "admin.html", _ICONS["admin"], ready=True),
)
LOGIN = Page("login", "login.html", auth=False, ready=True)

# Every console route, all public at the HTTP level (data comes from authenticated API calls).
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {("GET", "/"), ("GET", "/login"), ("GET", "/console/lang/{code}"), ("GET", STATIC_PREFIX + "/{path}")}
    | {("GET", f"/{p.slug}") for p in PAGES}
    | {("GET", "/apps/{app}/{page}"), ("GET", "/console/apps/{app}/static/{path:path}")}  # apps' pages
)


def _asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in STATIC_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def safe_next(value: str | None, default: str = "/overview") -> str:
    """A local path to go back to; anything that could leave the site becomes ``default``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return default
    return value


class ConsoleRenderer:
    """Renders console pages in the visitor's language with the shared layout."""

    def __init__(self) -> None:
        self.templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
        self.version = _asset_version()
        self.roles = [(role.value, RANK[role]) for role in sorted(Role, key=lambda r: -RANK[r])]

    def static_url(self, name: str) -> str:
        """URL of a static file with a content-hash cache buster."""
        return f"{STATIC_PREFIX}/{name}?v={self.version}"

    def render(self, request: Request, page: Page, template: str | None = None, **extra: Any) -> Response:
        """Render ``page`` (or ``template`` within it) for ``request`` with security headers."""
        lang = negotiate(request.cookies.get(COOKIE), request.headers.get("accept-language"))
        context: dict[str, Any] = {
            "page": page,
            "nav": PAGES,
            "lang": lang,
            "languages": LANGUAGES,
            "t": translator(lang),
            "js_catalogue": CATALOGUES[lang],
            "static": self.static_url,
            "roles": self.roles,
            "role_ranks": {value: rank for value, rank in self.roles},
            "version": __version__,
            "path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **extra,
        }
        response = self.templates.TemplateResponse(request, template or page.template, context)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Language"] = lang
        response.headers["Vary"] = "Cookie, Accept-Language"
        return response


def build_router(renderer: ConsoleRenderer) -> APIRouter:
    """The console's page routes (kept out of the OpenAPI schema)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse("/overview", status_code=307)

    @router.get("/login")
    async def login(request: Request) -> Response:
        return renderer.render(request, LOGIN)

    @router.get("/console/lang/{code}")
    async def set_language(
        code: str, next_: Annotated[str | None, Query(alias="next")] = None
    ) -> RedirectResponse:
        lang = normalize_lang(code)
        response = RedirectResponse(safe_next(next_, "/"), status_code=303)
        if lang is not None:
            response.set_cookie(
                COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE, path="/", samesite="lax", httponly=False
            )
        return response

    for page in PAGES:
        router.add_api_route(f"/{page.slug}", _page_endpoint(renderer, page), methods=["GET"])
    return router


def _page_endpoint(renderer: ConsoleRenderer, page: Page) -> Any:
    async def endpoint(request: Request) -> Response:
        return renderer.render(request, page)

    endpoint.__name__ = f"console_{page.slug}"
    return endpoint
