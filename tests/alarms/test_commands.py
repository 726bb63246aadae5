"""Queued alarm commands: applied once by the engine whatever the delivery, on SQLite and PostgreSQL."""

from __future__ import annotations

from gongyun.alarms import commands, repo
from gongyun.alarms.commands import CommandWorker
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.rules import ThresholdRule
from gongyun.alarms.states import State
from gongyun.db import Database
from gongyun.telemetry.store import Point

S = 1_000_000
T0 = 1_767_225_600 * S


async def _engine_with_active_alarm(db: Database) -> tuple[AlarmEngine, str]:
    async with db.session() as s:
        rid = (await repo.create_rule(s, "t1", ThresholdRule(name="hot", tag="p/t", limit=80))).id
    eng = AlarmEngine(db, clock=lambda: T0 / S + 5)
    await eng.load()
    await eng.on_points("t1", [Point("p/t", T0, 90.0)])
    assert eng.state("t1", rid) is State.unack_active
    return eng, rid


async def _queue(db: Database, action: str, rule_id: str, **kw: object) -> str:
    async with db.session() as s:
        row = await commands.create(s, "t1", action, rule_id, "olga", **kw)  # type: ignore[arg-type]
        return row.id


async def test_a_command_delivered_twice_is_applied_once(db: Database) -> None:
    eng, rid = await _engine_with_active_alarm(db)
    cid = await _queue(db, "ack", rid)
    assert await eng.execute(cid) == "applied"
    assert await eng.execute(cid) == "applied"  # a redelivery changes nothing
    assert eng.state("t1", rid) is State.ack_active
    async with db.session() as s:
        hist = await repo.history(s, "t1", rule_id=rid)
        row = await commands.get(s, "t1", cid)
        assert await repo.history(s, "t2") == []
    assert [(h.cause, h.user) for h in hist] == [("acknowledged", "olga"), ("activated", None)]
    doc = commands.command_dict(row)
    assert doc["status"] == "applied" and doc["alarm"]["state"] == "ack_active"
    assert doc["alarm"]["changed_by"] == "olga" and doc["error"] is None
    assert await eng.execute("0" * 32) is None


async def test_rejections_keep_their_code_and_change_nothing(db: Database) -> None:
    eng, rid = await _engine_with_active_alarm(db)
    bad = await _queue(db, "unshelve", rid)
    gone = await _queue(db, "ack", "f" * 32)
    assert await eng.execute(bad) == "rejected"
    assert await eng.execute(gone) == "rejected"
    assert eng.state("t1", rid) is State.unack_active
    async with db.session() as s:
        rows = [commands.command_dict(await commands.get(s, "t1", c)) for c in (bad, gone)]
        assert len(await repo.history(s, "t1")) == 1
    assert [r["error"]["code"] for r in rows] == ["alarm_transition_invalid", "not_found"]


async def test_sweep_applies_commands_whose_message_was_lost(db: Database) -> None:
    eng, rid = await _engine_with_active_alarm(db)
    shelve = await _queue(db, "shelve", rid, duration_s=60.0)
    worker = CommandWorker(eng, None)
    assert await worker.sweep() == 1
    assert eng.state("t1", rid) is State.shelved
    assert await worker.sweep() == 0
    async with db.session() as s:
        hist = await repo.history(s, "t1", rule_id=rid)
        assert (await commands.get(s, "t1", shelve)).status == "applied"
    assert (hist[0].cause, hist[0].user) == ("shelved", "olga")


async def test_reload_commands_follow_the_database(db: Database) -> None:
    eng, rid = await _engine_with_active_alarm(db)
    async with db.session() as s:
        row = await repo.update_rule(
            s, "t1", rid, ThresholdRule(name="hot", tag="p/t", limit=80, enabled=False)
        )
    assert await eng.execute(await _queue(db, "reload_rule", row.id)) == "applied"
    assert eng.alarms("t1") == []
    async with db.session() as s:
        await repo.update_rule(s, "t1", rid, ThresholdRule(name="hot", tag="p/t", limit=80))
    assert await eng.execute(await _queue(db, "reload_rule", rid)) == "applied"
    assert [(a["rule_id"], a["state"]) for a in eng.alarms("t1")] == [(rid, "unack_active")]  # saved state
