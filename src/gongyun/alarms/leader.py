"""One alarm engine for all the processes of a deployment.

Every ``gongyun serve`` process ingests and answers queries, but the alarm engine must be single:
its states live in memory. In the server profile (PostgreSQL and a shared bus) the processes
elect it: :class:`LeaderLock` holds ``pg_try_advisory_lock(LOCK_KEY)`` on a dedicated connection
for as long as the process leads. A candidate tries every ``retry_s``; the leader checks its lock
connection every ``check_s`` and stops its engine at once when the connection is lost (the lock
went with it, so another process may take over). A check that only gets no answer in time pauses
the engine (no ticks, no consumers, the states kept) and ``SLOW_LIMIT`` of them in a row step down.

Fencing: every election starts a new term (``alarm_leader.term``, incremented while holding the
lock, before the new leader loads the states). Every save transaction of the engine holds that
row (shared) and checks it is still its own term, so a deposed leader that has not noticed yet
writes nothing after its successor loaded: its transaction aborts and it steps down at once.
:class:`AlarmHost` runs the engine, its command worker and its points consumer only while elected;
in the embedded profile (one process) it runs them always, without a term.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from gongyun.alarms import commands, feed
from gongyun.alarms.commands import CommandWorker
from gongyun.alarms.engine import AlarmEngine
from gongyun.bus import Bus, Subscription
from gongyun.core.tasks import cancel_and_wait

if TYPE_CHECKING:
    import psycopg

_log = logging.getLogger("gongyun.alarms.leader")


def _pg() -> ModuleType:
    """psycopg, imported on first use: only the server profile elects a leader, and the embedded
    profile (``make run``) installs no PostgreSQL driver."""
    import psycopg

    return psycopg


LOCK_KEY = 0x67_79_61_6C_61_72_6D
"""The advisory lock id of the alarm engine's leadership ("gyalarm")."""
RETRY_S = 2.0
CHECK_S = 2.0
SLOW_LIMIT = 3
"""Checks in a row without an answer (each ``check_s`` long) after which the leader steps down."""
OK, SLOW, LOST = "ok", "slow", "lost"
_NEW_TERM = (
    "INSERT INTO alarm_leader (id, term) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET term = alarm_leader.term + 1 RETURNING term"
)
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
    async with await _pg().AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
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
        on_paused: Callable[[], Awaitable[None]] | None = None,
        on_resumed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.url = libpq_url(url)
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.on_paused = on_paused
        self.on_resumed = on_resumed
        self.key = key
        self.retry_s = retry_s
        self.check_s = check_s
        self.leader = False
        self.term: int | None = None
        """The fencing term of the current (or last) leadership of this process."""
        self.terms = 0
        self.lost = 0
        self.slow = 0
        """Checks in a row without an answer (0: the lock connection answers)."""
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[bool] | None = None
        self._losing: asyncio.Task[None] | None = None
        self._mutex = asyncio.Lock()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the lock connection (None when not leading)."""
        return self._conn.info.backend_pid if self._conn is not None and self.leader else None

    async def start(self) -> None:
        """Campaign in the background (the first attempt is made before this returns)."""
        if self._task is None:
            async with self._mutex:
                await self._step()
            self._task = asyncio.create_task(self._run(), name="alarm-leader")

    async def stop(self) -> None:
        """Stop campaigning; step down (engine stopped first, then the lock released)."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._losing is not None:  # a step-down under way finishes first
            with contextlib.suppress(Exception):
                await self._losing
        async with self._mutex:
            await self._step_down()

    def lose(self, reason: str) -> None:
        """Step down soon: the engine found its term over or cannot save (called from the engine)."""
        if self.leader and self._losing is None:
            _log.warning("the alarm engine steps down here: %s", reason)
            self._losing = asyncio.create_task(self._lose(), name="alarm-leader-lose")

    async def _lose(self) -> None:
        try:
            await self._callback(self.on_paused, "pausing the alarm engine")  # consumers stop at once
            async with self._mutex:
                if self.leader:
                    self.lost += 1
                    await self._step_down()
        finally:
            self._losing = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_s if self.leader else self.retry_s)
            try:
                async with self._mutex:
                    await self._step()
            except Exception:
                _log.exception("alarm leader election step failed")

    async def _step(self) -> None:
        if self.leader:
            await self._keep()
            return
        if not await self._try_lock():
            return
        try:
            self.term = await self._new_term()
        except (_pg().Error, TimeoutError, OSError) as exc:
            _log.warning("cannot start a new alarm leader term, giving the lock back: %s", exc)
            await self._close()
            return
        self.leader = True
        self.terms += 1
        self.slow = 0
        _log.info("this process runs the alarm engine now (term %d)", self.term)
        try:
            await self.on_elected()
        except Exception:
            _log.exception("starting the alarm engine failed; giving the lock back")
            await self._step_down()

    async def _keep(self) -> None:
        """One check of a leader: resume after slow checks, pause on one, step down when lost."""
        state = await self._check()
        if state == OK:
            if self.slow:
                _log.info("the alarm engine's lock connection answers again: resuming the engine")
                self.slow = 0
                await self._callback(self.on_resumed, "resuming the alarm engine")
            return
        if state == SLOW:
            self.slow += 1
            if self.slow == 1:
                _log.warning("the alarm engine's lock connection does not answer: pausing the engine")
                await self._callback(self.on_paused, "pausing the alarm engine")
            if self.slow < SLOW_LIMIT:
                return
            _log.warning("no answer on the lock connection for %d checks: stopping the engine", self.slow)
        else:
            _log.warning("lost the alarm engine's lock connection: stopping the engine here")
        self.lost += 1
        await self._step_down()

    async def _callback(self, callback: Callable[[], Awaitable[None]] | None, what: str) -> None:
        if callback is not None:
            try:
                await callback()
            except Exception:
                _log.exception("%s failed", what)

    async def _check(self) -> str:
        """OK, SLOW (no answer within ``check_s``; the probe stays out) or LOST (closed or failed)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return LOST
        if self._probe is None:
            self._probe = asyncio.create_task(self._ping(conn), name="alarm-leader-probe")
        done, _ = await asyncio.wait({self._probe}, timeout=self.check_s)
        if not done:
            return SLOW
        probe, self._probe = self._probe, None
        return OK if probe.result() else LOST

    @staticmethod
    async def _ping(conn: psycopg.AsyncConnection[Any]) -> bool:
        try:
            await conn.execute("SELECT 1")
        except (_pg().Error, OSError):
            return False
        return True

    async def _new_term(self) -> int:
        """Start a new fencing term (on the lock connection, while holding the lock)."""
        assert self._conn is not None
        async with asyncio.timeout(max(self.retry_s, 5.0)):
            cur = await self._conn.execute(_NEW_TERM)
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def _try_lock(self) -> bool:
        try:
            async with asyncio.timeout(max(self.retry_s, 5.0)):
                if self._conn is None or self._conn.closed:
                    self._conn = await _pg().AsyncConnection.connect(
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
        except (_pg().Error, TimeoutError, OSError) as exc:
            _log.debug("alarm leader candidate cannot reach PostgreSQL: %s", exc)
            await self._close()
            return False
        return bool(row and row[0])

    async def _step_down(self) -> None:
        if self.leader:
            self.leader = False
            self.slow = 0
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
        probe, self._probe = self._probe, None
        if probe is not None:  # fails at once on the closed connection
            probe.cancel()
            with contextlib.suppress(BaseException):
                await probe


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
        self.election = (
            LeaderLock(
                elect_url, self._activate, self._deactivate, on_paused=self._pause, on_resumed=self._resume
            )
            if elect_url
            else None
        )
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
        if self.election is not None:  # fenced: saves only while this term is the newest
            engine.fence(self.election.term, self.election.lose)
        await engine.load()  # the states every previous leader saved
        engine.start(self.tick_s)
        try:
            await self._resume()
        except BaseException:
            await self._deactivate()
            raise
        self._active = True

    async def _resume(self) -> None:
        """Tick and consume (after the election, or after the lock connection answers again)."""
        engine = self.engine
        if not engine.accepting:  # deposed meanwhile: it steps down, never reopened
            return
        engine.start(self.tick_s)
        if self.commands is None:
            if self.election is None:
                self.commands = CommandWorker(engine, self.bus)
            else:  # a consumer per deployment, forgotten a day after its last leader
                forget = commands.KEEP_DONE.total_seconds()
                self.commands = CommandWorker(
                    engine, self.bus, durable=self._durables[0], forget_after_s=forget
                )
            await self.commands.start()
        if self.points_bus is not None and self._points is None:
            self._points = await feed.consume(self.points_bus, engine, self._durables[1])

    async def _pause(self) -> None:
        """Stop ticking and consuming at once, keeping the states (the lock may be lost)."""
        await self.engine.pause()
        await self._stop_consumers()

    async def _stop_consumers(self) -> None:
        points, self._points = self._points, None  # safe to call twice at once
        if points is not None:
            with contextlib.suppress(Exception):
                await points.close()
        worker, self.commands = self.commands, None
        if worker is not None:
            await worker.stop()

    async def _deactivate(self) -> None:
        self._active = False  # ingest hands points to the bus from now on
        await self.engine.pause()
        await self._stop_consumers()
        await self.engine.stop()
        self.engine.clear()
