"""Migrations: every room's branch applies, twice is a no-op, tables match the models, every
branch downgrades to base and back, and data survives the foundation upgrade (both databases)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

import gongyun.platform.models  # noqa: F401  (registers every table)
from gongyun.db import Base, Database, downgrade, upgrade
from gongyun.db.base import UTCDateTime, utcnow
from gongyun.security import audit, auth
from gongyun.security.models import ApiKey, RefreshToken, User
from gongyun.security.rbac import Role
from tests.apphelp import make_settings


async def test_upgrade_twice_reaches_every_head_and_creates_every_table(db_url: str) -> None:
    await upgrade(db_url)
    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            versions = {r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))}
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await db.dispose()
    # assets_0004 depends on idres_0001, the trust branch on foundation_0004
    assert {"trust_0002", "assets_0004"} <= versions
    missing = set(Base.metadata.tables) - tables
    assert not missing, f"models without a migration: {sorted(missing)}"


def _schema(conn: Connection) -> dict[str, Any]:
    """Tables with their columns, indexes, unique constraints and foreign keys, comparable."""
    insp = inspect(conn)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)),
            "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in insp.get_foreign_keys(table)
            ),
        }
    return out


async def _snapshot(url: str) -> tuple[dict[str, Any], set[str]]:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            schema = await conn.run_sync(_schema)
            versions = {r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))}
    finally:
        await db.dispose()
    return schema, versions


async def test_every_branch_downgrades_to_base_and_upgrades_again(db_url: str) -> None:
    await upgrade(db_url)
    fresh, heads = await _snapshot(db_url)
    await downgrade(db_url)  # every branch, in dependency order
    empty, none = await _snapshot(db_url)
    assert set(empty) == {"alembic_version"} and none == set()
    await upgrade(db_url)
    again, heads_again = await _snapshot(db_url)
    assert heads_again == heads and again == fresh
    await downgrade(db_url, "foundation_0002")  # one step of one branch; the others stay
    _, partial = await _snapshot(db_url)
    assert "foundation_0002" in partial and "foundation_0003" not in partial
    await upgrade(db_url)
    assert (await _snapshot(db_url))[0] == fresh


# The foundation tables as foundation_0002 left them (before ``api_keys.creator_user_id``).
_TENANTS = sa.table(
    "tenants",
    sa.column("id", sa.String()),
    sa.column("name", sa.String()),
    sa.column("display_name", sa.String()),
    sa.column("disabled", sa.Boolean()),
    sa.column("created_at", UTCDateTime()),
)
_USERS = sa.table(
    "users",
    *(
        sa.column(n, sa.String())
        for n in ("id", "tenant_id", "username", "display_name", "password_hash", "role")
    ),
    sa.column("disabled", sa.Boolean()),
    sa.column("failed_logins", sa.Integer()),
    sa.column("created_at", UTCDateTime()),
    sa.column("password_changed_at", UTCDateTime()),
)
_KEYS = sa.table(
    "api_keys",
    *(
        sa.column(n, sa.String())
        for n in ("id", "tenant_id", "name", "role", "prefix", "secret_hash", "created_by")
    ),
    sa.column("created_at", UTCDateTime()),
)


async def _create_tenant_0003(s: AsyncSession) -> str:
    await s.execute(
        sa.insert(_TENANTS).values(
            id="t" * 32, name="acme", display_name="ACME", disabled=False, created_at=utcnow()
        )
    )
    return "t" * 32


async def _seed_at_foundation_0002(url: str) -> dict[str, str]:
    """Users, keys and audit events written by the previous schema; returns keys by name."""
    now = utcnow()
    keys: dict[str, str] = {}
    db = Database(url)
    try:
        async with db.session() as s:
            await s.execute(
                sa.insert(_TENANTS).values(
                    id="t" * 32, name="acme", display_name="ACME", disabled=False, created_at=now
                )
            )
            await s.execute(
                sa.insert(_TENANTS).values(
                    id="o" * 32, name="other", display_name="Other", disabled=False, created_at=now
                )
            )
            for uid, name, role, tenant in (
                ("a" * 32, "alice", "tenant-admin", "t" * 32),
                ("b" * 32, "bob", "viewer", "t" * 32),
                ("c" * 32, "ops", "tenant-admin", "o" * 32),  # a user of another tenant
            ):
                await s.execute(
                    sa.insert(_USERS).values(
                        id=uid,
                        tenant_id=tenant,
                        username=name,
                        display_name=name.title(),
                        password_hash=auth.hash_password(f"{name}-password-1"),
                        role=role,
                        disabled=False,
                        failed_logins=0,
                        created_at=now,
                        password_changed_at=now,
                    )
                )
            for kid, name, role, by in (
                ("1" * 32, "by-alice", "engineer", "alice"),
                ("2" * 32, "by-cli", "operator", "cli"),
                ("3" * 32, "by-key", "viewer", "apikey:by-alice"),
                ("4" * 32, "bob", "viewer", "cli"),  # a key named like a user of this tenant...
                ("5" * 32, "by-bob", "viewer", "bob"),  # ...may have made this one: left unbound
                ("6" * 32, "by-ops", "viewer", "ops"),  # ops is another tenant's user: never bound
            ):
                key, prefix, secret_hash = auth.new_api_key_secret()
                keys[name] = key
                await s.execute(
                    sa.insert(_KEYS).values(
                        id=kid,
                        tenant_id="t" * 32,
                        name=name,
                        role=role,
                        prefix=prefix,
                        secret_hash=secret_hash,
                        created_by=by,
                        created_at=now,
                    )
                )
            prev = audit.chain.GENESIS  # events as foundation_0002 wrote them (no tree yet)
            for n in range(3):
                fields = {
                    "actor": "alice",
                    "action": "user.update",
                    "target": f"target-{n}",
                    "outcome": "success",
                }
                digest = audit.chain._digest(prev, "t" * 32, n + 1, now, {**fields, "detail": {"n": n}})
                await s.execute(
                    sa.text(
                        "INSERT INTO audit_events (tenant_id, seq, ts, actor, action, target, outcome,"
                        " detail, prev_hash, hash)"
                        " VALUES (:t, :seq, :ts, :actor, :action, :target, :outcome, :d, :p, :h)"
                    ),
                    {
                        "t": "t" * 32,
                        "seq": n + 1,
                        "ts": now,
                        **fields,
                        "d": json.dumps({"n": n}),
                        "p": prev,
                        "h": digest,
                    },
                )
                prev = digest
            await s.execute(
                sa.text("INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (:t, 3, :h)"),
                {"t": "t" * 32, "h": prev},
            )
    finally:
        await db.dispose()
    return keys


async def test_foundation_data_survives_the_upgrade_from_the_previous_head(
    db_url: str, tmp_path: Path
) -> None:
    await upgrade(db_url, "foundation_0002")
    keys = await _seed_at_foundation_0002(db_url)
    await upgrade(db_url)
    settings = make_settings(tmp_path, db_url)
    db = Database(db_url)
    try:
        async with db.session() as s:
            rows = {k.name: k for k in (await s.execute(sa.select(ApiKey))).scalars()}
            assert {n: r.creator_user_id for n, r in rows.items()} == {
                "by-alice": "a" * 32,  # created_by names a user: bound to her
                "by-cli": None,  # the CLI and other keys are no person
                "by-key": None,
                "bob": None,
                "by-bob": None,
                "by-ops": None,
            }
            users = {u.username: u.display_name for u in (await s.execute(sa.select(User))).scalars()}
            assert users == {"alice": "Alice", "bob": "Bob", "ops": "Ops"}
            chain = await audit.verify(s, "t" * 32)
            assert chain.ok and chain.count == 3
        async with db.session() as s:  # the migrated rows work with today's code
            assert (await auth.authenticate_api_key(s, keys["by-alice"])).role is Role.engineer
            assert (await auth.authenticate_api_key(s, keys["by-cli"])).role is Role.operator
            pair = await auth.login(s, settings, "bob", "bob-password-1", "10.0.0.1")
            assert (await auth.authenticate_access_token(s, settings, pair.access_token)).name == "bob"
    finally:
        await db.dispose()
    await downgrade(db_url, "foundation_0002")  # and back: the rows stay, only the column goes
    schema, _ = await _snapshot(db_url)
    assert "creator_user_id" not in {c[0] for c in schema["api_keys"]["columns"]}
    assert "login_throttle" not in schema
    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.session() as s:
            bound = {n: c for n, c in (await s.execute(sa.select(ApiKey.name, ApiKey.creator_user_id))).all()}
            assert bound == {
                "by-alice": "a" * 32,
                **{n: None for n in ("by-cli", "by-key", "bob", "by-bob", "by-ops")},
            }
            assert (await auth.authenticate_api_key(s, keys["by-alice"])).name == "by-alice"
    finally:
        await db.dispose()


def _index_predicates(conn: Connection) -> dict[str, str]:
    """Partial-index predicates of ``refresh_tokens`` as the database reports them, normalised."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'refresh_tokens'")
        )
    else:
        rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'refresh_tokens'"))
    out = {}
    for name, sql in rows:
        _, sep, where = (sql or "").upper().partition(" WHERE ")
        if sep:
            out[name] = "".join(c for c in where if c.isalpha() or c == "_")
    return out


async def test_session_indexes_and_known_addresses_match_the_models(db_url: str) -> None:
    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
            predicates = await conn.run_sync(_index_predicates)
    finally:
        await db.dispose()
    ours = [d for d in diffs if "refresh_tokens" in repr(d) or "login_known_addresses" in repr(d)]
    assert ours == []
    assert predicates == {
        "ix_refresh_tokens_live_family": "USED_ATISNULLANDREVOKED_ATISNULL",
        "ix_refresh_tokens_unused_expires_at": "USED_ATISNULL",
    }


async def test_sessions_survive_the_upgrade_from_foundation_0003(db_url: str, tmp_path: Path) -> None:
    await upgrade(db_url, "foundation_0003")
    db = Database(db_url)
    settings = make_settings(tmp_path, db_url, session_prune_every=1_000_000)
    now = utcnow()

    def token(family: str, n: int, used: bool, revoked: bool) -> dict[str, Any]:
        return {
            "id": f"{family[0]}{n}".ljust(32, "0"),
            "user_id": "a" * 32,
            "family_id": family,
            "token_hash": hashlib.sha256(f"secret-{family}-{n}".encode()).hexdigest(),
            "created_at": now,
            "expires_at": now + timedelta(days=1),
            "used_at": now if used else None,
            "revoked_at": now if revoked else None,
        }

    try:
        async with db.session() as s:
            tenant = await _create_tenant_0003(s)
            await s.execute(
                sa.insert(_USERS).values(
                    id="a" * 32,
                    tenant_id=tenant,
                    username="alice",
                    display_name="Alice",
                    password_hash=auth.hash_password("alice-password-1"),
                    role="tenant-admin",
                    disabled=False,
                    failed_logins=0,
                    created_at=now,
                    password_changed_at=now,
                )
            )
            live, ended = "l" * 32, "e" * 32
            # A live session that was refreshed once; one logged out under the old revocation,
            # which marked its spent token too.
            rows = [token(live, 1, True, False), token(live, 2, False, False)]
            rows += [token(ended, 1, True, True), token(ended, 2, False, True)]
            await s.execute(sa.insert(RefreshToken), rows)
            user = (await s.execute(sa.select(User))).scalar_one()
            access = auth.issue_access_token(settings, user, live)
    finally:
        await db.dispose()
    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.session() as s:
            assert (await auth.authenticate_access_token(s, settings, access)).name == "alice"
            assert await auth.prune(s, settings, batch=100) == 2  # the ended session's two tokens
        async with db.session() as s:
            assert (await auth.refresh(s, settings, f"{'l2'.ljust(32, '0')}.secret-{live}-2")).access_token
            left = (await s.execute(sa.select(RefreshToken.family_id))).scalars().all()
            assert left == [live] * 3
        async with db.session() as s:
            assert (await auth.authenticate_access_token(s, settings, access)).name == "alice"
    finally:
        await db.dispose()
