"""Core (level-3) identifier values at rest: sealed with the tenant's level-3 data key.

The registry stores a core value as ``{"format": "sealed", "value": {"key": <data key
version>, "box": <base64 nonce || AES-256-GCM ciphertext>}}`` in place of its data; the
ciphertext covers the value's format and data, and its associated data binds it to the tenant,
the level, the identifier and the value's index and type, so a box copied to another record does
not open. Type, index, TTL and permissions stay in clear (the node needs them to answer); a core
value is never public, so public resolution never reads a sealed value and never pays for it.
Opening needs the tenant's data key (``gongyun.security.classify.keyring``): once it is
crypto-shredded, ``open_values`` raises ``DataKeyGone`` (404 ``data_key_shredded``).
"""

from __future__ import annotations

import base64
import dataclasses

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.errors import ConfigError
from gongyun.idres.values import CORE, MASKED, SEALED, HandleValue, Permissions
from gongyun.security.classify.keyring import DataKeyGone, Keyring, open_with, seal_with
from gongyun.security.classify.levels import Level, cleared
from gongyun.security.rbac import Role


def _ref(norm: str, value: HandleValue) -> str:
    return f"idres:{norm}#{value.index}:{value.type}"


def needs_sealing(values: list[HandleValue]) -> bool:
    """True when some value is core and still in clear."""
    return any(v.level >= CORE and not v.sealed for v in values)


async def seal_values(
    keyring: Keyring | None, session: AsyncSession, tenant_id: str, norm: str, values: list[HandleValue]
) -> list[HandleValue]:
    """The values with every clear core value sealed (others, and sealed ones, unchanged)."""
    if not needs_sealing(values):
        return values
    if keyring is None:
        raise ConfigError("this registry has no keyring: it cannot store core (level-3) values")
    version, key = await keyring.newest(session, tenant_id, Level.core)
    out = []
    for v in values:
        if v.level < CORE or v.sealed:
            out.append(v)
            continue
        data = orjson.dumps({"format": v.format, "value": v.value})
        box = seal_with(key, tenant_id, Level.core, _ref(norm, v), data)
        private = Permissions(v.permissions.admin_read, v.permissions.admin_write, False, False)
        out.append(
            dataclasses.replace(
                v,
                format=SEALED,
                value={"key": version, "box": base64.b64encode(box).decode()},
                permissions=private,
            )
        )
    return out


async def open_values(
    keyring: Keyring | None, session: AsyncSession, tenant_id: str, norm: str, values: list[HandleValue]
) -> list[HandleValue]:
    """The values with every sealed one opened (``DataKeyGone`` once the tenant's key is shredded)."""
    if not any(v.sealed for v in values):
        return values
    if keyring is None:
        raise ConfigError("this registry has no keyring: it cannot open core (level-3) values")
    out = []
    for v in values:
        if not v.sealed:
            out.append(v)
            continue
        try:
            raw = await keyring.open(
                session,
                tenant_id,
                Level.core,
                _ref(norm, v),
                int(v.value["key"]),
                base64.b64decode(v.value["box"]),
            )
        except DataKeyGone as exc:
            raise DataKeyGone(
                f"value {v.index} ({v.type}) of this identifier is core data that cannot be read: "
                + exc.message,
                index=v.index,
            ) from None
        data = orjson.loads(raw)
        out.append(dataclasses.replace(v, format=data["format"], value=data["value"]))
    return out


def open_cached(
    keyring: Keyring | None, tenant_id: str, norm: str, values: list[HandleValue]
) -> list[HandleValue] | None:
    """The values opened with data keys already in memory, or None when one must be read first."""
    if keyring is None:
        return None
    out = []
    for v in values:
        if not v.sealed:
            out.append(v)
            continue
        key = keyring.cached(tenant_id, Level.core, int(v.value["key"]))
        if key is None:
            return None
        try:
            raw = open_with(key, tenant_id, Level.core, _ref(norm, v), base64.b64decode(v.value["box"]))
        except DataKeyGone:
            return None  # let the full path say why
        data = orjson.loads(raw)
        out.append(dataclasses.replace(v, format=data["format"], value=data["value"]))
    return out


def mask_values(values: list[HandleValue]) -> list[HandleValue]:
    """Core values replaced by ``{"format": "masked", "value": null}`` (for callers without clearance)."""
    return [dataclasses.replace(v, format=MASKED, value=None) if v.level >= CORE else v for v in values]


async def reveal(
    keyring: Keyring | None,
    session: AsyncSession,
    tenant_id: str,
    norm: str,
    values: list[HandleValue],
    role: Role | None,
) -> list[HandleValue]:
    """Core values opened for a role cleared for core data (``None``: a node administrator), else masked."""
    if role is not None and not cleared(role, Level.core):
        return mask_values(values)
    return await open_values(keyring, session, tenant_id, norm, values)
