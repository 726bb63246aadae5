"""The current alarms read from the database (API processes without the engine), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from gongyun.alarms import repo, snapshot
from gongyun.alarms.models import AlarmEventRow
from gongyun.alarms.rules import ThresholdRule
from gongyun.db import Database
from gongyun.security.tenancy import scope_session

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(
    tenant: str, rule_id: str, seconds: int, after: str, user: str | None, value: float
) -> AlarmEventRow:
    return AlarmEventRow(
        tenant_id=tenant,
        rule_id=rule_id,
        name="x",
        priority="high",
        ts=T0 + timedelta(seconds=seconds),
        before="normal",
        after=after,
        cause="activated" if user is None else "acknowledged",
        user=user,
        value=value,
    )


async def _rules(db: Database, tenant: str, names: list[str], *, enabled: bool = True) -> list[str]:
    async with db.session() as s:
        rows = [
            await repo.create_rule(s, tenant, ThresholdRule(name=n, tag=f"{n}/t", limit=80, enabled=enabled))
            for n in names
        ]
        return [r.id for r in rows]


async def _current(db: Database, tenant: str, **kw: Any) -> list[dict[str, Any]]:
    async with db.session() as s:
        scope_session(s.sync_session, tenant)  # as an API request's session is
        return await snapshot.current(s, tenant, **kw)


async def test_each_alarm_shows_its_own_newest_transition(db: Database) -> None:
    a, b, c, d = await _rules(db, "t1", ["a", "b", "c", "d"])
    (off,) = await _rules(db, "t1", ["off"], enabled=False)
    (other,) = await _rules(db, "t2", ["a"])
    async with db.session() as s:
        # Histories inserted out of order; a has two events at the same instant (id decides).
        for ev in [
            _event("t1", a, 30, "ack_active", "olga", 91.0),
            _event("t1", a, 10, "unack_active", None, 90.0),
            _event("t1", b, 5, "unack_active", None, 85.0),
            _event("t1", b, 50, "ack_active", "apikey:admin", 86.0),
            _event("t1", b, 20, "unack_rtn", None, 70.0),
            _event("t1", c, 40, "unack_active", None, 99.0),
            _event("t1", off, 60, "unack_active", None, 1.0),
            _event("t2", other, 70, "unack_active", None, 2.0),
        ]:
            await repo.add_event(s, ev)
        tie = [_event("t1", c, 40, "ack_active", "ivan", 98.0)]
        tie[0].id = "f" * 32  # newest by id among events at the same instant
        await repo.add_event(s, tie[0])
        for rid, state in ((a, "ack_active"), (b, "ack_active"), (c, "ack_active")):
            await repo.save_state(s, "t1", rid, state, True, None)
        await repo.save_state(s, "t2", other, "unack_active", True, None)

    views = {v["rule_id"]: v for v in await _current(db, "t1")}
    assert set(views) == {a, b, c, d}  # disabled and other tenants' rules are not shown
    got = {rid: (v["since"], v["changed_by"], v["value"], v["state"]) for rid, v in views.items()}
    assert got == {
        a: ((T0 + timedelta(seconds=30)).isoformat(), "olga", 91.0, "ack_active"),
        b: ((T0 + timedelta(seconds=50)).isoformat(), "apikey:admin", 86.0, "ack_active"),
        c: ((T0 + timedelta(seconds=40)).isoformat(), "ivan", 98.0, "ack_active"),
        d: (None, None, None, "normal"),
    }
    active = await _current(db, "t1", only_active=True)
    assert sorted(v["rule_id"] for v in active) == sorted([a, b, c])
    (t2,) = await _current(db, "t2")
    assert (t2["rule_id"], t2["value"], t2["state"]) == (other, 2.0, "unack_active")


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    target = db.engine.sync_engine
    event.listen(target, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", count)


async def test_one_statement_however_many_rules(db: Database) -> None:
    counts: list[int] = []
    total = 0
    for batch in (2, 40):
        names = [f"r{total + i}" for i in range(batch)]
        total += batch
        ids = await _rules(db, "t1", names)
        async with db.session() as s:
            for n, rid in enumerate(ids):
                for k in range(3):
                    await repo.add_event(s, _event("t1", rid, n * 10 + k, "unack_active", None, float(k)))
        await _current(db, "t1")  # warm up (connection set-up statements are not the point)
        with _statements(db) as seen:
            views = await _current(db, "t1")
        assert len(views) == total and all(v["value"] == 2.0 for v in views)
        counts.append(len(seen))
        assert sum("alarm_events" in q for q in seen) == 1
    assert counts == [1, 1]  # one statement for 2 rules and for 42
