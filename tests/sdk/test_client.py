"""The SDK against a live ``gongyun serve`` subprocess: auth, CRUD, errors, pages, live streams.

The server's access tokens live 3 s, so the token-refresh path is exercised for real.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gongyun_sdk import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    GongyunApiError,
    NotFound,
    PasswordAuth,
    PayloadTooLarge,
    RefreshTokenAuth,
    Unauthenticated,
    ValidationFailed,
)
from tests.apphelp import ADMIN_PASSWORD
from tests.liveserver import gongyun_serve

TOKEN_TTL_S = 3
WAIT_S = 10.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One live server for the module (tests use names of their own)."""
    with gongyun_serve(tmp_path_factory.mktemp("sdk"), access_token_ttl_s=str(TOKEN_TTL_S)) as url:
        yield url


@pytest.fixture
def admin(server: str) -> Iterator[Client]:
    """The bootstrap platform admin, signed in with a password."""
    with Client(server, PasswordAuth("admin", ADMIN_PASSWORD)) as client:
        yield client


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _tenant_admin(server: str, admin: Client) -> tuple[Client, str]:
    """A new tenant and a client signed in as its tenant admin."""
    tenant = admin.tenants.create(_name("t"), display_name="SDK test")
    admin.act_in(tenant["id"])
    username, password = _name("boss"), "boss-Passw0rd!"
    admin.users.create(username, password, "tenant-admin")
    admin.act_in(None)
    return Client(server, PasswordAuth(username, password)), tenant["id"]


def test_login_answers_who_the_caller_is(admin: Client) -> None:
    me = admin.session.me()
    assert me["username"] == "admin"
    assert me["role"] == "platform-admin"
    assert "tenants:write" in me["permissions"]
    assert admin.refresh_token  # kept for a later RefreshTokenAuth


def test_asset_device_and_tag_crud(server: str, admin: Client) -> None:
    gy, _ = _tenant_admin(server, admin)
    with gy:
        ent = gy.assets.create("enterprise", "ACME")
        site = gy.assets.create("site", "Plant 1", parent_id=ent["id"])
        area = gy.assets.create("area", "Hall A", parent_id=site["id"])
        line = gy.assets.create("line", "Line 1", parent_id=area["id"])
        eq = gy.assets.create("equipment", "Pump P-101", parent_id=line["id"])
        assert gy.assets.update(site["id"], description="the main plant")["description"] == "the main plant"
        assert gy.assets.update(eq["id"], classification="important")["classification"] == "important"
        assert {a["id"] for a in gy.assets.list()} == {
            ent["id"],
            site["id"],
            area["id"],
            line["id"],
            eq["id"],
        }
        assert gy.assets.get(eq["id"])["level"] == "equipment"
        assert gy.assets.tree()[0]["id"] == ent["id"]

        dev = gy.devices.create("pump1", protocol="modbus", address="10.0.0.5:502", equipment_id=eq["id"])
        assert gy.devices.list(equipment_id=eq["id"])[0]["id"] == dev["id"]
        assert gy.devices.unbind(dev["id"])["equipment_id"] is None
        assert gy.devices.update(dev["id"], description="feed pump")["description"] == "feed pump"
        assert gy.devices.get(dev["id"])["address"] == "10.0.0.5:502"

        tag = gy.tags.create(dev["id"], "temp", unit="degC", low=0, high=120, classification="important")
        assert tag["ref"] == "pump1/temp"
        changed = gy.tags.update(tag["id"], high=150, clear=["low"])
        assert (changed["low"], changed["high"]) == (None, 150)
        assert [t["id"] for t in gy.tags.list(device_id=dev["id"])] == [tag["id"]]

        gy.tags.delete(tag["id"])
        with pytest.raises(NotFound) as missing:
            gy.tags.get(tag["id"])
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        gy.devices.delete(dev["id"])
        for node in (eq, line, area, site, ent):
            gy.assets.delete(node["id"])
        assert gy.assets.list() == []


def test_users_and_errors_carry_status_and_code(server: str, admin: Client) -> None:
    gy, tenant_id = _tenant_admin(server, admin)
    with gy:
        user = gy.users.create("op1", "operator-Passw0rd!", "operator", display_name="Operator One")
        assert gy.users.get(user["id"])["tenant_id"] == tenant_id
        assert gy.users.update(user["id"], display_name="Op 1")["display_name"] == "Op 1"
        assert "op1" in [u["username"] for u in gy.users.list()]

        with pytest.raises(Conflict) as dup:
            gy.users.create("op1", "another-Passw0rd!", "operator")
        assert dup.value.code == "conflict" and dup.value.status == 409
        with pytest.raises(ValidationFailed) as bad:
            gy.users.create("op2", "x-Passw0rd!", "emperor")
        assert bad.value.code == "validation_failed"
        assert any(e["loc"][-1] == "role" for e in bad.value.errors)
        with pytest.raises(NotFound):
            gy.users.get("0" * 32)
        with pytest.raises(NotFound) as no_app:
            gy.apps.configure("no-such-app", enabled=True)
        assert no_app.value.code == "not_found"
        with pytest.raises(BadRequest) as nul:
            gy.devices.list(equipment_id="a\x00b")
        assert nul.value.code == "invalid_input"
        dev = gy.devices.create("big")
        gy.tags.create(dev["id"], "v")
        with pytest.raises(PayloadTooLarge) as large:
            gy.telemetry.write([{"tag": "big/v", "value": 1.0, "ts": "2026-01-01T00:00:00Z"}] * 30_000)
        assert large.value.code == "payload_too_large"

    with Client(server, PasswordAuth("op1", "operator-Passw0rd!")) as op:
        with pytest.raises(Forbidden) as denied:
            op.devices.create("not-mine")
        assert denied.value.code == "forbidden"
        assert denied.value.title and "devices:write" in denied.value.detail
        with pytest.raises(Forbidden) as wrong_current:
            op.session.change_password("not-my-password", "new-operator-Passw0rd!")
        assert wrong_current.value.code == "current_password_invalid"
        op.session.change_password("operator-Passw0rd!", "new-operator-Passw0rd!")
    with Client(server, PasswordAuth("op1", "new-operator-Passw0rd!")) as renewed:
        assert renewed.session.me()["username"] == "op1"
    with Client(server, PasswordAuth("op1", "wrong-password")) as wrong:
        with pytest.raises(Unauthenticated) as unauth:
            wrong.session.me()
        assert unauth.value.code == "invalid_credentials"
        assert isinstance(unauth.value, GongyunApiError) and unauth.value.request_id


def test_api_key_auth_and_revocation(server: str, admin: Client) -> None:
    gy, _ = _tenant_admin(server, admin)
    with gy:
        made = gy.apikeys.create("ci-bot", "engineer", expires_in_days=30)
        assert made["key"].startswith("gy_") and made["prefix"] in made["key"]
        with Client(server, made["key"]) as bot:
            me = bot.session.me()
            assert (me["kind"], me["role"]) == ("apikey", "engineer")
            assert bot.devices.create("from-key")["name"] == "from-key"
            assert gy.apikeys.get(made["id"])["last_used_at"] is not None
            gy.apikeys.revoke(made["id"])
            with pytest.raises(Unauthenticated):
                bot.session.me()
        assert gy.apikeys.list()[0]["revoked_at"] is not None


async def test_expired_access_token_is_refreshed_once_for_concurrent_calls(server: str) -> None:
    with Client(server, PasswordAuth("admin", ADMIN_PASSWORD)) as first:
        first.session.me()
        kept = first.refresh_token
    assert kept is not None
    # No password from here on: a refused refresh could not be papered over by a new sign-in.
    async with AsyncClient(server, RefreshTokenAuth(kept)) as gy:
        await gy.session.me()
        rotated = gy.refresh_token
        assert rotated not in (None, kept)
        await asyncio.sleep(TOKEN_TTL_S + 1.5)
        # Five calls meet the expired token together and one refresh serves them all: spending
        # the rotating refresh token twice would revoke the whole session and fail the calls.
        answers = await asyncio.gather(*(gy.session.me() for _ in range(5)))
        assert {a["username"] for a in answers} == {"admin"}
        last = gy.refresh_token
        assert last not in (None, rotated)
        await gy.logout()
        assert gy.refresh_token is None
    with Client(server, RefreshTokenAuth(str(last))) as ended:
        with pytest.raises(Unauthenticated) as refused:
            ended.session.me()
        assert refused.value.code == "token_invalid"


def test_pages_walk_audit_telemetry_and_identifiers(server: str, admin: Client) -> None:
    gy, _ = _tenant_admin(server, admin)
    with gy:
        for i in range(12):
            gy.devices.create(f"dev{i:02d}")
        events = list(gy.audit.events(action="device.create", page_size=5))
        assert len(events) == 12
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 12

        dev = gy.devices.list()[0]
        gy.tags.create(dev["id"], "level")
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        samples = [
            {"tag": f"{dev['name']}/level", "value": float(i), "ts": t0 + timedelta(seconds=i)}
            for i in range(25)
        ]
        assert gy.telemetry.write(samples)["accepted"] == 25
        points = list(
            gy.telemetry.points(f"{dev['name']}/level", t0, t0 + timedelta(minutes=1), page_size=10)
        )
        assert [p["value"] for p in points] == [float(i) for i in range(25)]
        one_page = gy.telemetry.raw(f"{dev['name']}/level", t0, t0 + timedelta(minutes=1), limit=10)
        assert one_page["truncated"] and len(one_page["points"]) == 10

        prefix = f"88.{uuid.uuid4().int % 10**6}"
        assert gy.identifiers.file_prefix(prefix, org_name="SDK test")["status"] == "submitted"
        for status in ("verified", "active"):
            gy.identifiers.set_prefix_status(prefix, status)
        url = {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.com/"}}
        for i in (3, 1, 6, 0, 5, 2, 4):
            assert gy.identifiers.put(f"{prefix}/item-{i}", [url])["created"]
        handles = list(gy.identifiers.handles(prefix, page_size=3))
        assert handles == [f"{prefix}/item-{i}" for i in range(7)]
        assert gy.identifiers.get(handles[0])["values"][0]["data"]["value"] == "https://example.com/"
        gy.identifiers.delete(handles[0])
        assert len(list(gy.identifiers.handles(prefix, page_size=3))) == 6


async def test_async_pages(server: str) -> None:
    async with AsyncClient(server, PasswordAuth("admin", ADMIN_PASSWORD)) as gy:
        seen = [e["seq"] async for e in gy.audit.events(page_size=2)]
        assert len(seen) >= 3 and seen == sorted(seen, reverse=True)


async def test_live_streams_deliver_what_the_sdk_writes(server: str) -> None:
    async with AsyncClient(server, PasswordAuth("admin", ADMIN_PASSWORD)) as root:
        tenant = await root.tenants.create(_name("live"))
        root.act_in(tenant["id"])
        dev = await root.devices.create("boiler")
        await root.tags.create(dev["id"], "pressure", unit="bar")
        await root.tags.create(dev["id"], "noise")
        rule = await root.rules.create(kind="threshold", name="overpressure", tag="boiler/pressure", limit=10)

        async with root.telemetry.stream(["boiler/pressure"]) as points, root.alarms.stream() as alarms:
            written = await root.telemetry.write(
                [{"tag": "boiler/noise", "value": 1.0}, {"tag": "boiler/pressure", "value": 12.5}]
            )
            assert written["accepted"] == 2
            async with asyncio.timeout(WAIT_S):
                batch = await anext(points)
                transition = await anext(alarms)
        assert [(p["tag"], p["value"]) for p in batch] == [("boiler/pressure", 12.5)]
        assert transition["rule_id"] == rule["id"] and transition["state"] != "normal"
        assert transition["tenant"] == tenant["id"]

        # More transitions (return to normal, active again ...), then walk the history in pages.
        for value in (1.0, 12.0, 2.0, 13.0):
            await root.telemetry.write([{"tag": "boiler/pressure", "value": value}])
            await asyncio.sleep(0.05)
        async with asyncio.timeout(WAIT_S):
            while len(history := await root.alarms.history(rule_id=rule["id"], limit=1000)) < 5:
                await asyncio.sleep(0.1)
        paged = [e["id"] async for e in root.alarms.events(rule_id=rule["id"], page_size=2)]
        assert paged == [e["id"] for e in history] and len(set(paged)) == len(paged)


def test_sync_stream(server: str, admin: Client) -> None:
    gy, _ = _tenant_admin(server, admin)
    with gy:
        dev = gy.devices.create("fan")
        gy.tags.create(dev["id"], "rpm")
        with gy.telemetry.stream() as points:
            gy.telemetry.write([{"tag": "fan/rpm", "value": 1450}])
            started = time.monotonic()
            batch = next(points)
        assert batch[0]["tag"] == "fan/rpm" and batch[0]["value"] == 1450
        assert time.monotonic() - started < WAIT_S


def test_stream_refuses_without_permission(server: str) -> None:
    with Client(server, "gy_not-a-real-key") as anon, pytest.raises(Unauthenticated):
        anon.telemetry.stream().open()
    with pytest.raises(httpx.ConnectError):
        Client("http://127.0.0.1:9", "gy_x").session.me()
