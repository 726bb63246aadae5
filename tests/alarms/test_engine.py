"""The alarm engine end to end: samples in, ISA-18.2 states, history, notifications, restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path

import pytest

from gongyun.alarms import repo
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.notify import EmailConfig, EmailNotifier, WebhookConfig, WebhookNotifier
from gongyun.alarms.rules import StaleRule, ThresholdRule
from gongyun.alarms.states import InvalidTransition, Priority, State
from gongyun.db import Database, upgrade
from gongyun.errors import Conflict, NotFound, ValidationFailed
from gongyun.telemetry.store import Point
from tests.alarms.servers import smtp_server, webhook_server

LOOPBACK = (ip_network("127.0.0.0/8"),)  # the webhook sinks listen there (outbound_allow)

S = 1_000_000
T0 = 1_767_225_600 * S  # 2026-01-01


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}"
    await upgrade(url)
    d = Database(url)
    yield d
    await d.dispose()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def make_rule(db: Database, tenant: str, spec: object) -> str:
    async with db.session() as s:
        row = await repo.create_rule(s, tenant, spec)
        return row.id


async def test_threshold_alarm_lifecycle_with_history(db: Database) -> None:
    rid = await make_rule(
        db,
        "t1",
        ThresholdRule(name="hot", tag="p/t", limit=80, deadband=5, priority=Priority.high, on_delay_s=2),
    )
    clock = Clock(T0 / S)
    eng = AlarmEngine(db, clock=clock)
    assert await eng.load() == 1
    await eng.on_points("t1", [Point("p/t", T0, 85.0), Point("p/t", T0 + S, 86.0)])
    assert eng.state("t1", rid) is State.normal  # on-delay not over
    await eng.on_points("t1", [Point("p/t", T0 + 2 * S, 86.0)])
    assert eng.state("t1", rid) is State.unack_active
    await eng.on_points("t2", [Point("p/t", T0 + 3 * S, 10.0)])  # another tenant's tag
    assert eng.state("t1", rid) is State.unack_active
    clock.t = T0 / S + 3.5
    view = await eng.ack("t1", rid, "olga")
    assert eng.state("t1", rid) is State.ack_active
    assert view["changed_by"] == "olga" and view["tags"] == ["p/t"]
    assert view["since"] is not None and view["since"].startswith("2026-01-01")
    with pytest.raises(InvalidTransition):
        await eng.ack("t1", rid, "olga")
    await eng.on_points("t1", [Point("p/t", T0 + 4 * S, 70.0)])
    assert eng.state("t1", rid) is State.normal
    await eng.flush()  # transitions are saved in the background, in order
    async with db.session() as s:
        hist = await repo.history(s, "t1")
        other = await repo.history(s, "t2")
    assert [(h.before, h.after, h.cause, h.user) for h in reversed(hist)] == [
        ("normal", "unack_active", "activated", None),
        ("unack_active", "ack_active", "acknowledged", "olga"),
        ("ack_active", "normal", "cleared", None),
    ]
    assert hist[-1].value == 86.0 and other == []
    with pytest.raises(NotFound):
        await eng.ack("t2", rid, "mallory")


async def test_state_survives_restart_and_shelving_expires(db: Database) -> None:
    rid = await make_rule(db, "t1", ThresholdRule(name="hot", tag="p/t", limit=80))
    clock = Clock(T0 / S)
    eng = AlarmEngine(db, clock=clock)
    await eng.load()
    await eng.on_points("t1", [Point("p/t", T0, 90.0)])
    await eng.shelve("t1", rid, "olga", 60)
    assert eng.alarms("t1")[0]["state"] == "shelved"
    eng2 = AlarmEngine(db, clock=clock)
    await eng2.load()
    assert eng2.state("t1", rid) is State.shelved
    await eng2.tick(T0 + 59 * S)
    assert eng2.state("t1", rid) is State.shelved
    await eng2.tick(T0 + 60 * S)
    assert eng2.state("t1", rid) is State.unack_active  # condition still present
    await eng2.on_points("t1", [Point("p/t", T0 + 61 * S, 50.0)])
    assert eng2.state("t1", rid) is State.unack_rtn
    await eng2.ack("t1", rid, "olga")
    assert eng2.alarms("t1", only_active=True) == []


async def test_stale_alarm_from_the_clock(db: Database) -> None:
    rid = await make_rule(db, "t1", StaleRule(name="quiet", tag="p/t", max_age_s=10))
    eng = AlarmEngine(db)
    await eng.load()
    await eng.on_points("t1", [Point("p/t", T0, 1.0)])
    await eng.tick(T0 + 10 * S)
    assert eng.state("t1", rid) is State.normal
    await eng.tick(T0 + 10 * S + 1)
    assert eng.state("t1", rid) is State.unack_active
    await eng.on_points("t1", [Point("p/t", T0 + 11 * S, 1.0)])
    assert eng.state("t1", rid) is State.unack_rtn


async def test_live_listeners_get_transitions() -> None:
    eng = AlarmEngine(None)
    eng.put_rule("t1", "r1", ThresholdRule(name="hot", tag="p/t", limit=1))
    q = eng.listen()
    await eng.on_points("t1", [Point("p/t", T0, 2.0)])
    ev = q.get_nowait()
    assert (ev["tenant"], ev["state"], ev["cause"], ev["before"]) == (
        "t1",
        "unack_active",
        "activated",
        "normal",
    )
    eng.unlisten(q)
    eng.put_rule("t1", "r1", ThresholdRule(name="hot", tag="p/t", limit=1, enabled=False))
    assert eng.alarms("t1") == []


async def test_webhook_and_email_notifications() -> None:
    with webhook_server() as hook, smtp_server() as smtp:
        eng = AlarmEngine(None)
        eng.put_rule(
            "t1",
            "r1",
            ThresholdRule(name="hot", tag="p/t", limit=1, priority=Priority.high, message="too hot"),
        )
        eng.put_rule("t1", "r2", ThresholdRule(name="warm", tag="p/t", limit=0, priority=Priority.low))
        web = WebhookNotifier(
            WebhookConfig(
                url=f"http://127.0.0.1:{hook.server_port}/hook",
                headers={"X-Token": "abc"},
                min_priority=Priority.medium,
            ),
            LOOPBACK,
        )
        mail = EmailNotifier(
            EmailConfig(
                host="127.0.0.1",
                port=smtp.server_address[1],
                sender="gy@plant.test",
                recipients=["ops@plant.test"],
                causes=["activated", "cleared"],
            )
        )
        eng.set_notifiers("t1", [web, mail])
        await eng.on_points("t1", [Point("p/t", T0, 2.0)])
        await eng.drain()
        assert [p["json"]["name"] for p in hook.posts] == ["hot"]  # low priority filtered
        assert hook.posts[0]["json"]["message"] == "too hot" and hook.posts[0]["headers"]["X-Token"] == "abc"
        assert sorted("[HIGH] hot" in m["data"] or "[LOW] warm" in m["data"] for m in smtp.messages) == [
            True,
            True,
        ]
        assert smtp.messages[0]["rcpt"] == ["<ops@plant.test>"]
        await eng.on_points("t1", [Point("p/t", T0 + S, -5.0)])
        await eng.drain()
        assert len(smtp.messages) == 4 and len(hook.posts) == 1
        assert eng.notified == 5


async def test_failed_notification_does_not_break_the_engine() -> None:
    with webhook_server(status=500) as hook:
        eng = AlarmEngine(None)
        eng.put_rule("t1", "r1", ThresholdRule(name="hot", tag="p/t", limit=1))
        eng.set_notifiers(
            "t1", [WebhookNotifier(WebhookConfig(url=f"http://127.0.0.1:{hook.server_port}/"), LOOPBACK)]
        )
        await eng.on_points("t1", [Point("p/t", T0, 2.0)])
        await eng.stop()
        assert len(hook.posts) == 1 and eng.notified == 0 and eng.notify_failed == 1
        assert eng.state("t1", "r1") is State.unack_active


async def test_rule_crud_is_tenant_scoped(db: Database) -> None:
    rid = await make_rule(db, "t1", ThresholdRule(name="hot", tag="p/t", limit=1))
    with pytest.raises(Conflict):
        await make_rule(db, "t1", ThresholdRule(name="hot", tag="p/x", limit=2))
    await make_rule(db, "t2", ThresholdRule(name="hot", tag="p/x", limit=2))
    async with db.session() as s:
        with pytest.raises(NotFound):
            await repo.get_rule(s, "t2", rid)
        with pytest.raises(NotFound):
            await repo.delete_rule(s, "t2", rid)
        assert [r.name for r in await repo.list_rules(s, "t1")] == ["hot"]
        row = await repo.update_rule(
            s, "t1", rid, repo.parse_rule({"kind": "rate", "name": "fast", "tag": "p/t", "max_rate_per_s": 3})
        )
        assert repo.rule_dict(row)["kind"] == "rate"
    with pytest.raises(ValidationFailed) as err:
        repo.parse_rule({"kind": "threshold", "name": "x", "tag": "notag", "limit": "high"})
    assert len(err.value.details["errors"]) == 2
    with pytest.raises(ValidationFailed):
        repo.parse_rule(
            {"kind": "expression", "name": "x", "expression": "__import__('os')", "inputs": {"a": "p/t"}}
        )
