"""Saving the alarm engine's transitions: one background task, in order, retried, fenced by the
leader term; flushing, stepping down and stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms import metrics, repo
from gongyun.alarms.live import LiveAlarm, _dt
from gongyun.alarms.models import AlarmEventRow
from gongyun.alarms.states import Transition
from gongyun.db import Database
from gongyun.errors import ServiceUnavailable

_log = logging.getLogger("gongyun.alarms.engine")
SAVE_RETRY_S = (0.2, 5.0)
"""A failed save is retried after the first delay, doubling up to the second."""
SAVE_ATTEMPT_S = 10.0
"""One save transaction gives up after this long (then it is retried)."""
SAVE_GIVE_UP_S = 30.0
"""An elected engine whose saves fail this long steps down (another process may take over)."""
_TERM = "SELECT term FROM alarm_leader WHERE id = 1 FOR SHARE"
_PG_TIMEOUTS = (
    "SELECT set_config('lock_timeout', '3000', true), set_config('statement_timeout', '8000', true)"
)
_PERMANENT = (IntegrityError, DataError)


@dataclass
class _Job:
    """Work for the saver: transitions to save, a queued command to apply, or a flush marker."""

    changes: list[tuple[LiveAlarm, Transition]] = field(default_factory=list)
    command_id: str | None = None
    done: asyncio.Future[Any] | None = None


class Deposed(ServiceUnavailable):
    """Another process leads the alarm engine now, or this one gave up (nothing more is saved here)."""


class AlarmSaver:
    """The saver half of :class:`~gongyun.alarms.engine.AlarmEngine` (its state is set up there)."""

    db: Database | None
    term: int | None
    on_deposed: Callable[[str], None] | None
    save_give_up_s: float
    save_failures: int
    _tasks: set[asyncio.Task[Any]]
    _ticker: asyncio.Task[None] | None
    _saves: asyncio.Queue[_Job]
    _saver: asyncio.Task[None] | None
    _closed: bool
    _failing: BaseException | None
    _waiters: set[asyncio.Future[Any]]
    _current: _Job | None

    if TYPE_CHECKING:  # provided by AlarmEngine and CommandApplier

        def _fan_out(self, changes: list[tuple[LiveAlarm, Transition]]) -> None: ...

        async def _run_command(
            self, command_id: str
        ) -> tuple[str | None, list[tuple[LiveAlarm, Transition]]]: ...

        async def pause(self) -> None: ...

    @property
    def accepting(self) -> bool:
        """False once stopped (until started again): nothing more is saved."""
        return not self._closed

    async def _persist(self, s: AsyncSession, changes: list[tuple[LiveAlarm, Transition]]) -> None:
        """Save the alarms' states and append their transitions to the history."""
        for live, tr in changes:
            m = live.machine
            await repo.save_state(
                s,
                live.tenant,
                live.rule_id,
                str(m.state),
                m.condition,
                _dt(m.shelved_until) if m.shelved_until else None,
            )
            await repo.add_event(
                s,
                AlarmEventRow(
                    tenant_id=live.tenant,
                    rule_id=live.rule_id,
                    name=live.spec.name,
                    priority=str(live.spec.priority),
                    ts=_dt(tr.ts),
                    before=str(tr.before),
                    after=str(tr.after),
                    cause=tr.cause,
                    user=tr.user,
                    value=tr.value,
                ),
            )

    # -- saving (one task, in order) ---------------------------------------------------------
    def _submit(self, changes: list[tuple[LiveAlarm, Transition]]) -> None:
        """Queue transitions to be saved, then told to listeners (at once without a database)."""
        if not changes:
            return
        if self.db is None:
            self._fan_out(changes)
            return
        self._enqueue(_Job(changes=changes))

    def _enqueue(self, job: _Job) -> None:
        if self._closed:
            if job.done is not None:
                job.done.set_exception(ServiceUnavailable("the alarm engine is not running here"))
            elif job.changes:
                _log.warning("alarm engine stopped: %d transitions not saved", len(job.changes))
            return
        self._saves.put_nowait(job)
        if self._saver is None:
            self._saver = asyncio.create_task(self._save_loop(), name="alarm-saver")

    def fence(self, term: int | None, on_deposed: Callable[[str], None] | None = None) -> None:
        """Check ``term`` in every save transaction; ``on_deposed`` is called (once) when it is over."""
        self.term, self.on_deposed = term, on_deposed

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        """A save transaction; with a term it holds the term row (shared) or raises Deposed."""
        assert self.db is not None
        async with self.db.session() as s:
            if self.db.dialect == "postgresql":
                await s.execute(text(_PG_TIMEOUTS))  # a locked table fails the attempt (retried)
            if self.term is not None:
                found = (await s.execute(text(_TERM))).scalar_one_or_none()
                if found != self.term:
                    raise Deposed(f"alarm engine term {self.term} is over (the database has {found})")
            yield s

    async def flush(self) -> None:
        """Wait until every transition queued so far is saved and told to listeners.

        Raises ServiceUnavailable while a save is failing (it is retried: whoever handed the
        input in must not treat it as done yet) and when the engine stops first.
        """
        if self._saver is None or self._closed:
            return
        if self._failing is not None:
            raise ServiceUnavailable(f"alarm transitions not saved yet: {self._failing!r}")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.add(done)
        try:
            self._enqueue(_Job(done=done))
            await done
        finally:
            self._waiters.discard(done)

    async def _drained(self) -> None:
        """Wait until everything queued so far is done (failures retried, not raised)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(done=done))
        await done

    def _fail_waiters(self, exc: BaseException) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_exception(exc)

    def _drop_queued(self, why: str) -> int:
        """Fail every queued job (the engine ``why``); the number of transitions dropped with them."""
        dropped = 0
        while not self._saves.empty():
            job = self._saves.get_nowait()
            dropped += len(job.changes)
            if job.done is not None and not job.done.done():
                job.done.set_exception(ServiceUnavailable(f"the alarm engine {why}"))
        return dropped

    async def _save_loop(self) -> None:
        while True:
            self._current = None
            job = await self._saves.get()
            self._current = job
            try:
                if job.command_id is not None:
                    status, changes = await self._run_command(job.command_id)
                    self._fan_out(changes)
                    result: Any = status
                else:
                    if job.changes:
                        await self._save(job.changes)
                    result = None
            except asyncio.CancelledError:
                if job.done is not None and not job.done.done():
                    job.done.set_exception(ServiceUnavailable("the alarm engine stopped"))
                raise
            except Deposed as exc:
                if job.done is not None and not job.done.done():
                    job.done.set_exception(exc)
                self._depose(exc)
                return
            except Exception as exc:
                if job.done is not None and not job.done.done():
                    job.done.set_exception(exc)
                else:
                    _log.exception("alarm save failed")
                continue
            if job.done is not None and not job.done.done():
                job.done.set_result(result)

    def _depose(self, exc: Deposed) -> None:
        """Save nothing more, at once: drop what is not saved and let the host step down."""
        self._closed = True
        if self._ticker is not None:  # no more ticks either (the host stops the rest)
            self._ticker.cancel()
            self._ticker = None
        current, self._current, self._saver = self._current, None, None  # this task ends
        dropped = self._drop_queued("stepped down") + (len(current.changes) if current else 0)
        metrics.DISCARDED.inc(dropped)
        _log.warning("alarm engine stepping down (%s): %d unsaved transitions discarded", exc, dropped)
        self._failing = None
        self._fail_waiters(exc)
        hook, self.on_deposed = self.on_deposed, None
        if hook is not None:
            hook(str(exc))

    async def _save(self, changes: list[tuple[LiveAlarm, Transition]]) -> None:
        """Save transitions, then tell the listeners; retried with backoff until saved.

        The job stays at the head of the queue meanwhile (the jobs behind wait, flush raises). A
        transition the database refuses for good (its rule was deleted) is dropped, logged. Raises
        Deposed when another process leads now, or when an elected engine could not save for
        ``save_give_up_s`` (stepping down lets a process that reaches the database take over).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = SAVE_RETRY_S[0]
        pending, saved, one_by_one = list(changes), [], False
        while pending:
            batch = pending[:1] if one_by_one else pending
            try:
                async with asyncio.timeout(SAVE_ATTEMPT_S), self._session() as s:
                    await self._persist(s, batch)
            except Deposed:
                raise
            except _PERMANENT as exc:
                if len(batch) > 1:
                    one_by_one = True
                else:
                    _log.error("alarm transition of rule %s refused, not saved: %r", batch[0][0].rule_id, exc)
                    metrics.DISCARDED.inc()
                    del pending[:1]
                continue
            except Exception as exc:
                self.save_failures += 1
                if self._failing is None:
                    _log.warning("saving %d alarm transitions failed (retrying): %r", len(pending), exc)
                self._failing = exc
                self._fail_waiters(ServiceUnavailable(f"alarm transitions not saved yet: {exc!r}"))
                waited = loop.time() - started
                if self.on_deposed is not None and waited >= self.save_give_up_s:
                    raise Deposed(f"alarm transitions not saved for {waited:.0f} s") from exc
                await asyncio.sleep(delay)
                delay = min(2 * delay, SAVE_RETRY_S[1])
                continue
            saved.extend(batch)
            metrics.SAVED.inc(len(batch))
            del pending[: len(batch)]
        if self._failing is not None:
            _log.info("alarm transitions saved again")
            self._failing = None
        self._fan_out(saved)

    async def drain(self) -> None:
        """Wait for saves and notifications in flight."""
        await self.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, *, save_timeout_s: float = 5.0) -> None:
        """Stop ticking, save what is queued (for at most ``save_timeout_s``), wait for notifications.

        What is not saved by then is dropped (logged); a deposed engine saves nothing more.
        """
        await self.pause()
        if self._saver is not None:
            if save_timeout_s > 0 and not self._closed:
                with contextlib.suppress(TimeoutError, ServiceUnavailable):
                    await asyncio.wait_for(self._drained(), save_timeout_s)
            self._closed = True
            saver, self._saver = self._saver, None
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            current, self._current = self._current, None
            dropped = self._drop_queued("stopped") + (len(current.changes) if current else 0)
            metrics.DISCARDED.inc(dropped)
            if dropped:
                _log.warning("alarm engine stopped: %d transitions not saved, dropped", dropped)
        self._closed = True
        self._failing = None
        self._fail_waiters(ServiceUnavailable("the alarm engine stopped"))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
