"""Core (level-3) identifier values are sealed at rest, masked without clearance, and shredded for good."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from gongyun.db import Database
from gongyun.errors import ConfigError
from gongyun.idres.asgi import AsgiApp
from gongyun.idres.auth import Principal, static_token_auth
from gongyun.idres.bulk import _decoded
from gongyun.idres.http import HandleService
from gongyun.idres.models import IdRecord, IdValue
from gongyun.idres.prefixes import FilingStatus, PrefixKind, submit
from gongyun.idres.registry import Registry
from gongyun.idres.syntax import parse
from gongyun.idres.values import InvalidValue, decode_values
from gongyun.security.classify.keyring import DataKeyGone, Keyring
from gongyun.security.classify.levels import Level, cleared
from gongyun.security.rbac import Role
from tests.apphelp import admin_headers, login, running_app
from tests.services import REDIS_URL, require_service

CORE_TEXT = "CORE-FORMULA-73915-Ni3Al"  # a level-3 value: must never be on disk in clear
GENERAL_TEXT = "GENERAL-SITE-42817-https"  # a level-1 value: found on disk (the search works)
PREFIX = "88.100.7"


def _values() -> list[dict[str, Any]]:
    return [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": GENERAL_TEXT}},
        {"index": 2, "type": "GY_FORMULA", "data": CORE_TEXT, "classification": "core"},
        {"index": 3, "type": "GY_NOTE", "data": "important note", "classification": "important"},
    ]


def _raw_files(db_url: str, tmp_path: Path) -> list[bytes]:
    """The bytes of the database as it lies at rest: SQLite file and WAL, or a pg_dump of the database."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        base = Path(str(url.database))
        return [p.read_bytes() for p in (base, base.with_name(base.name + "-wal")) if p.exists()]
    dump = subprocess.run(
        [
            "pg_dump",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            url.database or "",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return [dump.stdout]


def _found(blobs: list[bytes], text: str) -> bool:
    return any(text.encode() in b for b in blobs)


async def test_core_values_are_sealed_at_rest_and_shredded(db: Database, db_url: str, tmp_path: Path) -> None:
    ring = Keyring([b"\x09" * 32])
    reg = Registry(db, keyring=ring)
    async with db.session() as s:
        await submit(s, "t1", PREFIX, PrefixKind.enterprise, status=FilingStatus.active)
    rec, created = await reg.put("t1", f"{PREFIX}/F1", decode_values(_values()))
    assert created
    stored = {v.index: v for v in rec.values}
    assert stored[2].sealed and stored[2].level == 3 and not stored[2].public  # core: private and sealed
    assert not stored[1].sealed and not stored[3].sealed  # general and important stay in clear
    opened = {v.index: v for v in (await reg.get("t1", f"{PREFIX}/F1", reveal=True)).values}
    assert opened[2].value == CORE_TEXT and opened[2].to_json()["classification"] == "core"
    # registering the same content again changes nothing (the sealed value is opened to compare)
    again = await reg.register_batch("t1", [(f"{PREFIX}/F1", _values())], overwrite=True)
    assert again[0].status == "unchanged"
    # changing another value keeps the sealed one as it was, without opening it
    await reg.update_values(
        "t1", f"{PREFIX}/F1", decode_values([{"index": 4, "type": "EMAIL", "data": "a@b.c"}])
    )
    assert {v.index: v.value for v in (await reg.get("t1", f"{PREFIX}/F1", reveal=True)).values}[
        2
    ] == CORE_TEXT
    async with db.session() as s:
        row = await s.get(IdRecord, parse(f"{PREFIX}/F1").norm)
        assert (
            row is not None and CORE_TEXT not in row.values_json and CORE_TEXT not in (row.public_json or "")
        )
        indexed = (
            await s.execute(select(IdValue.idx).where(IdValue.handle_norm == row.handle_norm))
        ).scalars()
        assert 2 not in set(indexed)  # no reverse-lookup row carries the core text
    assert await reg.reverse_lookup("t1", {"GY_FORMULA": CORE_TEXT}, include_private=True) == []
    # a box copied to another record does not open there
    await reg.put("t1", f"{PREFIX}/F2", [stored[1], stored[2]])
    with pytest.raises(DataKeyGone):
        await reg.get("t1", f"{PREFIX}/F2", reveal=True)
    await reg.delete("t1", f"{PREFIX}/F2")

    blobs = _raw_files(db_url, tmp_path)
    assert _found(blobs, GENERAL_TEXT), "the plaintext search found no level-1 value: it does not work"
    assert not _found(blobs, CORE_TEXT)

    async with db.session() as s:
        assert await ring.shred(s, "t1") >= 1
    with pytest.raises(DataKeyGone) as gone:
        await reg.get("t1", f"{PREFIX}/F1", reveal=True)
    assert gone.value.code == "data_key_shredded" and gone.value.details["index"] == 2
    still = {v.index: v for v in (await reg.get("t1", f"{PREFIX}/F1")).values}
    assert still[1].value == GENERAL_TEXT and still[2].sealed  # the rest of the record is readable
    # a fresh keyring (a restarted process) cannot open it either
    with pytest.raises(DataKeyGone):
        await Registry(db, keyring=Keyring([b"\x09" * 32])).get("t1", f"{PREFIX}/F1", reveal=True)
    blobs = _raw_files(db_url, tmp_path)
    assert _found(blobs, GENERAL_TEXT) and not _found(blobs, CORE_TEXT)


def test_core_values_refused_where_they_cannot_be_sealed_or_would_be_public() -> None:
    with pytest.raises(InvalidValue, match="publicly readable"):
        decode_values(
            [{"index": 1, "type": "X", "data": "v", "classification": "core", "permissions": "1110"}]
        )
    assert not decode_values([{"index": 1, "type": "X", "data": "v", "classification": "core"}])[0].public
    with pytest.raises(InvalidValue, match="cannot be core"):
        decode_values([{"index": 1, "type": "HS_ALIAS", "data": "88.1/x", "classification": 3}])
    with pytest.raises(InvalidValue, match="unknown data format"):  # clients cannot store a forged box
        decode_values(
            [{"index": 1, "type": "X", "data": {"format": "sealed", "value": {"key": 1, "box": ""}}}]
        )
    with pytest.raises(InvalidValue, match="classification"):
        decode_values([{"index": 1, "type": "X", "data": "v", "classification": "secret"}])
    with pytest.raises(InvalidValue, match="records API"):  # the bulk import writes rows unsealed
        _decoded([{"index": 1, "type": "X", "data": "v", "classification": "core"}])


async def test_a_registry_without_keyring_refuses_core_values(db: Database) -> None:
    async with db.session() as s:
        await submit(s, "t1", PREFIX, PrefixKind.enterprise, status=FilingStatus.active)
    with pytest.raises(ConfigError, match="no keyring"):
        await Registry(db).put("t1", f"{PREFIX}/F1", decode_values(_values()))


async def test_handle_api_opens_for_cleared_callers_masks_for_others(db: Database) -> None:
    ring = Keyring([b"\x0a" * 32])
    reg = Registry(db, keyring=ring)
    async with db.session() as s:
        await submit(s, "t1", PREFIX, PrefixKind.enterprise, status=FilingStatus.active)
    await reg.put("t1", f"{PREFIX}/F1", decode_values(_values()))
    tokens = {
        "op": Principal("operator", None, operator=True),
        "viewer": Principal("viewer", None, tenant_id="t1", clearance=1),
    }
    service = HandleService(reg, None, authenticators=[static_token_auth(tokens)])
    app = AsgiApp()
    service.install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://id.test") as c:
        url = f"/api/handles/{PREFIX}/F1"
        public = await c.get(url)
        assert public.status_code == 200 and CORE_TEXT not in public.text and GENERAL_TEXT in public.text
        assert "GY_FORMULA" not in public.text
        full = await c.get(url, headers={"Authorization": "Bearer op"})
        assert {v["index"]: v["data"]["value"] for v in full.json()["values"]}[2] == CORE_TEXT
        picked = await c.get(url, params={"type": "GY_FORMULA"}, headers={"Authorization": "Bearer op"})
        assert [v["data"]["value"] for v in picked.json()["values"]] == [CORE_TEXT]
        masked = await c.get(url, headers={"Authorization": "Bearer viewer"})
        core = {v["index"]: v for v in masked.json()["values"]}[2]
        assert core["data"] == {"format": "masked", "value": None} and "box" not in masked.text
        async with db.session() as s:
            await ring.shred(s, "t1")
        gone = await c.get(url, headers={"Authorization": "Bearer op"})
        assert gone.status_code == 404 and gone.json()["code"] == "data_key_shredded", gone.text
        assert CORE_TEXT not in gone.text
        other = await c.get(url, params={"index": "1"}, headers={"Authorization": "Bearer op"})
        assert other.status_code == 200 and GENERAL_TEXT in other.text  # the other values still answer
        assert (await c.get(url)).status_code == 200  # public resolution is untouched


async def _user(client: httpx.AsyncClient, admin: dict[str, str], role: str) -> dict[str, str]:
    body = {"username": f"u-{role}", "password": f"{role}-Passw0rd-1", "role": role}
    made = await client.post("/api/v1/users", json=body, headers=admin)
    assert made.status_code == 201, made.text
    return await login(client, body["username"], body["password"])


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"GONGYUN_ADMIN_PASSWORD": "admin-Passw0rd!", "GONGYUN_SECRET_KEY": "k" * 40}
    gongyun = Path(sys.executable).with_name("gongyun")
    return subprocess.run(
        [str(gongyun), "--data-dir", str(data), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize("shared_cache", [False, True], ids=["direct", "redis"])
async def test_api_and_cli_mask_reveal_and_refuse_after_shredding(tmp_path: Path, shared_cache: bool) -> None:
    data = tmp_path / "var"
    handle = f"{PREFIX}/F1"
    extra: dict[str, Any] = {}
    if shared_cache:  # the shared resolution cache keeps records as stored: core values sealed
        require_service("redis")
        extra = {"redis_url": REDIS_URL, "deployment_id": f"seal{uuid.uuid4().hex[:8]}"}
    async with running_app(tmp_path, **extra) as (client, _):
        admin = await admin_headers(client)
        await client.post("/api/v1/identifiers/prefixes", json={"prefix": PREFIX}, headers=admin)
        for status in ("verified", "active"):
            r = await client.post(
                f"/api/v1/identifiers/prefixes/{PREFIX}/status", json={"status": status}, headers=admin
            )
            assert r.status_code == 200, r.text
        put = await client.put(
            f"/api/v1/identifiers/records/{handle}", json={"values": _values()}, headers=admin
        )
        assert put.status_code == 200 and put.json()["created"], put.text
        roles = {
            r: await _user(client, admin, r)
            for r in ("tenant-admin", "engineer", "operator", "viewer", "auditor")
        }
        roles["platform-admin"] = admin
        for role, h in roles.items():
            got = await client.get(f"/api/v1/identifiers/records/{handle}", headers=h)
            assert got.status_code == 200, (role, got.text)
            core = {v["index"]: v for v in got.json()["values"]}[2]
            assert core["classification"] == "core"
            if cleared(Role(role), Level.core):
                assert core["data"] == {"format": "string", "value": CORE_TEXT}, role
            else:
                assert core["data"] == {"format": "masked", "value": None} and CORE_TEXT not in got.text, role
            assert "box" not in got.text
    blobs = [p.read_bytes() for p in data.glob("gongyun.db*")]
    assert _found(blobs, GENERAL_TEXT), "the plaintext search found no level-1 value: it does not work"
    assert not _found(blobs, CORE_TEXT)
    shown = _cli(data, "id", "resolve", handle)
    assert shown.returncode == 0 and CORE_TEXT in shown.stdout, shown.stderr

    async with running_app(tmp_path, **extra) as (client, _):
        admin = await admin_headers(client)
        tenant_id = (await client.get("/api/v1/me", headers=admin)).json()["tenant_id"]
        shred = await client.post("/api/v1/classification/shred", json={"confirm": tenant_id}, headers=admin)
        assert shred.status_code == 200, shred.text
        gone = await client.get(f"/api/v1/identifiers/records/{handle}", headers=admin)
        assert gone.status_code == 404 and gone.json()["code"] == "data_key_shredded", gone.text
        assert CORE_TEXT not in gone.text and "shredded" in gone.json()["detail"]
        report = await client.get("/api/v1/classification/report", headers=admin)
        assert report.json()["sealed_identifier_records"] == 1, report.text
        listed = await client.get("/api/v1/identifiers/records", params={"prefix": PREFIX}, headers=admin)
        assert listed.status_code == 200 and handle in listed.json()["handles"]
    refused = _cli(data, "id", "resolve", handle)
    assert (
        refused.returncode == 1 and "data_key_shredded" in refused.stderr and CORE_TEXT not in refused.stdout
    )
    blobs = [p.read_bytes() for p in data.glob("gongyun.db*")]
    assert _found(blobs, GENERAL_TEXT) and not _found(blobs, CORE_TEXT)
