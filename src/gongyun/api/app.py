"""The FastAPI app factory."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gongyun import __version__
from gongyun.api.middleware import RequestContextMiddleware
from gongyun.api.openapi import install_openapi
from gongyun.api.problems import install_problem_handlers
from gongyun.api.routes.apps import mount_apps
from gongyun.apps import AppHost
from gongyun.config import Settings, get_settings
from gongyun.platform import Platform, prepare_database, start_platform

log = logging.getLogger("gongyun.api")

# Resource routers, in the order they appear in the OpenAPI document.
ROUTER_MODULES = (
    "health",
    "auth",
    "tenants",
    "users",
    "apikeys",
    "audit",
    "classification",
    "pki",
    "assets",
    "devices",
    "telemetry",
    "alarms",
    "identifiers",
    "apps",
    "ids",
)


def _include_routers(app: FastAPI) -> None:
    for name in ROUTER_MODULES:
        module_name = f"gongyun.api.routes.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.include_router(module.router)


StartHook = Callable[[Platform], Awaitable[Any]]


def create_app(
    settings: Settings | None = None,
    platform: Platform | None = None,
    on_start: Sequence[StartHook] = (),
    prepare: bool = True,
) -> FastAPI:
    """Build the API + console app; a given ``platform`` is used as is (tests), else one is started.

    ``on_start`` hooks run once the platform is up (``gongyun demo`` starts the factory there);
    ``prepare=False`` skips migrations and bootstrap when the caller has just done them.
    """
    settings = settings or (platform.settings if platform else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = platform is None
        if own:
            if prepare:
                await prepare_database(settings)
            app.state.platform = await start_platform(settings, apps=apps)
        else:
            app.state.platform = platform
        for hook in on_start:
            await hook(app.state.platform)
        try:
            yield
        finally:
            if own:
                await app.state.platform.close()

    app = FastAPI(
        title="Gongyun API",
        version=__version__,
        description="Gongyun (工云) industrial internet platform: REST API. "
        "Errors are RFC 9457 problem+json documents with a stable `code`.",
        lifespan=lifespan,
        redoc_url=None,
    )
    if platform is not None:
        app.state.platform = platform
    install_problem_handlers(app)
    _include_routers(app)
    apps = platform.apps if platform is not None and platform.apps is not None else AppHost.discover()
    mount_apps(app, apps)
    install_openapi(app)
    try:
        console = importlib.import_module("gongyun.console")
    except ModuleNotFoundError as exc:
        if exc.name != "gongyun.console":
            raise
    else:
        console.mount_console(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        trusted_proxies=settings.trusted_proxies,
    )
    return app
