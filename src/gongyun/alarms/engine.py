"""The alarm engine: evaluates rules on stored samples and on the clock, keeps ISA-18.2 states,
records history, notifies, and tells live listeners (the console banner) what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms import repo
from gongyun.alarms.models import AlarmCommandRow, AlarmEventRow, AlarmRuleRow, AlarmStateRow
from gongyun.alarms.notify import AlarmNotice, Notifier, dispatch, make_notifier
from gongyun.alarms.outcomes import audit_command_outcome
from gongyun.alarms.rules import Condition, Debouncer
from gongyun.alarms.states import AlarmStateMachine, InvalidTransition, State, Transition
from gongyun.db import Database
from gongyun.db.base import utcnow
from gongyun.errors import Conflict, GongyunError, NotFound, ServiceUnavailable
from gongyun.telemetry.store.base import Point

_log = logging.getLogger("gongyun.alarms.engine")
US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRIORITIES = ["low", "medium", "high", "critical"]
PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"
COMMAND_TTL = timedelta(minutes=10)
"""An operator action not applied within this time is rejected rather than applied late."""
SAVE_ATTEMPTS = 3


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


@dataclass
class LiveAlarm:
    """One rule's evaluation state."""

    tenant: str
    rule_id: str
    spec: Any
    condition: Condition
    debounce: Debouncer
    machine: AlarmStateMachine

    def view(self) -> dict[str, Any]:
        """The alarm as the console shows it."""
        return {
            "rule_id": self.rule_id,
            "name": self.spec.name,
            "kind": self.spec.kind,
            "priority": str(self.spec.priority),
            "state": str(self.machine.state),
            "condition": self.machine.condition,
            "shelved_until": _dt(self.machine.shelved_until).isoformat()
            if self.machine.shelved_until
            else None,
            "value": self.condition.last_value,
            "message": self.spec.message,
            "tags": sorted(self.condition.tags),
            "since": _dt(self.machine.last_change).isoformat() if self.machine.last_change else None,
            "changed_by": self.machine.last_user,
        }


@dataclass
class _Job:
    """Work for the saver: transitions to save, a queued command to apply, or a flush marker."""

    changes: list[tuple[LiveAlarm, Transition]] = field(default_factory=list)
    command_id: str | None = None
    done: asyncio.Future[Any] | None = None


def sort_views(views: list[dict[str, Any]], only_active: bool = False) -> list[dict[str, Any]]:
    """Alarm views highest priority first, then by name (only non-normal ones with ``only_active``)."""
    if only_active:
        views = [a for a in views if a["state"] != State.normal]
    return sorted(views, key=lambda a: (-_PRIORITIES.index(a["priority"]), a["name"]))


def _restore(m: AlarmStateMachine, saved: tuple[Any, ...]) -> None:
    m.state, m.condition, m.shelved_until, m.last_change, m.last_user = saved


class CommandExpired(Conflict):
    """A queued operator action waited longer than ``COMMAND_TTL`` for the engine."""

    code = "alarm_command_expired"
    title = "Alarm request expired"


class AlarmEngine:
    """Holds every enabled rule of every tenant in memory; the database keeps what survives restarts."""

    def __init__(self, db: Database | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._alarms: dict[tuple[str, str], LiveAlarm] = {}
        self._by_tag: dict[tuple[str, str], list[LiveAlarm]] = {}
        self._notifiers: dict[str, list[Notifier]] = {}
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._seen: dict[tuple[str, str], int] = {}  # newest evaluated sample per (tenant, tag)
        self._saves: asyncio.Queue[_Job] = asyncio.Queue()
        self._saver: asyncio.Task[None] | None = None
        self._closed = False
        self.notified = 0
        self.skipped = 0

    @property
    def accepting(self) -> bool:
        """False once stopped (until started again): nothing more is saved."""
        return not self._closed

    # -- rules -----------------------------------------------------------------------------
    def put_rule(self, tenant: str, rule_id: str, spec: Any, saved: AlarmStateMachine | None = None) -> None:
        """Add or replace a rule (keeping the alarm's state when the rule already ran)."""
        old = self._alarms.get((tenant, rule_id))
        self.drop_rule(tenant, rule_id)
        if not spec.enabled:
            return
        machine = saved or (old.machine if old else AlarmStateMachine())
        live = LiveAlarm(
            tenant, rule_id, spec, Condition(spec), Debouncer(spec.on_delay_s, spec.off_delay_s), machine
        )
        live.debounce.active = live.condition.state = machine.condition
        self._alarms[(tenant, rule_id)] = live
        for tag in live.condition.tags:
            self._by_tag.setdefault((tenant, tag), []).append(live)

    def drop_rule(self, tenant: str, rule_id: str) -> None:
        """Stop evaluating a rule."""
        live = self._alarms.pop((tenant, rule_id), None)
        if live is None:
            return
        for tag in live.condition.tags:
            lst = self._by_tag.get((tenant, tag), [])
            self._by_tag[(tenant, tag)] = [x for x in lst if x is not live]

    def set_notifiers(self, tenant: str, notifiers: list[Notifier]) -> None:
        """Replace the tenant's notification targets."""
        self._notifiers[tenant] = list(notifiers)

    async def load(self) -> int:
        """Load every rule, saved state and notification target from the database."""
        if self.db is None:
            return 0
        async with self.db.session() as s:
            rows = await repo.all_rules(s)
            targets = await repo.list_notifiers(s, None)
        for rule, st in rows:
            saved = None
            if st is not None:
                saved = AlarmStateMachine(
                    State(st.state), st.condition, _us(st.shelved_until) if st.shelved_until else None
                )
            self.put_rule(rule.tenant_id, rule.id, repo.rule_spec(rule), saved)
        by_tenant: dict[str, list[Notifier]] = {}
        for t in targets:
            by_tenant.setdefault(t.tenant_id, []).append(
                make_notifier(repo.parse_target(orjson.loads(t.config_json)))
            )
        self._notifiers = by_tenant
        return len(rows)

    # -- evaluation ------------------------------------------------------------------------
    async def on_points(self, tenant: str, points: list[Point]) -> None:
        """Ingest hook: evaluate the rules reading these tags (never waits for the database).

        Samples are evaluated in time order per tag: one not newer than the newest already
        evaluated for its tag (a replayed or late sample) is skipped, so a point delivered twice
        cannot count twice toward a delay or a rate. The transitions are saved in the background,
        in order, and told to listeners once saved (:meth:`flush` waits for that).
        """
        changes: list[tuple[LiveAlarm, Transition]] = []
        async with self._lock:
            seen = self._seen
            for p in sorted(points, key=lambda x: x.ts):
                alarms = self._by_tag.get((tenant, p.tag))
                if not alarms:
                    continue
                key = (tenant, p.tag)
                last = seen.get(key)
                if last is not None and p.ts <= last:
                    self.skipped += 1
                    continue
                seen[key] = p.ts
                for live in alarms:
                    cond = live.condition.observe(p.tag, p.ts, p.value)
                    if cond is None:
                        continue
                    tr = live.machine.set_condition(live.debounce.update(cond, p.ts), p.ts, p.value)
                    if tr:
                        changes.append((live, tr))
        self._submit(changes)

    async def tick(self, now_us: int | None = None) -> None:
        """Let time pass: delays elapse, stale rules fire, shelving expires."""
        now = int(self.clock() * US) if now_us is None else now_us
        changes: list[tuple[LiveAlarm, Transition]] = []
        async with self._lock:
            for live in list(self._alarms.values()):
                cond = live.condition.at(now)
                active = live.debounce.update(cond, now) if cond is not None else live.debounce.tick(now)
                tr = live.machine.set_condition(active, now, live.condition.last_value)
                if tr:
                    changes.append((live, tr))
                tr2 = live.machine.tick(now)
                if tr2:
                    changes.append((live, tr2))
        self._submit(changes)

    # -- operator actions ------------------------------------------------------------------
    def _get(self, tenant: str, rule_id: str) -> LiveAlarm:
        live = self._alarms.get((tenant, rule_id))
        if live is None:
            raise NotFound("alarm not found")
        return live

    async def _operated(self, live: LiveAlarm, tr: Transition) -> dict[str, Any]:
        self._submit([(live, tr)])
        await self.flush()
        return live.view()

    async def ack(self, tenant: str, rule_id: str, user: str) -> dict[str, Any]:
        """Acknowledge an alarm."""
        live = self._get(tenant, rule_id)
        return await self._operated(live, live.machine.ack(user, int(self.clock() * US)))

    async def shelve(self, tenant: str, rule_id: str, user: str, duration_s: float) -> dict[str, Any]:
        """Shelve an alarm for ``duration_s`` seconds."""
        live = self._get(tenant, rule_id)
        now = int(self.clock() * US)
        return await self._operated(live, live.machine.shelve(user, now, now + int(duration_s * US)))

    async def unshelve(self, tenant: str, rule_id: str, user: str) -> dict[str, Any]:
        """Bring a shelved alarm back."""
        live = self._get(tenant, rule_id)
        return await self._operated(live, live.machine.unshelve(int(self.clock() * US), user))

    # -- queued commands (from any API process) ---------------------------------------------
    async def execute(self, command_id: str) -> str | None:
        """Apply one queued command exactly once; return its status (None: no such command).

        Safe under at-least-once delivery: a command that already left ``pending`` is not
        applied again. The state change, its history row and the command's outcome commit
        together; if that commit fails the alarm's in-memory state is put back. The engine's
        lock is held only for the in-memory transition, never across a database round-trip.
        """
        if self.db is None:
            raise ServiceUnavailable("the alarm engine has no database")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(command_id=command_id, done=done))
        status: str | None = await done
        return status

    async def _run_command(self, command_id: str) -> tuple[str | None, list[tuple[LiveAlarm, Transition]]]:
        """The saver's part of :meth:`execute`: claim and load, transition, persist, commit."""
        assert self.db is not None
        postgres = self.db.dialect == "postgresql"
        changes: list[tuple[LiveAlarm, Transition]] = []
        saved: tuple[AlarmStateMachine, tuple[Any, ...]] | None = None
        try:
            async with self.db.session() as s:
                # Expiry compares database time on both sides: the API stamps requested_at
                # with now() of the same server (see commands.create).
                q = select(AlarmCommandRow, func.now() if postgres else literal(None))
                q = q.where(AlarmCommandRow.id == command_id).with_for_update(of=AlarmCommandRow)
                found = (await s.execute(q)).one_or_none()
                if found is None:
                    return None, changes
                row, db_now = found
                if row.status != PENDING:
                    return row.status, changes
                now = db_now if db_now is not None else utcnow()
                prepared = await self._prepare(s, row)
                async with self._lock:  # the in-memory transition only
                    saved, change = self._apply(row, prepared, now - row.requested_at > COMMAND_TTL)
                if change is not None:
                    changes.append(change)
                    await self._persist(s, changes)
                row.applied_at = now
                await audit_command_outcome(s, row)  # applied / rejected / expired, same transaction
                status = row.status
        except BaseException:
            if saved is not None and changes:
                m, before = saved
                tr = changes[0][1]
                if (m.state, m.last_change) == (tr.after, tr.ts):  # nothing changed it since
                    _restore(m, before)
            raise
        return status, changes

    async def _prepare(self, s: AsyncSession, row: AlarmCommandRow) -> Any:
        """What a reload needs from the database, read before taking the engine's lock."""
        if row.action == "reload_rule":
            assert row.rule_id is not None
            found = await s.get(AlarmRuleRow, row.rule_id)
            if found is None or found.tenant_id != row.tenant_id:
                return None
            return found, await s.get(AlarmStateRow, row.rule_id)
        if row.action == "reload_notifiers":
            return await repo.list_notifiers(s, row.tenant_id)
        return None

    def _apply(
        self, row: AlarmCommandRow, prepared: Any, expired: bool
    ) -> tuple[tuple[AlarmStateMachine, tuple[Any, ...]] | None, tuple[LiveAlarm, Transition] | None]:
        """Apply a claimed command in memory (no awaits: called under the engine's lock)."""
        tenant, action = row.tenant_id, row.action
        row.status = APPLIED
        if action == "reload_rule":
            assert row.rule_id is not None
            if prepared is None:
                self.drop_rule(tenant, row.rule_id)
            else:
                found, st = prepared
                saved = None
                if st is not None and (tenant, row.rule_id) not in self._alarms:
                    until = _us(st.shelved_until) if st.shelved_until else None
                    saved = AlarmStateMachine(State(st.state), st.condition, until)
                self.put_rule(tenant, row.rule_id, repo.rule_spec(found), saved)
            return None, None
        if action == "reload_notifiers":
            self.set_notifiers(
                tenant, [make_notifier(repo.parse_target(orjson.loads(t.config_json))) for t in prepared]
            )
            return None, None
        live = self._alarms.get((tenant, row.rule_id or ""))
        now = int(self.clock() * US)
        try:
            if live is None:
                raise NotFound("alarm not found")
            if expired:
                raise CommandExpired("the request waited too long for the alarm engine; send it again")
            m = live.machine
            snapshot = (m, (m.state, m.condition, m.shelved_until, m.last_change, m.last_user))
            user = row.user or ""
            if action == "ack":
                tr = m.ack(user, now)
            elif action == "shelve":
                tr = m.shelve(user, now, now + int((row.duration_s or 0) * US))
            elif action == "unshelve":
                tr = m.unshelve(now, user)
            else:
                raise InvalidTransition(f"unknown alarm action {action!r}")
        except GongyunError as exc:
            row.status, row.error_code, row.error_message = REJECTED, exc.code, exc.message[:500]
            return None, None
        row.result_json = orjson.dumps(live.view()).decode()
        return snapshot, (live, tr)

    def alarms(self, tenant: str, *, only_active: bool = False) -> list[dict[str, Any]]:
        """The tenant's alarms (highest priority first)."""
        return sort_views([a.view() for (t, _), a in self._alarms.items() if t == tenant], only_active)

    def state(self, tenant: str, rule_id: str) -> State:
        """The current state of one alarm."""
        return self._get(tenant, rule_id).machine.state

    # -- fan-out ---------------------------------------------------------------------------
    def listen(self, maxsize: int = 1000) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every transition (drop it with ``unlisten``)."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize)
        self._listeners.add(q)
        return q

    def unlisten(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering to a queue."""
        self._listeners.discard(q)

    @property
    def listeners(self) -> set[asyncio.Queue[dict[str, Any]]]:
        """The queues ``listen`` handed out (the process's live hub delivers to the same set)."""
        return self._listeners

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

    def _fan_out(self, changes: list[tuple[LiveAlarm, Transition]]) -> None:
        for live, tr in changes:
            notice = AlarmNotice(
                live.tenant,
                live.rule_id,
                live.spec.name,
                live.spec.priority,
                str(tr.after),
                tr.cause,
                _dt(tr.ts).isoformat(),
                live.spec.message,
                tr.value,
                tr.user,
            )
            event = {"tenant": live.tenant, **notice.to_dict(), "before": str(tr.before)}
            for q in list(self._listeners):
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(event)
            targets = self._notifiers.get(live.tenant)
            if targets:
                task = asyncio.create_task(self._notify(targets, notice))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _notify(self, targets: list[Notifier], notice: AlarmNotice) -> None:
        sent = await dispatch(targets, notice)
        self.notified += sent

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
            else:
                _log.warning("alarm engine stopped: %d transitions not saved", len(job.changes))
            return
        self._saves.put_nowait(job)
        if self._saver is None:
            self._saver = asyncio.create_task(self._save_loop(), name="alarm-saver")

    async def flush(self) -> None:
        """Wait until every transition queued so far is saved and told to listeners."""
        if self._saver is None or self._closed:
            return
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(done=done))
        await done

    async def _save_loop(self) -> None:
        while True:
            job = await self._saves.get()
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
            except Exception as exc:
                if job.done is not None and not job.done.done():
                    job.done.set_exception(exc)
                else:
                    _log.exception("alarm save failed")
                continue
            if job.done is not None and not job.done.done():
                job.done.set_result(result)

    async def _save(self, changes: list[tuple[LiveAlarm, Transition]]) -> None:
        """Save transitions (retrying a database hiccup), then tell the listeners."""
        assert self.db is not None
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                async with self.db.session() as s:
                    await self._persist(s, changes)
                break
            except Exception:
                if attempt == SAVE_ATTEMPTS:
                    _log.exception(
                        "saving %d alarm transitions failed; they are not in the history", len(changes)
                    )
                    break
                await asyncio.sleep(0.5 * attempt)
        self._fan_out(changes)

    async def drain(self) -> None:
        """Wait for saves and notifications in flight."""
        await self.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, interval_s: float = 1.0) -> None:
        """Tick every ``interval_s`` seconds in the background."""
        self._closed = False

        async def loop() -> None:
            while True:
                try:
                    await self.tick()
                except Exception:
                    _log.exception("alarm tick failed")
                await asyncio.sleep(interval_s)

        if self._ticker is None:
            self._ticker = asyncio.create_task(loop(), name="alarm-ticker")

    async def stop(self, *, save_timeout_s: float = 5.0) -> None:
        """Stop ticking, save what is queued (for at most ``save_timeout_s``), wait for notifications."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._saver is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), save_timeout_s)
            self._closed = True
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
            while not self._saves.empty():
                job = self._saves.get_nowait()
                if job.done is not None and not job.done.done():
                    job.done.set_exception(ServiceUnavailable("the alarm engine stopped"))
        self._closed = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def clear(self) -> None:
        """Forget every rule, state and target (before loading afresh, e.g. as a new leader)."""
        self._alarms.clear()
        self._by_tag.clear()
        self._seen.clear()
        self._notifiers.clear()
