"""The credentials partners gave us (grant ``token``, ``notify_key``), sealed at rest.

Each is sealed with the platform's keyring (AES-256-GCM under the tenant's core-level data key,
bound to the tenant, the partner and the field) and stored as ``sealed:<version>:<base64>``;
the API never answers them and they are never logged. A value stored in clear before sealing
came in still opens, and :func:`seal_legacy` seals it where it lies.
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.trace.tables import partners
from gongyun.security.classify.keyring import Keyring
from gongyun.security.classify.levels import Level

SECRETS = ("token", "notify_key")
PREFIX = "sealed:"
LEVEL = int(Level.core)


def _ref(name: str, field: str) -> str:
    return f"trace_partners|{name}|{field}"


async def seal(s: AsyncSession, ring: Keyring, tenant_id: str, name: str, field: str, value: str) -> str:
    """A partner's secret as stored: ``sealed:<version>:<base64 of nonce || ciphertext>``."""
    version, blob = await ring.seal(s, tenant_id, LEVEL, _ref(name, field), value.encode())
    return f"{PREFIX}{version}:{base64.b64encode(blob).decode()}"


async def unseal(
    s: AsyncSession, ring: Keyring, tenant_id: str, name: str, field: str, stored: str | None
) -> str | None:
    """A stored secret in clear (one stored before sealing came in is returned as it is)."""
    if not stored or not stored.startswith(PREFIX):
        return stored
    version, _, b64 = stored[len(PREFIX) :].partition(":")
    raw = await ring.open(s, tenant_id, LEVEL, _ref(name, field), int(version), base64.b64decode(b64))
    return raw.decode()


async def secrets_of(s: AsyncSession, ring: Keyring, tenant_id: str, row: Any) -> dict[str, str | None]:
    """The partner row's secrets in clear (``token``, ``notify_key``)."""
    return {f: await unseal(s, ring, tenant_id, row.name, f, getattr(row, f)) for f in SECRETS}


async def seal_legacy(s: AsyncSession, ring: Keyring, tenant_id: str) -> int:
    """Seal the tenant's partner secrets still stored in clear; how many were."""
    clear = [
        (c.is_not(None)) & (c != "") & (c.not_like(f"{PREFIX}%"))
        for c in (partners.c.token, partners.c.notify_key)
    ]
    rows = await s.execute(select(partners).where(partners.c.tenant_id == tenant_id, or_(*clear)))
    n = 0
    for row in rows.all():
        values = {}
        for f in SECRETS:
            v = getattr(row, f)
            if v and not v.startswith(PREFIX):
                values[f] = await seal(s, ring, tenant_id, row.name, f, v)
                n += 1
        await s.execute(
            update(partners)
            .where(partners.c.tenant_id == tenant_id, partners.c.name == row.name)
            .values(**values)
        )
    return n
