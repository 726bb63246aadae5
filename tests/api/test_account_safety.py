"""Own password changes need the current password; the last platform admin cannot be taken away."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.apphelp import admin_headers, login, running_app

Headers = dict[str, str]


async def _user(client: httpx.AsyncClient, admin: Headers, name: str, role: str, **extra: Any) -> str:
    body = {"username": name, "password": f"{name}-password-1", "role": role}
    made = await client.post("/api/v1/users", json=body, headers={**admin, **extra})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _events(client: httpx.AsyncClient, admin: Headers, action: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/audit", params={"action": action}, headers=admin)
    assert resp.status_code == 200, resp.text
    return list(resp.json())


async def _can_login(client: httpx.AsyncClient, username: str, password: str) -> bool:
    resp = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    return resp.status_code == 200


async def test_own_password_change_needs_the_current_password(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        admin = await admin_headers(client)
        uid = await _user(client, admin, "tina", "tenant-admin")
        tina = await login(client, "tina", "tina-password-1")
        url = f"/api/v1/users/{uid}"

        missing = await client.patch(url, json={"password": "tina-password-2"}, headers=tina)
        assert missing.status_code == 400, missing.text
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert missing.json()["code"] == "current_password_required"

        wrong = await client.patch(
            url,
            json={"password": "tina-password-2", "current_password": "not-my-password", "display_name": "X"},
            headers=tina,
        )
        assert wrong.status_code == 403 and wrong.json()["code"] == "current_password_invalid"
        # Nothing else in the refused request took effect, and the old password still works.
        assert (await client.get(url, headers=admin)).json()["display_name"] == ""
        assert await _can_login(client, "tina", "tina-password-1")

        ok = await client.patch(
            url, json={"password": "tina-password-2", "current_password": "tina-password-1"}, headers=tina
        )
        assert ok.status_code == 200, ok.text
        assert not await _can_login(client, "tina", "tina-password-1")
        assert await _can_login(client, "tina", "tina-password-2")

        changes = await _events(client, admin, "user.password_change")
        assert [(e["actor"], e["target"], e["outcome"], e["detail"].get("reason")) for e in changes] == [
            ("tina", "tina", "success", None),
            ("tina", "tina", "failure", "password"),
            ("tina", "tina", "failure", "missing"),
        ]
        assert not await _events(client, admin, "user.password_reset")


async def test_wrong_current_passwords_lock_the_account_like_failed_sign_ins(tmp_path: Path) -> None:
    async with running_app(tmp_path, lockout_threshold=3, lockout_duration_s=60) as (client, _):
        admin = await admin_headers(client)
        uid = await _user(client, admin, "ulla", "tenant-admin")
        ulla = await login(client, "ulla", "ulla-password-1")
        for _ in range(3):
            resp = await client.patch(
                f"/api/v1/users/{uid}",
                json={"password": "ulla-password-2", "current_password": "guess-guess-guess"},
                headers=ulla,
            )
            assert resp.json()["code"] == "current_password_invalid"
        # Locked now: even the right current password is refused, and so is signing in.
        right = await client.patch(
            f"/api/v1/users/{uid}",
            json={"password": "ulla-password-2", "current_password": "ulla-password-1"},
            headers=ulla,
        )
        assert right.status_code == 403 and right.json()["code"] == "current_password_invalid"
        assert not await _can_login(client, "ulla", "ulla-password-1")
        assert [e["target"] for e in await _events(client, admin, "auth.lockout")] == ["ulla"]
        reasons = [e["detail"]["reason"] for e in await _events(client, admin, "user.password_change")]
        assert reasons == ["locked", "password", "password", "password"]


async def test_admin_reset_of_another_user_is_audited_without_current_password(
    tmp_path: Path, db_url: str
) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        admin = await admin_headers(client)
        uid = await _user(client, admin, "vera", "operator")
        reset = await client.patch(
            f"/api/v1/users/{uid}", json={"password": "vera-password-9"}, headers=admin
        )
        assert reset.status_code == 200, reset.text
        assert await _can_login(client, "vera", "vera-password-9")
        [event] = await _events(client, admin, "user.password_reset")
        assert (event["actor"], event["target"], event["detail"]["user_id"]) == ("admin", "vera", uid)
        assert not await _events(client, admin, "user.password_change")


async def test_an_api_key_cannot_change_its_creators_password_without_it(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _):
        admin = await admin_headers(client)
        uid = await _user(client, admin, "walt", "tenant-admin")
        walt = await login(client, "walt", "walt-password-1")
        made = await client.post(
            "/api/v1/apikeys", json={"name": "ops", "role": "tenant-admin"}, headers=walt
        )
        key = {"X-API-Key": made.json()["key"]}
        stolen = await client.patch(f"/api/v1/users/{uid}", json={"password": "taken-over-1"}, headers=key)
        assert stolen.status_code == 400 and stolen.json()["code"] == "current_password_required"
        assert await _can_login(client, "walt", "walt-password-1")


async def test_me_password_for_any_role_ends_the_sessions(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        admin = await admin_headers(client)
        await _user(client, admin, "xena", "viewer")
        xena = await login(client, "xena", "xena-password-1")
        wrong = await client.post(
            "/api/v1/me/password",
            json={"current_password": "nope-nope-nope", "new_password": "xena-password-2"},
            headers=xena,
        )
        assert wrong.status_code == 403 and wrong.json()["code"] == "current_password_invalid"
        weak = await client.post(
            "/api/v1/me/password",
            json={"current_password": "xena-password-1", "new_password": "short"},
            headers=xena,
        )
        assert weak.status_code == 422 and await _can_login(client, "xena", "xena-password-1")
        ok = await client.post(
            "/api/v1/me/password",
            json={"current_password": "xena-password-1", "new_password": "xena-password-2"},
            headers=xena,
        )
        assert ok.status_code == 204, ok.text
        assert (await client.get("/api/v1/me", headers=xena)).status_code == 401
        assert await _can_login(client, "xena", "xena-password-2")
        outcomes = [e["outcome"] for e in await _events(client, admin, "user.password_change")]
        assert outcomes == ["success", "failure"]


async def test_the_last_platform_admin_cannot_be_demoted_or_disabled(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        admin = await admin_headers(client)
        me = (await client.get("/api/v1/me", headers=admin)).json()
        demote = await client.patch(f"/api/v1/users/{me['id']}", json={"role": "operator"}, headers=admin)
        assert demote.status_code == 409, demote.text
        assert demote.json()["code"] == "last_platform_admin"
        assert (await client.get("/api/v1/me", headers=admin)).json()["role"] == "platform-admin"

        yuri_id = await _user(client, admin, "yuri", "platform-admin")
        yuri = await login(client, "yuri", "yuri-password-1")
        off = await client.patch(f"/api/v1/users/{me['id']}", json={"disabled": True}, headers=yuri)
        assert off.status_code == 200, off.text  # another admin remains: allowed
        self_demote = await client.patch(f"/api/v1/users/{yuri_id}", json={"role": "viewer"}, headers=yuri)
        assert self_demote.status_code == 409 and self_demote.json()["code"] == "last_platform_admin"

        # With a platform admin in another tenant, yuri may step down; that tenant then holds
        # every enabled platform admin and cannot be disabled.
        plant = (await client.post("/api/v1/tenants", json={"name": "plant-9"}, headers=yuri)).json()["id"]
        await _user(client, yuri, "zack", "platform-admin", **{"X-Tenant": plant})
        down = await client.patch(f"/api/v1/users/{yuri_id}", json={"role": "viewer"}, headers=yuri)
        assert down.status_code == 200, down.text
        zack = {**await login(client, "zack", "zack-password-1"), "X-Tenant": me["tenant_id"]}
        blocked = await client.patch(f"/api/v1/tenants/{plant}", json={"disabled": True}, headers=zack)
        assert blocked.status_code == 409 and blocked.json()["code"] == "last_platform_admin"


async def test_admins_demoting_each_other_at_once_leave_one(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        admin = await admin_headers(client)
        admin_id = (await client.get("/api/v1/me", headers=admin)).json()["id"]
        other_id = await _user(client, admin, "omar", "platform-admin")
        other = await login(client, "omar", "omar-password-1")
        results = await asyncio.gather(
            client.patch(f"/api/v1/users/{other_id}", json={"role": "viewer"}, headers=admin),
            client.patch(f"/api/v1/users/{admin_id}", json={"role": "viewer"}, headers=other),
        )
        # One wins; the other is refused: 409 when it reached the check, 403 when its caller had
        # already been demoted by the time it was authorised.
        codes = sorted(r.status_code for r in results)
        assert codes in ([200, 409], [200, 403]), [r.text for r in results]
        still_admin = admin if results[0].status_code == 200 else other
        roles = [u["role"] for u in (await client.get("/api/v1/users", headers=still_admin)).json()]
        assert sorted(roles) == ["platform-admin", "viewer"]
