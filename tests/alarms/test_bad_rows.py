"""Stored rules and targets that no longer validate are skipped; a busy local engine answers in time."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import update

from gongyun.alarms import commands, repo
from gongyun.alarms.commands import CommandWorker
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.models import AlarmNotifierRow, AlarmRuleRow
from gongyun.alarms.notify import WebhookConfig
from gongyun.alarms.rules import ThresholdRule
from gongyun.alarms.states import State
from gongyun.bus.memory import MemoryBus
from gongyun.db import Database
from gongyun.telemetry.store import Point

S = 1_000_000
T0 = 1_767_225_600 * S
BAD_RULE = orjson.dumps({"kind": "threshold", "name": "bad", "tag": "notag", "limit": "high"}).decode()
BAD_TARGET = orjson.dumps({"kind": "webhook", "url": "not a url", "extra": 1}).decode()


async def _break_rule(db: Database, rule_id: str) -> None:
    async with db.session() as s:
        await s.execute(update(AlarmRuleRow).where(AlarmRuleRow.id == rule_id).values(spec_json=BAD_RULE))


async def _queue(db: Database, action: str, rule_id: str | None) -> str:
    async with db.session() as s:
        return (await commands.create(s, "t1", action, rule_id)).id


async def test_one_bad_rule_or_target_does_not_stop_the_others(db: Database) -> None:
    async with db.session() as s:
        good = (await repo.create_rule(s, "t1", ThresholdRule(name="hot", tag="p/t", limit=80))).id
        bad = (await repo.create_rule(s, "t1", ThresholdRule(name="warm", tag="p/t", limit=50))).id
        hook = await repo.create_notifier(s, "t1", "hook", WebhookConfig(url="http://127.0.0.1:9/h"))
        broken = await repo.create_notifier(s, "t1", "broken", WebhookConfig(url="http://127.0.0.1:9/b"))
        hook_id, broken_id = hook.id, broken.id
        await s.execute(
            update(AlarmNotifierRow).where(AlarmNotifierRow.id == broken_id).values(config_json=BAD_TARGET)
        )
    await _break_rule(db, bad)
    eng = AlarmEngine(db)
    assert await eng.load() == 1  # the bad rule is skipped, not fatal
    await eng.on_points("t1", [Point("p/t", T0, 90.0)])
    assert eng.state("t1", good) is State.unack_active
    assert [a["rule_id"] for a in eng.alarms("t1")] == [good]
    assert len(eng._notifiers["t1"]) == 1
    shown = {(b["kind"], b["id"]): b["code"] for b in eng.broken_rows("t1")}
    assert shown == {("rule", bad): "alarm_rule_invalid", ("notifier", broken_id): "alarm_target_invalid"}
    assert eng.broken_rows("t2") == []

    # reloads of bad rows are rejected with a stable code, not left pending (and swept forever)
    rule_cmd = await _queue(db, "reload_rule", bad)
    targets_cmd = await _queue(db, "reload_notifiers", None)
    worker = CommandWorker(eng, None)
    assert await worker.sweep() == 2
    assert await worker.sweep() == 0
    async with db.session() as s:
        docs = [commands.command_dict(await commands.get(s, "t1", c)) for c in (rule_cmd, targets_cmd)]
    assert [(d["status"], d["error"]["code"]) for d in docs] == [
        ("rejected", "alarm_rule_invalid"),
        ("rejected", "alarm_target_invalid"),
    ]
    assert broken_id in docs[1]["error"]["message"] and hook_id not in docs[1]["error"]["message"]
    assert len(eng._notifiers["t1"]) == 1  # the valid target is still used

    # a rule that stops validating on reload stops being evaluated; fixed, it comes back
    await _break_rule(db, good)
    assert await eng.execute(await _queue(db, "reload_rule", good)) == "rejected"
    assert eng.alarms("t1") == [] and {b["id"] for b in eng.broken_rows("t1")} >= {good, bad}
    async with db.session() as s:
        await repo.update_rule(s, "t1", good, ThresholdRule(name="hot", tag="p/t", limit=80))
    assert await eng.execute(await _queue(db, "reload_rule", good)) == "applied"
    assert [(a["rule_id"], a["state"]) for a in eng.alarms("t1")] == [(good, "unack_active")]  # saved state
    assert good not in {b["id"] for b in eng.broken_rows("t1")}
    await eng.stop()


async def test_dispatch_to_a_busy_local_engine_answers_after_its_timeout(db: Database) -> None:
    async with db.session() as s:
        rid = (await repo.create_rule(s, "t1", ThresholdRule(name="hot", tag="p/t", limit=80))).id
    eng = AlarmEngine(db, clock=lambda: T0 / S + 5)
    await eng.load()
    await eng.on_points("t1", [Point("p/t", T0, 90.0)])
    await eng.flush()
    bus = MemoryBus("dispatch-timeout")
    async with db.session() as s:
        row = await commands.create(s, "t1", "ack", rid, "olga")
    loop = asyncio.get_running_loop()
    async with eng._lock:  # the engine is busy: the command waits in its queue
        started = loop.time()
        await commands.dispatch(bus, row, eng, timeout_s=0.3)
        assert 0.25 < loop.time() - started < 2.0
        async with db.session() as s:
            assert (await commands.wait(s, "t1", row.id, 0.05)).status == "pending"  # the route's 202
    async with db.session() as s:
        done = await commands.wait(s, "t1", row.id, 5.0)  # applied once the engine gets to it
    assert done.status == "applied" and eng.state("t1", rid) is State.ack_active
    await eng.stop()


async def test_a_rule_that_no_longer_validates_is_listed_as_invalid(db: Database) -> None:
    async with db.session() as s:
        good = await repo.create_rule(s, "t1", ThresholdRule(name="ok", tag="d/t", limit=5))
        bad = await repo.create_rule(s, "t1", ThresholdRule(name="bad", tag="d/t", limit=5))
    await _break_rule(db, bad.id)
    async with db.session() as s:
        listed = {r["id"]: r for r in map(repo.rule_dict, await repo.list_rules(s, "t1"))}
    assert listed[good.id]["valid"] is True and "problems" not in listed[good.id]
    assert listed[bad.id]["valid"] is False
    assert [p["loc"] for p in listed[bad.id]["problems"]] == [["threshold", "tag"], ["threshold", "limit"]]
