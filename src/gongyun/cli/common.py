"""Shared CLI plumbing: settings from options, the database, one-line errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.config import Settings, load_settings
from gongyun.db import Database

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


class State:
    """Options given before the subcommand."""

    data_dir: Path | None = None
    config: Path | None = None
    debug: bool = False


STATE = State()


def settings(**overrides: Any) -> Settings:
    """Settings with the global CLI options applied."""
    if STATE.data_dir is not None:
        overrides.setdefault("data_dir", STATE.data_dir)
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def log_level(cfg: Settings) -> str:
    """The level to log at: DEBUG under ``--debug`` (libraries included), else ``log_level``."""
    return "DEBUG" if STATE.debug else cfg.log_level


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion."""
    return asyncio.run(coro)


def announce_password(cfg: Settings, password: str | None) -> None:
    """Print a generated first-admin password, once, to the terminal (never to the logs)."""
    if password:
        console.print(
            f"[bold yellow]First admin created[/]: user [bold]{cfg.admin_username}[/] "
            f"password [bold]{password}[/]  (shown once; change it with `gongyun user passwd`)",
            highlight=False,
        )


@asynccontextmanager
async def db_session(cfg: Settings) -> AsyncIterator[AsyncSession]:
    """A committed-on-success session on a migrated database."""
    from gongyun.platform import prepare_database  # imported when a command opens the database

    announce_password(cfg, await prepare_database(cfg))
    db = Database(cfg.effective_database_url)
    try:
        async with db.session() as session:
            yield session
    finally:
        await db.dispose()
