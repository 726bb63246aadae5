"""The audit transparency log: proofs from the database, signed checkpoints, every tampering case."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text

from gongyun.config import Settings
from gongyun.db import Database, upgrade
from gongyun.platform import Platform
from gongyun.security.audit import chain, record, tlog
from gongyun.security.audit.keys import audit_signer
from gongyun.security.audit.merkle import verify_consistency, verify_inclusion
from gongyun.security.audit.note import Checkpoint, NoteError, Signer, Verifier
from gongyun.security.audit.publish import publish
from gongyun.security.audit.witness import CheckpointRefused, Witness
from tests.apphelp import admin_headers, make_settings

SIGNER = Signer.generate("test.example/log")
ORIGIN = "test.example"


def independent_verify(note: str, vkey: str) -> tuple[str, int, bytes]:
    """A signed-note + tlog-checkpoint verifier written from the C2SP specs, not Gongyun's code.

    https://c2sp.org/signed-note: text, a blank line, lines "— name base64(keyid4 || sig)";
    Ed25519 key id = SHA-256(name || 0x0A || 0x01 || pubkey)[:4]; the signature covers the text.
    https://c2sp.org/tlog-checkpoint: origin, decimal size, base64 root hash.
    """
    name, keyid_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 1 and len(key) == 33
    assert hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() == keyid_hex
    body, sigs = note.split("\n\n", 1)
    body += "\n"
    for line in sigs.rstrip("\n").split("\n"):
        dash, who, sig_b64 = line.split(" ")
        assert dash == "\u2014"
        raw = base64.b64decode(sig_b64)
        if who == name and raw[:4].hex() == keyid_hex:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(raw[4:], body.encode())
            origin, size, root = body.split("\n")[:3]
            return origin, int(size), base64.b64decode(root)
    raise AssertionError("no signature by the key")


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database (SQLite and PostgreSQL)."""
    await upgrade(db_url)
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.dispose()


async def _fill(db: Database, tenant: str, n: int) -> None:
    for i in range(n):
        async with db.session() as s:
            await record(s, tenant, "alice", "thing.do", f"obj-{i}", n=i, note="数据 ok")


async def _checkpoint(db: Database, tenant: str) -> str:
    async with db.session() as s:
        return await tlog.checkpoint(s, tenant, SIGNER, ORIGIN)


async def _verify(db: Database, tenant: str, external: list[str] = []) -> tlog.LogCheck:  # noqa: B006
    async with db.session() as s:
        return await tlog.verify_log(s, tenant, [SIGNER.verifier()], external)


async def test_proofs_from_the_database_verify_against_signed_checkpoints(db: Database) -> None:
    await _fill(db, "t1", 13)
    first = await _checkpoint(db, "t1")
    await _fill(db, "t1", 9)
    await _fill(db, "t2", 3)
    second = await _checkpoint(db, "t1")
    origin, size1, root1 = independent_verify(first, SIGNER.verifier().vkey())
    assert origin == "test.example/audit/t1" and size1 == 13
    _, size2, root2 = independent_verify(second, SIGNER.verifier().vkey())
    assert size2 == 22
    async with db.session() as s:
        for seq in (1, 7, 13, 22):
            size = 13 if seq <= 13 else 22
            root = root1 if size == 13 else root2
            proof = await tlog.inclusion_proof(s, "t1", seq - 1, size)
            verify_inclusion(seq - 1, size, await tlog.leaf_hash_at(s, "t1", seq - 1), proof, root)
        verify_consistency(13, 22, root1, root2, await tlog.consistency_proof(s, "t1", 13, 22))
    assert (await _verify(db, "t1")).ok and (await _verify(db, "t2")).ok


async def _rewrite_tree(db: Database, tenant: str) -> None:
    """What an attacker with the database does after editing events: rebuild nodes and head."""
    async with db.session() as s:
        lines = [
            tlog.export_line(ev)
            for ev in (
                await s.execute(chain.select(chain.AuditEvent).where(chain.AuditEvent.tenant_id == tenant))
            ).scalars()
        ]
        lines.sort(key=lambda x: x["seq"])
        await s.execute(text("DELETE FROM audit_nodes WHERE tenant_id = :t"), {"t": tenant})
        cr = tlog.CompactRange()
        for line in lines:
            for level, idx, h in cr.append(tlog.leaf_of(tenant, line)):
                s.add(chain.AuditNode(tenant_id=tenant, level=level, idx=idx, hash=h))
        await s.execute(
            text("UPDATE audit_heads SET seq = :n, frontier = :f WHERE tenant_id = :t"),
            {"n": cr.size, "f": json.dumps([h.hex() for h in cr.hashes]), "t": tenant},
        )


@pytest.mark.parametrize("case", ["altered", "inserted", "deleted", "reordered"])
async def test_tampering_in_the_middle_is_detected(db: Database, case: str) -> None:
    await _fill(db, "t1", 12)
    await _checkpoint(db, "t1")
    async with db.session() as s:
        if case == "altered":
            await s.execute(
                text("UPDATE audit_events SET target = 'forged' WHERE tenant_id = 't1' AND seq = 6")
            )
        elif case == "inserted":
            await s.execute(
                text("UPDATE audit_events SET seq = seq + 1000 WHERE tenant_id = 't1' AND seq > 5")
            )
            await s.execute(
                text("UPDATE audit_events SET seq = seq - 999 WHERE tenant_id = 't1' AND seq > 1000")
            )
            ev = (await s.execute(text("SELECT * FROM audit_events WHERE tenant_id='t1' AND seq=5"))).one()
            await s.execute(
                text(
                    "INSERT INTO audit_events (tenant_id, seq, ts, actor, action, target, outcome,"
                    " detail, prev_hash, hash)"
                    " VALUES ('t1', 6, :ts, 'mallory', 'thing.do', 'x', 'success', '{}', :h, :h)"
                ),
                {"ts": ev.ts, "h": "0" * 64},
            )
        elif case == "deleted":
            await s.execute(text("DELETE FROM audit_events WHERE tenant_id = 't1' AND seq = 6"))
            await s.execute(text("UPDATE audit_events SET seq = seq - 1 WHERE tenant_id = 't1' AND seq > 6"))
        else:
            await s.execute(text("UPDATE audit_events SET seq = 1000 WHERE tenant_id = 't1' AND seq = 6"))
            await s.execute(text("UPDATE audit_events SET seq = 6 WHERE tenant_id = 't1' AND seq = 7"))
            await s.execute(text("UPDATE audit_events SET seq = 7 WHERE tenant_id = 't1' AND seq = 1000"))
    bad = await _verify(db, "t1")
    assert not bad.ok, case
    await _rewrite_tree(db, "t1")  # the stored tree made to match: the signed checkpoint still catches it
    bad = await _verify(db, "t1")
    assert not bad.ok and any("rewritten" in p or "removed" in p for p in bad.problems), bad.problems


async def test_newest_events_removed_with_the_head_and_a_wiped_trail_are_detected(
    db: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, audit_publish=[str(tmp_path / "pub")])
    await _fill(db, "t1", 10)
    await _fill(db, "t2", 4)
    async with db.session() as s:
        notes = await publish(s, settings)
    published = {p.stem: p.read_text() for p in (tmp_path / "pub").iterdir()}
    assert published["tenant-t1"] == notes["tenant-t1"] and "platform" in published
    verifier = audit_signer(settings).verifier()
    # remove the newest 3 events of t1, its nodes, its head and its stored checkpoints
    async with db.session() as s:
        await s.execute(text("DELETE FROM audit_events WHERE tenant_id = 't1' AND seq > 7"))
        await s.execute(text("DELETE FROM audit_checkpoints WHERE tenant_id = 't1'"))
    await _rewrite_tree(db, "t1")
    async with db.session() as s:
        inside = await tlog.verify_log(s, "t1", [verifier])
        assert inside.ok  # from inside the database alone, nothing is missing ...
        outside = await tlog.verify_log(s, "t1", [verifier], [published["tenant-t1"]])
    assert not outside.ok and "events were removed" in outside.problems[0]  # ... the published one says
    # wipe t2 entirely: events, nodes, head, checkpoints
    async with db.session() as s:
        for table in ("audit_events", "audit_nodes", "audit_heads", "audit_checkpoints"):
            await s.execute(text(f"DELETE FROM {table} WHERE tenant_id = 't2'"))
    async with db.session() as s:
        wiped = await tlog.verify_log(s, "t2", [verifier], [published["tenant-t2"]])
        assert not wiped.ok and "the log has 0" in wiped.problems[0]
        # the platform log recorded t2's checkpoint: its own published checkpoint still verifies
        platform = await tlog.verify_log(s, tlog.PLATFORM_LOG, [verifier], [published["platform"]])
        assert platform.ok
        rows = (
            await s.execute(text("SELECT target, detail FROM audit_events WHERE tenant_id='platform'"))
        ).all()
    assert {r.target for r in rows} == {"t1", "t2"}


async def test_a_forked_log_shown_to_two_witnesses_is_refused(db: Database, tmp_path: Path) -> None:
    vkeys = [SIGNER.verifier()]
    w1, w2 = Witness(tmp_path / "w1", vkeys), Witness(tmp_path / "w2", vkeys)
    await _fill(db, "t1", 8)
    base = await _checkpoint(db, "t1")
    w1.observe(base)
    w2.observe(base)
    await _fill(db, "t1", 3)
    honest = await _checkpoint(db, "t1")
    async with db.session() as s:
        honest_proof = await tlog.consistency_proof(s, "t1", 8, 11)
    w1.observe(honest, honest_proof)
    # the operator rewrites event 4 and shows the fork to the second witness
    async with db.session() as s:
        await s.execute(text("UPDATE audit_events SET target = 'forged' WHERE tenant_id = 't1' AND seq = 4"))
        await s.execute(text("DELETE FROM audit_checkpoints WHERE tenant_id = 't1'"))
    await _rewrite_tree(db, "t1")
    forked = await _checkpoint(db, "t1")
    async with db.session() as s:
        forked_proof = await tlog.consistency_proof(s, "t1", 8, 11)
    with pytest.raises(CheckpointRefused, match="not consistent"):
        w2.observe(forked, forked_proof)
    # gossip: each witness is shown what the other holds
    with pytest.raises(CheckpointRefused, match="fork"):
        w1.observe(forked)
    w2.observe(honest, honest_proof)  # w2 still only had size 8: the honest one is consistent
    with pytest.raises(CheckpointRefused, match="rollback"):
        w1.observe(base)
    with pytest.raises(NoteError):
        Witness(tmp_path / "w3", [Signer.generate("other").verifier()]).observe(honest)


def test_signed_note_round_trip_and_forgeries() -> None:
    cp = Checkpoint("example.com/log", 5, b"\x11" * 32, ("ext line",))
    note = cp.sign(SIGNER)
    assert Checkpoint.open(note, [SIGNER.verifier()]) == cp
    assert independent_verify(note, SIGNER.verifier().vkey())[1] == 5
    assert Signer.parse(SIGNER.private_text()) == SIGNER
    assert Verifier.parse(SIGNER.verifier().vkey()) == SIGNER.verifier()
    forged = note.replace("\n5\n", "\n6\n")
    with pytest.raises(NoteError, match="bad signature"):
        Checkpoint.open(forged, [SIGNER.verifier()])
    with pytest.raises(InvalidSignature):
        independent_verify(forged, SIGNER.verifier().vkey())


async def test_existing_chained_events_become_leaves_in_order(db_url: str) -> None:
    await upgrade(db_url, "foundation_0004")
    old = Database(db_url)
    try:
        prev = chain.GENESIS
        async with old.session() as s:
            for seq in range(1, 8):
                ts = chain.utcnow()
                fields = {
                    "actor": "a",
                    "action": "x.y",
                    "target": str(seq),
                    "outcome": "success",
                    "detail": {},
                }
                digest = chain._digest(prev, "t1", seq, ts, fields)
                await s.execute(
                    text(
                        "INSERT INTO audit_events (tenant_id, seq, ts, actor, action, target, outcome,"
                        " detail, prev_hash, hash)"
                        " VALUES ('t1', :seq, :ts, 'a', 'x.y', :tg, 'success', '{}', :p, :h)"
                    ),
                    {"seq": seq, "ts": ts, "tg": str(seq), "p": prev, "h": digest},
                )
                prev = digest
            await s.execute(
                text("INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ('t1', 7, :h)"), {"h": prev}
            )
    finally:
        await old.dispose()
    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.session() as s:
            await record(s, "t1", "b", "after.upgrade")
        async with db.session() as s:
            assert (await chain.verify(s, "t1")).ok
            lines = [json.loads(x) async for x in tlog.export(s, "t1")][1:]
            assert [x["target"] for x in lines] == [*map(str, range(1, 8)), ""]
            expected = tlog.check_leaves("t1", lines)
            assert (await tlog.root_at(s, "t1", 8)).hex() == expected.root
            assert (await tlog.verify_log(s, "t1", [SIGNER.verifier()])).ok
    finally:
        await db.dispose()


async def test_api_and_offline_verification(
    app_client: tuple[httpx.AsyncClient, Platform], tmp_path: Path
) -> None:
    from gongyun.cli.audit import verify_export

    client, _ = app_client
    headers = await admin_headers(client)
    for i in range(5):
        await client.post("/api/v1/apikeys", json={"name": f"k{i}", "role": "viewer"}, headers=headers)
    note = (await client.get("/api/v1/audit/checkpoint", headers=headers)).text
    vkey = (await client.get("/api/v1/audit/key", headers=headers)).text.strip()
    _, size, root = independent_verify(note, vkey)
    assert size >= 6
    got = (
        await client.get("/api/v1/audit/proof/inclusion", params={"seq": 3, "size": size}, headers=headers)
    ).json()
    verify_inclusion(2, size, *tlog.unb64([got["leaf_hash"]]), tlog.unb64(got["proof"]), root)
    await client.post("/api/v1/apikeys", json={"name": "later", "role": "viewer"}, headers=headers)
    later = (await client.get("/api/v1/audit/checkpoint", headers=headers)).text
    _, size2, root2 = independent_verify(later, vkey)
    cons = (
        await client.get("/api/v1/audit/proof/consistency", params={"first": size}, headers=headers)
    ).json()
    verify_consistency(size, size2, root, root2, tlog.unb64(cons["proof"]))
    assert (await client.get("/api/v1/audit/verify", headers=headers)).json()["ok"]
    export = tmp_path / "export.jsonl"
    export.write_text((await client.get("/api/v1/audit/export", headers=headers)).text)
    verifier = Verifier.parse(vkey)
    assert verify_export(export, [note, later], [verifier]).ok
    lines = export.read_text().splitlines()
    lines[2] = lines[2].replace('"success"', '"failure"')
    export.write_text("\n".join(lines) + "\n")
    assert not verify_export(export, [later], [verifier]).ok
    # the platform's log is for platform admins only; another tenant's id is not found
    assert (
        await client.get("/api/v1/audit/checkpoint", params={"log": "platform"}, headers=headers)
    ).status_code in (
        200,
        403,
    )
    assert (
        await client.get("/api/v1/audit/checkpoint", params={"log": "x" * 32}, headers=headers)
    ).status_code == 404


def test_signing_key_comes_from_settings_or_a_private_file(tmp_path: Path) -> None:
    generated = audit_signer(make_settings(tmp_path))
    key_file = tmp_path / "var" / "audit-signing.key"
    assert key_file.stat().st_mode & 0o077 == 0
    assert audit_signer(make_settings(tmp_path)) == generated
    other = Signer.generate("configured")
    assert audit_signer(Settings(data_dir=tmp_path, audit_signing_key=other.private_text())) == other


async def test_checkpoints_are_published_to_files_and_the_platform_identifier(
    app_client: tuple[httpx.AsyncClient, Platform], tmp_path: Path
) -> None:
    from gongyun.idres.objects import PLATFORM_OWNER
    from gongyun.idres.registry import Registry
    from gongyun.platform.auditpub import CHECKPOINT_TYPE, audit_handle, publish_once

    client, platform = app_client
    await admin_headers(client)  # a sign-in: the tenant's log has events
    platform.settings.audit_publish = [str(tmp_path / "out")]
    notes = await publish_once(platform)
    rec = await Registry(platform.db, enforce_prefixes=False).get(
        PLATFORM_OWNER, audit_handle(platform.settings.id_prefix)
    )
    value = next(v for v in rec.values if v.type == CHECKPOINT_TYPE)
    vkey = audit_signer(platform.settings).verifier().vkey()
    assert value.value == notes["platform"] == (tmp_path / "out" / "platform.checkpoint").read_text()
    origin, size, _ = independent_verify(value.value, vkey)
    assert origin.endswith("/audit/platform") and size >= 1
    tenant_files = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("tenant-")]
    assert tenant_files and all(independent_verify(p.read_text(), vkey)[1] >= 1 for p in tenant_files)


async def test_batched_appends_make_the_same_log_as_single_ones(db: Database) -> None:
    async with db.session() as s:
        await chain.record_many(s, "t1", [("a", "x.do", str(i), "success", {"i": i}) for i in range(37)])
    await _fill(db, "t1", 5)
    async with db.session() as s:
        assert (await chain.verify(s, "t1")).ok
        lines = [json.loads(x) async for x in tlog.export(s, "t1")][1:]
        assert (await tlog.root_at(s, "t1", 42)).hex() == tlog.check_leaves("t1", lines).root
    assert (await _verify(db, "t1")).ok
