"""Applying queued operator commands (from any API process) in the alarm engine's saver task:
ack, shelve and unshelve, and reloading a rule or a tenant's notification targets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms import repo
from gongyun.alarms.live import US, AlarmRuleInvalid, AlarmTargetInvalid, LiveAlarm, _saved_machine
from gongyun.alarms.models import AlarmCommandRow, AlarmNotifierRow, AlarmRuleRow, AlarmStateRow
from gongyun.alarms.notify import Notifier
from gongyun.alarms.outcomes import audit_command_outcome
from gongyun.alarms.saver import AlarmSaver, _Job
from gongyun.alarms.states import AlarmStateMachine, InvalidTransition, Transition
from gongyun.db.base import utcnow
from gongyun.errors import Conflict, GongyunError, NotFound, ServiceUnavailable

PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"
COMMAND_TTL = timedelta(minutes=10)
"""An operator action not applied within this time is rejected rather than applied late."""


def _restore(m: AlarmStateMachine, saved: tuple[Any, ...]) -> None:
    m.state, m.condition, m.shelved_until, m.last_change, m.last_user = saved


class CommandExpired(Conflict):
    """A queued operator action waited longer than ``COMMAND_TTL`` for the engine."""

    code = "alarm_command_expired"
    title = "Alarm request expired"


class CommandApplier(AlarmSaver):
    """The command half of :class:`~gongyun.alarms.engine.AlarmEngine` (its state is set up there)."""

    clock: Callable[[], float]
    broken: dict[tuple[str, str], dict[str, Any]]
    _alarms: dict[tuple[str, str], LiveAlarm]
    _lock: asyncio.Lock

    if TYPE_CHECKING:  # provided by AlarmEngine

        def put_rule(
            self, tenant: str, rule_id: str, spec: Any, saved: AlarmStateMachine | None = None
        ) -> None: ...

        def drop_rule(self, tenant: str, rule_id: str) -> None: ...

        def set_notifiers(self, tenant: str, notifiers: list[Notifier]) -> None: ...

        @staticmethod
        def _parse_rule(rule: AlarmRuleRow) -> tuple[Any, str | None]: ...

        def _parse_targets(self, targets: list[AlarmNotifierRow]) -> dict[str, list[Notifier]]: ...

        def _mark_broken(
            self, tenant: str, row_id: str, kind: str, name: str, code: str, problem: str
        ) -> None: ...

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
