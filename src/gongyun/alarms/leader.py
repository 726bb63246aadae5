"""One alarm engine for all the processes of a deployment.

Every ``gongyun serve`` process ingests and answers queries, but the alarm engine must be single:
its states live in memory. In the server profile (PostgreSQL and a shared bus) the processes
elect it: :class:`LeaderLock` holds ``pg_try_advisory_lock(LOCK_KEY)`` on a dedicated connection
for as long as the process leads. A candidate tries every ``retry_s``; the leader checks its lock
connection every ``check_s`` and stops its engine at once when the connection is lost (the lock
went with it, so another process may take over). :class:`AlarmHost` runs the engine, its command
worker and its points consumer only while elected; in the embedded profile (one process) it runs
them always.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from gongyun.alarms import commands, feed
from gongyun.alarms.commands import CommandWorker
from gongyun.alarms.engine import AlarmEngine
from gongyun.bus import Bus, Subscription

_log = logging.getLogger("gongyun.alarms.leader")

LOCK_KEY = 0x67_79_61_6C_61_72_6D
"""The advisory lock id of the alarm engine's leadership ("gyalarm")."""
RETRY_S = 2.0
CHECK_S = 2.0
_KEEPALIVE = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
"""The server notices a dead leader (and frees its lock) within about 11 s."""


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (``postgresql+psycopg://``) as a libpq one."""
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


async def deployment_key(url: str) -> str:
    """A short id of the PostgreSQL database the processes share (names their bus consumers).

    Every process of one deployment gets the same id; deployments sharing a NATS server (tests,
    staging beside production) get their own consumers and so never take each other's messages.
    """
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT current_database(), oid FROM pg_database WHERE datname = current_database()"
        )
        row = await cur.fetchone()
    return hashlib.sha256(repr(row).encode()).hexdigest()[:12]


class LeaderLock:
    """Campaigns for a PostgreSQL advisory lock; calls back when it is won and when it is lost."""

    def __init__(
        self,
        url: str,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        *,
        key: int = LOCK_KEY,
        retry_s: float = RETRY_S,
        check_s: float = CHECK_S,
    ) -> None:
        self.url = libpq_url(url)
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.key = key
        self.retry_s = retry_s
        self.check_s = check_s
        self.leader = False
        self.terms = 0
        self.lost = 0
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the lock connection (None when not leading)."""
        return self._conn.info.backend_pid if self._conn is not None and self.leader else None

    async def start(self) -> None:
        """Campaign in the background (the first attempt is made before this returns)."""
        if self._task is None:
            await self._step()
            self._task = asyncio.create_task(self._run(), name="alarm-leader")

    async def stop(self) -> None:
        """Stop campaigning; step down (engine stopped first, then the lock released)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._step_down()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_s if self.leader else self.retry_s)
            try:
                await self._step()
            except Exception:
                _log.exception("alarm leader election step failed")

    async def _step(self) -> None:
        if self.leader:
            if not await self._alive():
                _log.warning("lost the alarm engine's lock connection: stopping the engine here")
                self.lost += 1
                await self._step_down()
            return
        if not await self._try_lock():
            return
        self.leader = True
        self.terms += 1
        _log.info("this process runs the alarm engine now")
        try:
            await self.on_elected()
        except Exception:
            _log.exception("starting the alarm engine failed; giving the lock back")
            await self._step_down()

    async def _alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            async with asyncio.timeout(self.check_s):
                await conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError, OSError):
            return False
        return True

    async def _try_lock(self) -> bool:
        try:
            async with asyncio.timeout(max(self.retry_s, 5.0)):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self.url,
                        autocommit=True,
                        connect_timeout=5,
                        application_name="gongyun-alarm-leader",
                        options=_KEEPALIVE,
                        keepalives=1,
                        keepalives_idle=5,
                        keepalives_interval=2,
                        keepalives_count=3,
                    )
                cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                row = await cur.fetchone()
        except (psycopg.Error, TimeoutError, OSError) as exc:
            _log.debug("alarm leader candidate cannot reach PostgreSQL: %s", exc)
            await self._close()
            return False
        return bool(row and row[0])

    async def _step_down(self) -> None:
        if self.leader:
            self.leader = False
            try:
                await self.on_deposed()
            except Exception:
                _log.exception("stopping the alarm engine failed")
        await self._close()  # closing the session frees the lock

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


class AlarmHost:
    """Runs the alarm engine, its command worker and its points consumer when this process should."""

    def __init__(
        self,
        engine: AlarmEngine,
        bus: Bus | None,
        *,
        elect_url: str | None = None,
        points_bus: Bus | None = None,
        tick_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.points_bus = points_bus
        self.tick_s = tick_s
        self.commands: CommandWorker | None = None
        self.elect_url = elect_url
        self.election = LeaderLock(elect_url, self._activate, self._deactivate) if elect_url else None
        self._durables: tuple[str, str] = (commands.DURABLE, feed.DURABLE)
        self._points: Subscription | None = None
        self._active = False

    @property
    def local(self) -> AlarmEngine | None:
        """The engine when it runs in this process (else None: it runs in another one)."""
        return self.engine if self._active else None

    async def start(self) -> None:
        """Run the engine here (no election), or campaign for it."""
        if self.election is None:
            await self._activate()
        else:
            assert self.elect_url is not None
            key = await deployment_key(self.elect_url)
            self._durables = (f"{commands.DURABLE}-{key}", f"{feed.DURABLE}-{key}")
            await self.election.start()

    async def stop(self) -> None:
        """Stop the engine (and give up the leadership)."""
        if self.election is not None:
            await self.election.stop()
        else:
            await self._deactivate()

    async def _activate(self) -> None:
        engine = self.engine
        engine.clear()
        await engine.load()  # the states every previous leader saved
        engine.start(self.tick_s)
        try:
            if self.election is None:
                self.commands = CommandWorker(engine, self.bus)
            else:  # a consumer per deployment, forgotten a day after its last leader
                forget = commands.KEEP_DONE.total_seconds()
                self.commands = CommandWorker(
                    engine, self.bus, durable=self._durables[0], forget_after_s=forget
                )
            await self.commands.start()
            if self.points_bus is not None:
                self._points = await feed.consume(self.points_bus, engine, self._durables[1])
        except BaseException:
            await self._deactivate()
            raise
        self._active = True

    async def _deactivate(self) -> None:
        self._active = False  # ingest hands points to the bus from now on
        if self._points is not None:
            with contextlib.suppress(Exception):
                await self._points.close()
            self._points = None
        if self.commands is not None:
            await self.commands.stop()
            self.commands = None
        await self.engine.stop()
        self.engine.clear()
