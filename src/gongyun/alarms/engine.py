"""The alarm engine: evaluates rules on stored samples and on the clock, keeps ISA-18.2 states,
records history, notifies, and tells live listeners (the console banner) what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, literal, select, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms import repo
from gongyun.alarms.late import RecentSamples
from gongyun.alarms.models import (
    AlarmCommandRow,
    AlarmEventRow,
    AlarmNotifierRow,
    AlarmRuleRow,
    AlarmStateRow,
)
from gongyun.alarms.notify import AlarmNotice, Notifier, dispatch, make_notifier
from gongyun.alarms.outcomes import audit_command_outcome
from gongyun.alarms.rules import Condition, Debouncer
from gongyun.alarms.states import AlarmStateMachine, InvalidTransition, State, Transition
from gongyun.db import Database
from gongyun.db.base import utcnow
from gongyun.errors import Conflict, GongyunError, NotFound, ServiceUnavailable, ValidationFailed
from gongyun.telemetry.store.base import Point

_log = logging.getLogger("gongyun.alarms.engine")
US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRIORITIES = ["low", "medium", "high", "critical"]
PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"
COMMAND_TTL = timedelta(minutes=10)
"""An operator action not applied within this time is rejected rather than applied late."""
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


class AlarmRuleInvalid(ValidationFailed):
    """A stored alarm rule no longer validates: the engine skips it (see ``AlarmEngine.broken``)."""

    code = "alarm_rule_invalid"
    title = "Stored alarm rule is invalid"


class AlarmTargetInvalid(ValidationFailed):
    """A stored notification target no longer validates: the engine skips it."""

    code = "alarm_target_invalid"
    title = "Stored notification target is invalid"


def _problem(exc: Exception) -> str:
    """A short description of why a stored row does not validate."""
    if isinstance(exc, GongyunError):
        errors = exc.details.get("errors")
        return f"{exc.message}: {errors}"[:500] if errors else exc.message[:500]
    return str(exc)[:500]


def _saved_machine(st: AlarmStateRow | None) -> AlarmStateMachine | None:
    """The saved state of an alarm (None when there is none, or it is unreadable)."""
    if st is None:
        return None
    try:
        state = State(st.state)
    except ValueError:
        _log.error("alarm %s: unknown saved state %r; starting from normal", st.rule_id, st.state)
        return None
    return AlarmStateMachine(state, st.condition, _us(st.shelved_until) if st.shelved_until else None)


class Deposed(ServiceUnavailable):
    """Another process leads the alarm engine now, or this one gave up (nothing more is saved here)."""


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
        self._seen = RecentSamples()  # recent samples per (tenant, tag), late lanes per alarm
        self.late = 0  # late samples evaluated (see gongyun.alarms.late)
        self.broken: dict[tuple[str, str], dict[str, Any]] = {}  # rows that do not validate
        self._saves: asyncio.Queue[_Job] = asyncio.Queue()
        self._saver: asyncio.Task[None] | None = None
        self._closed = False
        self.notified = 0
        self.skipped = 0
        self.term: int | None = None  # the leader term every save is fenced with (None: not elected)
        self.on_deposed: Callable[[str], None] | None = None
        self.save_give_up_s = SAVE_GIVE_UP_S
        self.save_failures = 0
        self._failing: BaseException | None = None
        self._waiters: set[asyncio.Future[Any]] = set()
        self._current: _Job | None = None

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
        """Load every rule, saved state and notification target; return how many rules loaded.

        A rule or target that no longer validates is skipped and logged (listed in
        :attr:`broken`, see :meth:`broken_rows`): one bad row must not stop every alarm.
        """
        if self.db is None:
            return 0
        async with self.db.session() as s:
            rows = await repo.all_rules(s)
            targets = await repo.list_notifiers(s, None)
        self.broken = {}
        loaded = 0
        for rule, st in rows:
            spec, problem = self._parse_rule(rule)
            if problem is not None:
                self._mark_broken(rule.tenant_id, rule.id, "rule", rule.name, AlarmRuleInvalid.code, problem)
                continue
            self.put_rule(rule.tenant_id, rule.id, spec, _saved_machine(st))
            loaded += 1
        self._notifiers = self._parse_targets(targets)
        return loaded

    @staticmethod
    def _parse_rule(rule: AlarmRuleRow) -> tuple[Any, str | None]:
        """The rule's spec, or why it does not validate."""
        try:
            return repo.rule_spec(rule), None
        except (ValueError, GongyunError) as exc:
            return None, _problem(exc)

    def _parse_targets(self, targets: list[AlarmNotifierRow]) -> dict[str, list[Notifier]]:
        """Notifiers per tenant for the targets that validate (the others marked broken)."""
        by_tenant: dict[str, list[Notifier]] = {}
        for t in targets:
            try:
                notifier = make_notifier(repo.parse_target(orjson.loads(t.config_json)))
            except (ValueError, GongyunError) as exc:
                problem = _problem(exc)
                self._mark_broken(t.tenant_id, t.id, "notifier", t.name, AlarmTargetInvalid.code, problem)
                continue
            by_tenant.setdefault(t.tenant_id, []).append(notifier)
        return by_tenant

    def _mark_broken(self, tenant: str, row_id: str, kind: str, name: str, code: str, problem: str) -> None:
        _log.error("alarm %s %s (%s) of tenant %s skipped: %s", kind, row_id, name, tenant, problem)
        entry = {"kind": kind, "id": row_id, "name": name, "code": code, "message": problem}
        self.broken[(tenant, row_id)] = entry

    def broken_rows(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's rules and targets the engine skips because they no longer validate."""
        return [dict(v) for (t, _), v in sorted(self.broken.items()) if t == tenant]

    # -- evaluation ------------------------------------------------------------------------
    async def on_points(self, tenant: str, points: list[Point]) -> None:
        """Ingest hook: evaluate the rules reading these tags (never waits for the database).

        Samples are evaluated in time order. An exact repeat (a tag and timestamp evaluated
        already, within a bounded recent window) is skipped, so a point delivered twice cannot
        count twice toward a delay or a rate. A late sample (older than the newest evaluated for
        its tag) is evaluated too, in a separate lane that can raise an alarm but never roll a
        newer state back (the rules: :mod:`gongyun.alarms.late`). The transitions are saved in
        the background, in order, and told to listeners once saved (:meth:`flush` waits for that).
        """
        changes: list[tuple[LiveAlarm, Transition]] = []
        async with self._lock:
            recent = self._seen
            for p in sorted(points, key=lambda x: x.ts):
                alarms = self._by_tag.get((tenant, p.tag))
                if not alarms:
                    continue
                window = recent.window(tenant, p.tag)
                if window.seen(p.ts):
                    self.skipped += 1
                    continue
                newest = window.newest
                if newest is not None and p.ts < newest:
                    self.late += 1
                    for live in alarms:
                        changes.extend(recent.late(live, p.tag, p.ts, p.value, window))
                    window.add(p.ts, p.value)
                    continue
                window.add(p.ts, p.value)
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
            async with self._session() as s:
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
        """What a reload needs from the database, read and validated before taking the engine's lock.

        ``reload_rule``: None (the rule is gone) or ``(row, spec, problem, saved state)``;
        ``reload_notifiers``: the target rows.
        """
        if row.action == "reload_rule":
            assert row.rule_id is not None
            found = await s.get(AlarmRuleRow, row.rule_id)
            if found is None or found.tenant_id != row.tenant_id:
                return None
            spec, problem = self._parse_rule(found)
            return found, spec, problem, await s.get(AlarmStateRow, row.rule_id)
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
            # A rule that no longer validates is not evaluated (as after a restart: load()
            # skips it) and the command is rejected with a stable code rather than retried.
            assert row.rule_id is not None
            self.broken.pop((tenant, row.rule_id), None)
            if prepared is None:
                self.drop_rule(tenant, row.rule_id)
                return None, None
            found, spec, problem, st = prepared
            if problem is not None:
                self.drop_rule(tenant, row.rule_id)
                self._mark_broken(tenant, row.rule_id, "rule", found.name, AlarmRuleInvalid.code, problem)
                row.status, row.error_code, row.error_message = REJECTED, AlarmRuleInvalid.code, problem
                return None, None
            fresh = (tenant, row.rule_id) not in self._alarms
            self.put_rule(tenant, row.rule_id, spec, _saved_machine(st) if fresh else None)
            return None, None
        if action == "reload_notifiers":
            # The targets that validate are used; the others are skipped and named in the rejection.
            for key in [k for k, v in self.broken.items() if k[0] == tenant and v["kind"] == "notifier"]:
                del self.broken[key]
            self.set_notifiers(tenant, self._parse_targets(prepared).get(tenant, []))
            bad = sorted(k[1] for k, v in self.broken.items() if k[0] == tenant and v["kind"] == "notifier")
            if bad:
                message = f"notification targets skipped, they do not validate: {', '.join(bad)}"[:500]
                row.status, row.error_code, row.error_message = REJECTED, AlarmTargetInvalid.code, message
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

    async def pause(self) -> None:
        """Stop ticking (saves and commands go on; ``start`` ticks again)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

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
            if dropped:
                _log.warning("alarm engine stopped: %d transitions not saved, dropped", dropped)
        self._closed = True
        self._failing = None
        self._fail_waiters(ServiceUnavailable("the alarm engine stopped"))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def clear(self) -> None:
        """Forget every rule, state, target and leader term (before loading afresh, e.g. as a new leader)."""
        self._alarms.clear()
        self._by_tag.clear()
        self._seen.clear()
        self._notifiers.clear()
        self.term = self.on_deposed = None
