"""Data classification enforced: sealed core values, masking per role, four-eyes exports, shredding."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gongyun.db import Database
from gongyun.security.classify.exports import ExportRequest, check_download, decide
from gongyun.security.classify.keyring import DataKeyGone, Keyring
from gongyun.security.classify.levels import Level, cleared, effective
from gongyun.security.rbac import Role
from tests.apphelp import admin_headers, login, running_app

CORE, IMPORTANT, GENERAL = 7777.123456789, 1313.987654321, 4242.4242


def test_levels_are_inherited_unless_raised() -> None:
    assert effective("general", ["core", "general"]) is Level.core
    assert effective("core", ["general"]) is Level.core
    assert effective("important", []) is Level.important
    assert [r for r in Role if cleared(r, Level.core)] == [
        Role.platform_admin,
        Role.tenant_admin,
        Role.engineer,
    ]


async def test_keyring_rotation_and_shredding(db: Database) -> None:
    old_master, new_master = b"\x01" * 32, b"\x02" * 32
    ring = Keyring([old_master])
    async with db.session() as s:
        v1, sealed1 = await ring.seal(s, "t1", 3, "a@1", b"secret-1")
        await ring.rotate_data_key(s, "t1", 3)
        v2, sealed2 = await ring.seal(s, "t1", 3, "a@2", b"secret-2")
        assert (v1, v2) == (1, 2)
        _, other = await ring.seal(s, "t2", 3, "a@1", b"other tenant")
    # a new master key: data keys rewrapped, old and new values open, nothing re-encrypted
    rotated = Keyring([new_master, old_master])
    async with db.session() as s:
        assert await rotated.rewrap_all(s) == 3
    fresh = Keyring([new_master])  # the old master key is gone now
    async with db.session() as s:
        assert await fresh.open(s, "t1", 3, "a@1", v1, sealed1) == b"secret-1"
        assert await fresh.open(s, "t1", 3, "a@2", v2, sealed2) == b"secret-2"
        with pytest.raises(DataKeyGone):  # a sealed value moved to another place does not open
            await fresh.open(s, "t1", 3, "a@9", v1, sealed1)
        assert await fresh.shred(s, "t1") == 2
    async with db.session() as s:
        with pytest.raises(DataKeyGone):
            await fresh.open(s, "t1", 3, "a@1", v1, sealed1)
        assert await fresh.open(s, "t2", 3, "a@1", 1, other) == b"other tenant"


def test_four_eyes_rules() -> None:
    req = ExportRequest(
        id="r1", tag="x/y", level=2, reason="audit", requester_id="u1", requester="op", status="pending"
    )
    with pytest.raises(Exception, match="needs approval"):
        check_download(req, "u1")
    with pytest.raises(Exception, match="second person"):
        decide(req, "u1", "op", approve=True)
    decide(req, "u2", "boss", approve=True)
    check_download(req, "u1")
    with pytest.raises(Exception, match="only the requester"):
        check_download(req, "u2")


def _found(files: list[Path], value: float) -> list[str]:
    needles = [struct.pack("<d", value), repr(value).encode()]
    return [f.name for f in files if f.exists() and any(n in f.read_bytes() for n in needles)]


async def _user(client: httpx.AsyncClient, admin: dict[str, str], role: str) -> dict[str, str]:
    body = {"username": f"u-{role}", "password": f"{role}-Passw0rd-1", "role": role}
    made = await client.post("/api/v1/users", json=body, headers=admin)
    assert made.status_code == 201, made.text
    return await login(client, body["username"], body["password"])


async def _points(client: httpx.AsyncClient, h: dict[str, str], tag: str, window: dict[str, str]) -> Any:
    return await client.get("/api/v1/classification/points", params={"tag": tag, **window}, headers=h)


async def test_core_values_are_sealed_masked_exported_with_approval_and_shredded(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    window = {
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": (now + timedelta(minutes=1)).isoformat(),
    }
    data = tmp_path / "var"
    files = [
        data / "gongyun.db",
        data / "gongyun.db-wal",
        data / "telemetry.duckdb",
        data / "telemetry.duckdb.wal",
    ]
    async with running_app(tmp_path) as (client, _):
        admin = await admin_headers(client)
        for name, level in (("vault", "core"), ("line", "important"), ("pump", "general")):
            dev = await client.post(
                "/api/v1/assets/devices",
                json={"name": name, "protocol": "modbus", "classification": level},
                headers=admin,
            )
            assert dev.status_code == 201, dev.text
            tag = await client.post(
                f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": "v"}, headers=admin
            )
            assert tag.status_code == 201, tag.text
        samples = [
            {"tag": f"{dev}/v", "value": value, "ts": (now - timedelta(seconds=60 - i)).isoformat()}
            for dev, value in (("vault", CORE), ("line", IMPORTANT), ("pump", GENERAL))
            for i in range(20)
        ]
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=admin)
        assert r.status_code == 200 and r.json()["accepted"] == 60, r.text
        roles = {
            role: await _user(client, admin, role)
            for role in ("tenant-admin", "engineer", "operator", "viewer", "auditor")
        }
        roles["platform-admin"] = admin
        # masking, for every role and level
        for role, h in roles.items():
            for tag, level in (
                ("vault/v", Level.core),
                ("line/v", Level.important),
                ("pump/v", Level.general),
            ):
                got = await _points(client, h, tag, window)
                assert got.status_code == 200, (role, tag, got.text)
                body = got.json()
                assert len(body["points"]) == 20 and body["level"] == level.name
                assert body["masked"] is not cleared(Role(role), level), (role, tag)
                if not body["masked"]:
                    assert {v for _, v in body["points"]} == {
                        dict(vault=CORE, line=IMPORTANT, pump=GENERAL)[tag[:-2]]
                    }
        # the ordinary telemetry reads: refused or masked above the caller's clearance
        for role, h in roles.items():
            for tag, level in (("line/v", Level.important), ("pump/v", Level.general)):
                got = await client.get("/api/v1/telemetry/raw", params={"tag": tag, **window}, headers=h)
                assert got.status_code == (200 if cleared(Role(role), level) else 403), (role, tag, got.text)
            latest = (await client.get("/api/v1/telemetry/latest", headers=h)).json()
            assert latest["pump/v"]["value"] == GENERAL
            assert (latest["line/v"]["value"] == IMPORTANT) is cleared(Role(role), Level.important), role
        # the core tag never reached the time-series store
        raw = await client.get("/api/v1/telemetry/raw", params={"tag": "vault/v", **window}, headers=admin)
        assert raw.status_code == 200 and not raw.json().get("points"), raw.text
        # four-eyes export of important data
        op = roles["operator"]
        direct = await client.get("/api/v1/telemetry/export", params={"tag": "line/v", **window}, headers=op)
        assert direct.status_code == 403, direct.text
        req = await client.post(
            "/api/v1/classification/exports",
            json={"tag": "line/v", **window, "reason": "quarterly review"},
            headers=op,
        )
        assert req.status_code == 201 and req.json()["status"] == "pending", req.text
        rid = req.json()["id"]
        refused = await client.get(f"/api/v1/classification/exports/{rid}/download", headers=op)
        assert refused.status_code == 403, refused.text
        events = (await client.get("/api/v1/audit", params={"limit": 50}, headers=admin)).json()
        refusals = [(e["action"], e["outcome"]) for e in events if e["outcome"] == "failure"]
        assert ("export.download", "failure") in refusals and ("telemetry.export", "failure") in refusals
        approved = await client.post(
            f"/api/v1/classification/exports/{rid}/approve", headers=roles["tenant-admin"]
        )
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
        csv = await client.get(f"/api/v1/classification/exports/{rid}/download", headers=op)
        assert csv.status_code == 200 and "requested by u-operator for: quarterly review" in csv.text
        assert "approved by u-tenant-admin" in csv.text and repr(IMPORTANT) in csv.text
        report = (await client.get("/api/v1/classification/report", headers=admin)).json()
        assert report["levels"]["core"]["tags"] == ["vault/v"] and report["sealed_points"] == 20
    # the raw files: level-1 values are there in clear (the search works), level-3 values are not
    before_general, before_core = _found(files, GENERAL), _found(files, CORE)
    assert before_general, "the plaintext search found no level-1 value: it does not work"
    assert before_core == []
    async with running_app(tmp_path) as (client, _):
        admin = await admin_headers(client)
        tenant_id = (await client.get("/api/v1/me", headers=admin)).json()["tenant_id"]
        shredded = await client.post(
            "/api/v1/classification/shred", json={"confirm": tenant_id}, headers=admin
        )
        assert shredded.status_code == 200 and shredded.json()["keys_destroyed"] >= 1, shredded.text
        gone = await _points(client, admin, "vault/v", window)
        assert gone.status_code == 404 and gone.json()["code"] == "data_key_shredded", gone.text
        raw = await client.get("/api/v1/telemetry/raw", params={"tag": "vault/v", **window}, headers=admin)
        assert not raw.json().get("points")
        assert (await _points(client, admin, "pump/v", window)).json()["points"][0][1] == GENERAL
    assert _found(files, CORE) == [] and _found(files, GENERAL)


class _Inner:
    """A stand-in time-series store that records what reaches it."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    async def write(self, tenant: str, points: Any, series: str = "raw") -> int:
        self.got.extend(points)
        return len(points)


async def test_sealing_store_diverts_core_points_on_each_backend(db: Database) -> None:
    import numpy as np

    from gongyun.telemetry.sealed import SealingStore, apply_retention, drop_sealed_before, read_sealed
    from gongyun.telemetry.store.base import Point

    inner, ring = _Inner(), Keyring([b"\x05" * 32])

    async def core(_tenant: str) -> set[str]:
        return {"vault/v"}

    store = SealingStore(inner, db, ring, core)  # type: ignore[arg-type]
    await store.write("t1", [Point("vault/v", 1, CORE), Point("pump/v", 1, GENERAL)])
    tags = ["vault/v", "pump/v", "vault/v"]
    ts, values = np.array([2, 2, 3], dtype=np.int64), np.array([CORE, GENERAL, CORE + 1])
    await store.write_columns("t1", tags, ts, values, np.array([192, 192, 192], dtype=np.int16))
    await store.write("t1", [Point("vault/v", 3, CORE + 2)])  # the same instant again: replaced
    assert {p.tag for p in inner.got} == {"pump/v"} and len(inner.got) == 2
    opened = await read_sealed(db, ring, "t1", "vault/v", 0, 10)
    assert [(p.ts, p.value) for p in opened] == [(1, CORE), (2, CORE), (3, CORE + 2)]
    assert await drop_sealed_before(db, "t1", 2) == 1
    assert await apply_retention(db, now_us=3 + 86_400_000_000, days=1) == 1  # ts 2 is older than a day
    async with db.session() as s:
        await ring.shred(s, "t1")
    with pytest.raises(DataKeyGone):
        await read_sealed(db, ring, "t1", "vault/v", 0, 10)
