"""The Gongyun web console: server-rendered page shells in English and Simplified Chinese."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gongyun.console.pages import (
    PAGES,
    PUBLIC_ROUTES,
    STATIC_DIR,
    STATIC_PREFIX,
    ConsoleRenderer,
    build_router,
)

__all__ = ["PAGES", "PUBLIC_ROUTES", "mount_console"]


def mount_console(app: FastAPI) -> None:
    """Add the console pages and its static files to ``app``."""
    from gongyun.console.apppages import build_app_pages_router

    renderer = ConsoleRenderer()
    app.include_router(build_router(renderer))
    app.include_router(build_app_pages_router(renderer))
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="console-static")
