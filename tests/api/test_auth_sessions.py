"""Over HTTP, on both databases: instant session revocation, address throttling, lockout secrecy,
API keys bound to their creator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from gongyun.api.app import create_app
from gongyun.platform import prepare_database, start_platform
from tests.apphelp import ADMIN_PASSWORD, admin_headers, login, make_settings, running_app

TOKEN = "/api/v1/auth/token"
Clients = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def app_from_addresses(tmp_path: Path, db_url: str, **overrides: Any) -> AsyncIterator[Clients]:
    """One app; ``clients(ip)`` gives an httpx client whose requests come from ``ip``."""
    settings = make_settings(tmp_path, db_url, **overrides)
    await prepare_database(settings)
    runtime = await start_platform(settings)
    app = create_app(settings, platform=runtime)
    made: list[httpx.AsyncClient] = []

    def clients(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        made.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return made[-1]

    try:
        yield clients
    finally:
        for client in made:
            await client.aclose()
        await runtime.close()


async def _tokens(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    resp = await client.post(TOKEN, data={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_logout_revokes_the_access_token_at_once(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        laptop = await _tokens(client, "admin", ADMIN_PASSWORD)
        phone = await _tokens(client, "admin", ADMIN_PASSWORD)
        assert (await client.get("/api/v1/me", headers=_bearer(laptop))).status_code == 200
        out = await client.post("/api/v1/auth/logout", json={"refresh_token": laptop["refresh_token"]})
        assert out.status_code == 204
        dead = await client.get("/api/v1/me", headers=_bearer(laptop))
        assert dead.status_code == 401 and dead.json()["code"] == "token_invalid"
        assert "session ended" in dead.json()["detail"]
        assert (await client.get("/api/v1/me", headers=_bearer(phone))).status_code == 200


async def test_user_and_tenant_disable_revoke_access_tokens(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        root = await admin_headers(client)
        tenant = (await client.post("/api/v1/tenants", json={"name": "plant"}, headers=root)).json()
        in_plant = {**root, "X-Tenant": tenant["id"]}
        user = await client.post(
            "/api/v1/users",
            json={"username": "op7", "password": "operator-password", "role": "operator"},
            headers=in_plant,
        )
        assert user.status_code == 201, user.text
        op = await login(client, "op7", "operator-password")
        assert (await client.get("/api/v1/me", headers=op)).status_code == 200
        off = await client.patch(f"/api/v1/tenants/{tenant['id']}", json={"disabled": True}, headers=root)
        assert off.status_code == 200, off.text
        assert (await client.get("/api/v1/me", headers=op)).status_code == 401
        await client.patch(f"/api/v1/tenants/{tenant['id']}", json={"disabled": False}, headers=root)
        again = await client.get("/api/v1/me", headers=op)
        assert again.status_code == 401  # the sessions ended with the disable; enabling revives none
        op = await login(client, "op7", "operator-password")
        uid = user.json()["id"]
        assert (
            await client.patch(f"/api/v1/users/{uid}", json={"disabled": True}, headers=in_plant)
        ).is_success
        await client.patch(f"/api/v1/users/{uid}", json={"disabled": False}, headers=in_plant)
        assert (await client.get("/api/v1/me", headers=op)).status_code == 401


async def test_login_throttled_per_client_address(tmp_path: Path, db_url: str) -> None:
    async with app_from_addresses(tmp_path, db_url, login_ip_threshold=3, lockout_threshold=50) as clients:
        attacker, colleague = clients("203.0.113.9"), clients("198.51.100.4")
        for name in ("admin", "ghost", "nobody"):  # spraying over known and unknown accounts
            resp = await attacker.post(TOKEN, data={"username": name, "password": "guess-guess-1"})
            assert resp.status_code == 401
        throttled = await attacker.post(TOKEN, data={"username": "admin", "password": ADMIN_PASSWORD})
        assert throttled.status_code == 429
        assert throttled.headers["content-type"].startswith("application/problem+json")
        assert throttled.json()["code"] == "login_throttled"
        assert 1 <= int(throttled.headers["retry-after"]) <= 900
        ok = await colleague.post(TOKEN, data={"username": "admin", "password": ADMIN_PASSWORD})
        assert ok.status_code == 200  # other addresses, and the account itself, are unaffected


async def test_throttled_site_still_lets_in_its_known_users(tmp_path: Path, db_url: str) -> None:
    async with app_from_addresses(tmp_path, db_url, login_ip_threshold=3, lockout_threshold=50) as clients:
        office, home = clients("203.0.113.50"), clients("198.51.100.77")
        root = _bearer(await _tokens(office, "admin", ADMIN_PASSWORD))  # admin works at the office
        made = await office.post(
            "/api/v1/users",
            json={"username": "erin", "password": "erin-password-1", "role": "viewer"},
            headers=root,
        )
        assert made.status_code == 201, made.text
        for name in ("admin", "ghost", "erin"):  # one bad actor behind the office NAT
            resp = await office.post(TOKEN, data={"username": name, "password": "guess-guess-1"})
            assert resp.status_code == 401
        admin = await office.post(TOKEN, data={"username": "admin", "password": ADMIN_PASSWORD})
        assert admin.status_code == 200, admin.text  # known here: still signs in
        assert (await office.get("/api/v1/me", headers=_bearer(admin.json()))).status_code == 200
        for name, password in (("admin", "guess-guess-2"), ("erin", "erin-password-1"), ("nobody", "x" * 12)):
            resp = await office.post(TOKEN, data={"username": name, "password": password})
            assert resp.status_code == 429 and resp.json()["code"] == "login_throttled", (name, resp.text)
            assert int(resp.headers["retry-after"]) >= 1
        assert (await _tokens(home, "erin", "erin-password-1"))["access_token"]


async def test_locked_account_is_indistinguishable_from_unknown(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url, lockout_threshold=2, lockout_duration_s=300) as (client, _):
        root = await admin_headers(client)
        await client.post(
            "/api/v1/users",
            json={"username": "carol", "password": "carol-password-1", "role": "viewer"},
            headers=root,
        )
        for _ in range(2):
            await client.post(TOKEN, data={"username": "carol", "password": "wrong-password"})
        locked = await client.post(TOKEN, data={"username": "carol", "password": "carol-password-1"})
        unknown = await client.post(TOKEN, data={"username": "nobody-here", "password": "carol-password-1"})

        def shape(resp: httpx.Response) -> tuple[int, dict[str, Any], list[str]]:
            skip = {"date", "content-length", "x-request-id"}
            return resp.status_code, resp.json(), sorted(k for k in resp.headers if k not in skip)

        assert shape(locked) == shape(unknown)
        assert locked.status_code == 401 and locked.json()["code"] == "invalid_credentials"
        trail = (await client.get("/api/v1/audit?limit=20", headers=root)).json()
        mine = [(e["action"], e["detail"].get("reason")) for e in trail if e["target"] == "carol"]
        assert ("auth.lockout", None) in mine and ("auth.login", "locked") in mine
        users = (await client.get("/api/v1/users", headers=root)).json()
        assert next(u for u in users if u["username"] == "carol")["locked_until"] is not None


async def test_api_keys_of_a_disabled_creator_stop_working(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        root = await admin_headers(client)
        made = await client.post(
            "/api/v1/users",
            json={"username": "dave", "password": "dave-password-1", "role": "tenant-admin"},
            headers=root,
        )
        dave = await login(client, "dave", "dave-password-1")
        key = (
            await client.post("/api/v1/apikeys", json={"name": "k1", "role": "tenant-admin"}, headers=dave)
        ).json()
        child = await client.post(
            "/api/v1/apikeys", json={"name": "k2", "role": "viewer"}, headers={"X-API-Key": key["key"]}
        )
        assert child.status_code == 201, child.text
        for k in (key["key"], child.json()["key"]):
            assert (await client.get("/api/v1/me", headers={"X-API-Key": k})).status_code == 200
        off = await client.patch(f"/api/v1/users/{made.json()['id']}", json={"disabled": True}, headers=root)
        assert off.status_code == 200
        for k in (key["key"], child.json()["key"]):
            dead = await client.get("/api/v1/me", headers={"X-API-Key": k})
            assert dead.status_code == 401 and dead.json()["code"] == "invalid_credentials"
        listed = {k["name"]: k for k in (await client.get("/api/v1/apikeys", headers=root)).json()}
        assert listed["k1"]["revoked_at"] and listed["k2"]["revoked_at"]
        trail = (await client.get("/api/v1/audit?action=apikey.revoke", headers=root)).json()
        assert {(e["actor"], e["target"], e["detail"]["reason"]) for e in trail} == {
            ("admin", "k1", "creator_disabled"),
            ("admin", "k2", "creator_disabled"),
        }


async def test_guesses_behind_a_throttled_nat_cannot_lock_out_a_known_user(
    tmp_path: Path, db_url: str
) -> None:
    async with app_from_addresses(tmp_path, db_url, login_ip_threshold=3, lockout_threshold=2) as clients:
        office, home = clients("203.0.113.60"), clients("198.51.100.78")
        await _tokens(office, "admin", ADMIN_PASSWORD)  # admin works at the office
        for name in ("ghost1", "ghost2", "ghost3"):  # one bad actor behind the office NAT
            resp = await office.post(TOKEN, data={"username": name, "password": "guess-guess-1"})
            assert resp.status_code == 401
        for i in range(3):  # login_known_blocked_failures (default 3) > lockout_threshold
            resp = await office.post(TOKEN, data={"username": "admin", "password": f"guess-guess-{i}"})
            assert resp.status_code == 429 and resp.json()["code"] == "login_throttled", resp.text
        used_up = await office.post(TOKEN, data={"username": "admin", "password": ADMIN_PASSWORD})
        assert used_up.status_code == 429  # the pair is throttled now, the right password too
        assert (await _tokens(home, "admin", ADMIN_PASSWORD))["access_token"]  # not locked out
