"""Cross-enterprise sharing through the identifier system: partners, read grants, remote reads.

A supplier grants a partner read access to chosen value types of chosen identifier records
(the shipped lots), and to their EPCIS events (a private ``GY_EPCIS`` value holding the lot's
history as an EPCIS document). The grant is itself an identifier record in the supplier's
prefix: ``<prefix>/gy.grant.<id>`` with a hashed ``HS_SECKEY`` (the partner's password) and a
``GY_GRANT`` value (grantee, types, handles, expiry, revoked) that the supplier's node reads on
every request (``gongyun.idres.http``): revoking it ends access at once, every read is audited
in the supplier's tenant. The partner resolves the record's public values through its recursive
resolver, finds the supplier's node from the referrals and reads the granted values there with
the grant's credentials; each such read is audited in the partner's tenant too.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.trace import epcis_store, store, traces, vault
from gongyun.apps.trace.domain.epcis import document
from gongyun.apps.trace.errors import TraceItemNotFound, UnknownEnterprise
from gongyun.apps.trace.registration import prefix_of
from gongyun.apps.trace.tables import grants, items, partners
from gongyun.db import Database
from gongyun.errors import InvalidInput
from gongyun.idres.auth import hash_secret
from gongyun.idres.errors import ResolutionFailed
from gongyun.idres.registry import Registry
from gongyun.idres.values import ADMIN_ONLY, PUBLIC, HandleValue, admin_value
from gongyun.security.classify.keyring import Keyring
from gongyun.security.egress import Network, check_target

EPCIS_TYPE = "GY_EPCIS"
STATUS_INDEX = 7


async def partner(s: AsyncSession, tenant_id: str, name: str) -> Any:
    """A registered partner (``UnknownEnterprise`` otherwise)."""
    row = (
        await s.execute(select(partners).where(partners.c.tenant_id == tenant_id, partners.c.name == name))
    ).first()
    if row is None:
        raise UnknownEnterprise(f"no enterprise {name!r} is registered as a partner", partner=name)
    return row


async def save_partner(
    s: AsyncSession, ring: Keyring, tenant_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Create or update a partner (its secrets sealed; the answer never holds them)."""
    name = str(body["name"])
    names = ("prefix", "resolver_url", "grant_handle", "token", "notify_url", "notify_key")
    fields = {k: body.get(k) for k in names}
    shown = {k: v for k, v in fields.items() if k not in vault.SECRETS}
    for k in vault.SECRETS:
        if fields[k]:
            fields[k] = await vault.seal(s, ring, tenant_id, name, k, str(fields[k]))
    found = (
        await s.execute(
            select(partners.c.name).where(partners.c.tenant_id == tenant_id, partners.c.name == name)
        )
    ).first()
    if found is None:
        await s.execute(
            partners.insert().values(tenant_id=tenant_id, name=name, created_at=store.now(), **fields)
        )
    else:
        changed = {k: v for k, v in fields.items() if v is not None}
        if changed:
            await s.execute(
                update(partners)
                .where(partners.c.tenant_id == tenant_id, partners.c.name == name)
                .values(**changed)
            )
    return {"name": name, **shown}


async def create_grant(
    s: AsyncSession,
    db: Database,
    tenant_id: str,
    partner_name: str,
    item_ids: list[int],
    types: list[str],
    events: bool,
    expires_in: float | None,
    id_prefix: str | None,
) -> dict[str, Any]:
    """Grant a partner read access to value types (and events) of items' records."""
    await partner(s, tenant_id, partner_name)
    registry = Registry(db)
    handles: list[str] = []
    for iid in item_ids:
        it = await store.item(s, tenant_id, iid)
        if not it["handle"]:
            raise InvalidInput(f"item {iid} has no identifier record to share", item=iid)
        handles.append(it["handle"])
        if events:
            res = await traces.trace(s, tenant_id, iid, "backward", None, 5_000)
            keys = sorted({n["key"] for n in res.nodes})
            doc = document(await epcis_store.events_of_keys(s, tenant_id, keys, 2_000))
            value = HandleValue(20, EPCIS_TYPE, "string", orjson.dumps(doc).decode(), permissions=ADMIN_ONLY)
            await registry.update_values(tenant_id, it["handle"], [value], session=s)
    granted = sorted(set(types) | ({EPCIS_TYPE} if events else set()))
    prefix = await prefix_of(s, db, tenant_id, id_prefix)
    gid = uuid.uuid4().hex[:16]
    handle = f"{prefix}/gy.grant.{gid}"
    token = secrets.token_urlsafe(24)
    expires = time.time() + expires_in if expires_in else None
    body = {
        "grantee": partner_name,
        "types": granted,
        "handles": handles,
        "expires": expires,
        "revoked": False,
    }
    values = [
        HandleValue(1, "GY_GRANT", "string", orjson.dumps(body).decode(), permissions=ADMIN_ONLY),
        HandleValue(300, "HS_SECKEY", "string", hash_secret(token), permissions=ADMIN_ONLY),
        admin_value(f"0.NA/{prefix}", 200, 100),
    ]
    await registry.put(tenant_id, handle, values, session=s)
    await s.execute(
        grants.insert().values(
            id=gid,
            tenant_id=tenant_id,
            partner=partner_name,
            handle=handle,
            types=granted,
            handles=handles,
            events=1 if events else 0,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None,
            created_at=store.now(),
        )
    )
    return {
        "id": gid,
        "handle": handle,
        "admin": f"300:{handle}",
        "token": token,
        "types": granted,
        "handles": handles,
    }


async def revoke_grant(s: AsyncSession, db: Database, tenant_id: str, gid: str) -> dict[str, Any]:
    """Revoke a grant: its record says so at once, so the supplier's node stops honouring it."""
    row = (await s.execute(select(grants).where(grants.c.tenant_id == tenant_id, grants.c.id == gid))).first()
    if row is None:
        raise TraceItemNotFound(f"no grant {gid}", grant=gid)
    body = {
        "grantee": row.partner,
        "types": row.types,
        "handles": row.handles,
        "expires": row.expires_at.timestamp() if row.expires_at else None,
        "revoked": True,
    }
    value = HandleValue(1, "GY_GRANT", "string", orjson.dumps(body).decode(), permissions=ADMIN_ONLY)
    await Registry(db).update_values(tenant_id, row.handle, [value], session=s)
    await s.execute(update(grants).where(grants.c.id == gid).values(revoked_at=store.now()))
    return {"id": gid, "revoked": True}


async def list_grants(s: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's grants."""
    rows = await s.execute(
        select(grants).where(grants.c.tenant_id == tenant_id).order_by(grants.c.created_at)
    )
    return [
        {
            "id": r.id,
            "partner": r.partner,
            "handle": r.handle,
            "types": r.types,
            "handles": r.handles,
            "events": bool(r.events),
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in rows
    ]


async def mark_recalled(s: AsyncSession, db: Database, tenant_id: str, recall_id: int) -> int:
    """Publish ``GY_TRACE_STATUS = recalled`` on the affected records that were shared with partners."""
    shared: set[str] = set()
    for r in await s.execute(select(grants.c.handles).where(grants.c.tenant_id == tenant_id)):
        shared.update(r.handles)
    if not shared:
        return 0
    q = select(items.c.handle).where(
        items.c.tenant_id == tenant_id,
        items.c.id.in_(store.recalled_ids(recall_id)),
        items.c.handle.is_not(None),
    )
    registry = Registry(db)
    marked = 0
    for handle in (await s.execute(q)).scalars():
        if handle in shared:
            value = HandleValue(
                STATUS_INDEX, "GY_TRACE_STATUS", "string", "recalled", permissions=PUBLIC, ttl=1
            )
            await registry.update_values(tenant_id, handle, [value], session=s)
            marked += 1
    return marked


async def _site_of(c: httpx.AsyncClient, resolver: str, prefix: str) -> str:
    """The node serving ``prefix``, as the recursive resolver's referrals lead to it."""
    r = await c.get(f"{resolver}/api/resolver/sites", params={"prefix": prefix})
    sites = r.json().get("sites", []) if r.status_code == 200 else []
    if not sites:
        raise ResolutionFailed(f"no node serves prefix {prefix}", prefix=prefix)
    return str(sites[0])


async def remote_read(
    row: Any, handle: str, allow: Sequence[Network] = (), token: str | None = None
) -> dict[str, Any]:
    """A partner's record: public values through the resolver, granted ones from its node (each
    URL checked against the outbound policy first)."""
    if not row.resolver_url:
        raise InvalidInput(f"partner {row.name} has no resolver_url", partner=row.name)
    resolver = row.resolver_url.rstrip("/")
    await check_target(resolver, allow, "resolver_url")
    async with httpx.AsyncClient(timeout=10, trust_env=False) as c:
        pub = await c.get(f"{resolver}/api/handles/{quote(handle, safe='/')}")
        if pub.status_code == 404:
            raise TraceItemNotFound(f"{handle} does not resolve", handle=handle)
        if pub.status_code != 200:
            raise ResolutionFailed(f"resolving {handle} answered {pub.status_code}", handle=handle)
        out: dict[str, Any] = {"handle": handle, "public": pub.json().get("values", []), "granted": []}
        if row.grant_handle and token:
            node = await _site_of(c, resolver, handle.split("/", 1)[0])
            await check_target(node, allow, "node")
            got = await c.get(
                f"{node}/api/handles/{quote(handle, safe='/')}", auth=(f"300:{row.grant_handle}", token)
            )
            if got.status_code == 200:
                public = {(v["index"], v["type"]) for v in out["public"]}
                out["granted"] = [
                    v for v in got.json().get("values", []) if (v["index"], v["type"]) not in public
                ]
            out["node"] = node
            out["grantStatus"] = got.status_code
    for v in out["granted"]:
        if v["type"] == EPCIS_TYPE:
            data = v["data"]["value"] if isinstance(v["data"], dict) else v["data"]
            out["events"] = orjson.loads(data)
    status = [v for v in out["public"] + out["granted"] if v["type"] == "GY_TRACE_STATUS"]
    if status:
        data = status[0]["data"]
        out["status"] = data["value"] if isinstance(data, dict) else data
    return out


def remote_handle(row: Any, key: str) -> str:
    """The handle a partner registers an item key under."""
    if not row.prefix:
        raise InvalidInput(f"partner {row.name} has no prefix", partner=row.name)
    return f"{row.prefix}/gy.trace{key if key.startswith('/') else '/' + key.replace(':', '/', 1)}"
