"""The alarm engine: evaluates rules on stored samples and on the clock, keeps ISA-18.2 states,
records history, notifies, and tells live listeners (the console banner) what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from gongyun.alarms import metrics, repo
from gongyun.alarms.apply import APPLIED, COMMAND_TTL, PENDING, REJECTED, CommandApplier, CommandExpired
from gongyun.alarms.late import RecentSamples
from gongyun.alarms.live import (
    US,
    AlarmRuleInvalid,
    AlarmTargetInvalid,
    LiveAlarm,
    _dt,
    _problem,
    _saved_machine,
    sort_views,
)
from gongyun.alarms.models import AlarmNotifierRow, AlarmRuleRow
from gongyun.alarms.notify import AlarmNotice, Notifier, dispatch_counted, make_notifier
from gongyun.alarms.rules import Condition, Debouncer
from gongyun.alarms.saver import SAVE_ATTEMPT_S, SAVE_GIVE_UP_S, SAVE_RETRY_S, AlarmSaver, Deposed, _Job
from gongyun.alarms.states import AlarmStateMachine, State, Transition
from gongyun.core.tasks import cancel_and_wait
from gongyun.db import Database
from gongyun.errors import GongyunError, NotFound
from gongyun.security.egress import Network
from gongyun.telemetry.store.base import Point

__all__ = [
    "APPLIED",
    "COMMAND_TTL",
    "PENDING",
    "REJECTED",
    "SAVE_ATTEMPT_S",
    "SAVE_GIVE_UP_S",
    "SAVE_RETRY_S",
    "US",
    "AlarmEngine",
    "AlarmRuleInvalid",
    "AlarmSaver",
    "AlarmTargetInvalid",
    "CommandApplier",
    "CommandExpired",
    "Deposed",
    "LiveAlarm",
    "sort_views",
]

_log = logging.getLogger("gongyun.alarms.engine")


class AlarmEngine(CommandApplier):
    """Holds every enabled rule of every tenant in memory; the database keeps what survives restarts."""

    def __init__(
        self,
        db: Database | None = None,
        *,
        clock: Callable[[], float] = time.time,
        outbound_allow: Sequence[Network] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.outbound_allow = tuple(outbound_allow)  # non-public networks webhooks may reach
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
        self.notify_failed = 0  # deliveries that failed (refused targets included)
        self.skipped = 0
        self.term: int | None = None  # the leader term every save is fenced with (None: not elected)
        self.on_deposed: Callable[[str], None] | None = None
        self.save_give_up_s = SAVE_GIVE_UP_S
        self.save_failures = 0
        self._failing: BaseException | None = None
        self._waiters: set[asyncio.Future[Any]] = set()
        self._current: _Job | None = None

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
                notifier = make_notifier(repo.parse_target(orjson.loads(t.config_json)), self.outbound_allow)
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
                metrics.EVALUATED.inc()
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
        sent, failed = await dispatch_counted(targets, notice)
        self.notified += sent
        self.notify_failed += failed
        metrics.NOTIFY_FAILED.inc(failed)

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
        await cancel_and_wait(self._ticker)
        self._ticker = None

    def clear(self) -> None:
        """Forget every rule, state, target and leader term (before loading afresh, e.g. as a new leader)."""
        self._alarms.clear()
        self._by_tag.clear()
        self._seen.clear()
        self._notifiers.clear()
        self.term = self.on_deposed = None
