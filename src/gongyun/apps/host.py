"""The app host: discovers apps, applies their migrations, runs their workers, stops them.

A broken app never takes the platform down: refused manifests, import errors, failed
migrations and workers that raise mark that app failed (with the reason) and the others run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint

from gongyun.apps.context import WorkerContext
from gongyun.apps.discovery import AppEntry, AppStatus, discover
from gongyun.apps.migrations import pending_revisions, upgrade_app
from gongyun.apps.services import UNAVAILABLE, AppServices
from gongyun.bus import Bus
from gongyun.config import Settings as PlatformSettings
from gongyun.db import Database

log = logging.getLogger("gongyun.apps")
STOP_TIMEOUT_S = 10.0


class AppHost:
    """Every app this process knows, and the workers of those that run."""

    def __init__(self, entries: Iterable[AppEntry]) -> None:
        self._entries = list(entries)
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self.services: AppServices = UNAVAILABLE
        """What the platform lends the apps of this process (set before :meth:`start`)."""
        self.config: PlatformSettings | None = None
        """The platform's settings, handed to the workers (set before :meth:`start`)."""

    @classmethod
    def discover(cls, eps: Iterable[EntryPoint] | None = None) -> AppHost:
        """A host for the apps of the ``gongyun.apps`` entry points (or ``eps``)."""
        return cls(discover(eps))

    # ---- what is known ----

    def entries(self) -> list[AppEntry]:
        """Every discovered app, failed ones included, in catalogue order."""
        return list(self._entries)

    def get(self, name: str) -> AppEntry | None:
        """The app called ``name`` that owns the name (not a refused namesake), if any."""
        for entry in self._entries:
            if entry.name == name and entry.manifest is not None:
                return entry
        return next((e for e in self._entries if e.name == name), None)

    # ---- lifecycle ----

    async def migrate(self, url: str) -> None:
        """Apply each valid app's own migration branch; an app whose migration fails is marked failed."""
        for entry in self._entries:
            manifest = entry.manifest
            if manifest is None or manifest.migrations is None or entry.status is AppStatus.failed:
                continue
            try:
                if await pending_revisions(url, entry.name, manifest.migrations):
                    await upgrade_app(url, entry.name, manifest.migrations)
            except Exception as exc:  # one app's bad migration must not stop the platform
                log.exception("migrations of app %s failed", entry.name)
                entry.fail(f"migration failed: {type(exc).__name__}: {exc}")

    async def start(self, db: Database, bus: Bus, *, workers: bool = True) -> None:
        """Bring every valid app's schema up to date and start its workers (unless ``workers`` is off:
        a process that only serves the API)."""
        await self.migrate(db.url)
        for entry in self._entries:
            if entry.manifest is None or entry.status is AppStatus.failed:
                continue
            entry.status = AppStatus.running
            if not workers:
                continue
            logger = logging.getLogger(f"gongyun.apps.{entry.name}")
            ctx = WorkerContext(entry.manifest, db, bus, logger, self.services, self.config)
            tasks = []
            for worker in entry.manifest.workers:
                label = getattr(worker, "__name__", "worker")
                task = asyncio.create_task(worker(ctx), name=f"app:{entry.name}:{label}")
                task.add_done_callback(functools.partial(self._worker_done, entry, label))
                tasks.append(task)
            self._tasks[entry.name] = tasks
            log.info("app %s %s started", entry.name, entry.manifest.version, extra={"app": entry.name})

    def _worker_done(self, entry: AppEntry, worker: str, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        log.error("worker %s of app %s raised", worker, entry.name, exc_info=exc)
        entry.fail(f"worker {worker} raised {type(exc).__name__}: {exc}")
        for other in self._tasks.get(entry.name, []):
            other.cancel()  # a failed app stops as a whole

    async def stop(self) -> None:
        """Cancel every worker and wait for them (bounded)."""
        tasks = [t for ts in self._tasks.values() for t in ts]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        self._tasks.clear()
        for entry in self._entries:
            if entry.status is AppStatus.running:
                entry.status = AppStatus.stopped
