"""Prefixes and their filing (备案) workflow.

A prefix moves through ``submitted -> verified -> active``; it can be ``rejected`` before it
is active and ``suspended`` (and reactivated) after. Only an ``active`` prefix accepts
registrations and is referred to by a root node. Every change is kept in the prefix's
history with its time and note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.db import utcnow
from gongyun.db.base import new_id
from gongyun.errors import InvalidInput
from gongyun.idres.errors import FilingTransition, HandleExists, PrefixNotServed
from gongyun.idres.models import IdPrefix
from gongyun.idres.syntax import check_prefix, fold, parent_prefix, prefix_chain


class FilingStatus(StrEnum):
    """The states of a prefix filing."""

    submitted = "submitted"
    verified = "verified"
    active = "active"
    rejected = "rejected"
    suspended = "suspended"


class PrefixKind(StrEnum):
    """Where a prefix sits in the hierarchy."""

    top = "top"
    secondary = "secondary"
    enterprise = "enterprise"


TRANSITIONS: dict[FilingStatus, frozenset[FilingStatus]] = {
    FilingStatus.submitted: frozenset({FilingStatus.verified, FilingStatus.rejected}),
    FilingStatus.verified: frozenset({FilingStatus.active, FilingStatus.rejected}),
    FilingStatus.active: frozenset({FilingStatus.suspended}),
    FilingStatus.suspended: frozenset({FilingStatus.active}),
    FilingStatus.rejected: frozenset(),
}


@dataclass(slots=True)
class PrefixInfo:
    """A prefix and its filing state."""

    prefix: str
    kind: str
    status: str
    parent: str | None
    org_name: str
    contact: str
    site: dict[str, Any] | None
    history: list[dict[str, Any]]
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "prefix": self.prefix,
            "kind": self.kind,
            "status": self.status,
            "parent": self.parent,
            "orgName": self.org_name,
            "contact": self.contact,
            "site": self.site,
            "history": self.history,
            "updatedAt": self.updated_at.isoformat(),
        }


def _info(row: IdPrefix) -> PrefixInfo:
    return PrefixInfo(
        prefix=row.prefix,
        kind=row.kind,
        status=row.status,
        parent=row.parent,
        org_name=row.org_name,
        contact=row.contact,
        site=orjson.loads(row.site_json) if row.site_json else None,
        history=orjson.loads(row.history_json),
        updated_at=row.updated_at,
    )


async def _row(s: AsyncSession, tenant_id: str, prefix: str) -> IdPrefix:
    row = (await s.execute(select(IdPrefix).where(IdPrefix.prefix_norm == fold(prefix)))).scalar_one_or_none()
    if row is None or row.tenant_id != tenant_id:
        raise PrefixNotServed(f"prefix {prefix} not found", prefix=prefix)
    return row


async def submit(
    s: AsyncSession,
    tenant_id: str,
    prefix: str,
    kind: PrefixKind | str,
    *,
    org_name: str = "",
    contact: str = "",
    site: dict[str, Any] | None = None,
    status: FilingStatus = FilingStatus.submitted,
    note: str = "",
) -> PrefixInfo:
    """File a new prefix (status ``submitted`` unless an operator creates it ``active``)."""
    check_prefix(prefix)
    try:
        kind = PrefixKind(kind)
    except ValueError:
        raise InvalidInput(f"prefix kind must be one of {[k.value for k in PrefixKind]}") from None
    exists = (await s.execute(select(IdPrefix.id).where(IdPrefix.prefix_norm == fold(prefix)))).first()
    if exists is not None:
        raise HandleExists(f"prefix {prefix} is already filed", prefix=prefix)
    row = IdPrefix(**prefix_row(tenant_id, prefix, kind, status, org_name, contact, site, note))
    s.add(row)
    await s.flush()
    return _info(row)


def prefix_row(
    tenant_id: str,
    prefix: str,
    kind: PrefixKind,
    status: FilingStatus,
    org_name: str = "",
    contact: str = "",
    site: dict[str, Any] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """The ``idres_prefixes`` row of a new filing (also written by data migrations)."""
    now = utcnow()
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "prefix": prefix,
        "prefix_norm": fold(prefix),
        "parent": parent_prefix(prefix),
        "kind": kind.value,
        "status": status.value,
        "org_name": org_name[:255],
        "contact": contact[:255],
        "site_json": orjson.dumps(site).decode() if site else None,
        "history_json": orjson.dumps(
            [{"status": status.value, "at": now.isoformat(), "note": note}]
        ).decode(),
        "created_at": now,
        "updated_at": now,
    }


async def transition(
    s: AsyncSession, tenant_id: str, prefix: str, status: FilingStatus | str, note: str = ""
) -> PrefixInfo:
    """Move a filing to a new status if the workflow allows it."""
    row = await _row(s, tenant_id, prefix)
    try:
        target = FilingStatus(status)
    except ValueError:
        raise InvalidInput(f"unknown filing status {status!r}") from None
    current = FilingStatus(row.status)
    if target not in TRANSITIONS[current]:
        raise FilingTransition(
            f"prefix {prefix}: {current.value} -> {target.value} is not allowed",
            allowed=sorted(t.value for t in TRANSITIONS[current]),
        )
    now = utcnow()
    row.status = target.value
    row.updated_at = now
    row.history_json = orjson.dumps(
        [*orjson.loads(row.history_json), {"status": target.value, "at": now.isoformat(), "note": note}]
    ).decode()
    await s.flush()
    return _info(row)


async def get(s: AsyncSession, tenant_id: str, prefix: str) -> PrefixInfo:
    """One prefix of the tenant."""
    return _info(await _row(s, tenant_id, prefix))


async def list_prefixes(s: AsyncSession, tenant_id: str, status: str | None = None) -> list[PrefixInfo]:
    """The tenant's prefixes, optionally with one status."""
    q = select(IdPrefix).where(IdPrefix.tenant_id == tenant_id)
    if status:
        q = q.where(IdPrefix.status == status)
    return [_info(r) for r in (await s.execute(q.order_by(IdPrefix.prefix_norm))).scalars()]


async def require_active(s: AsyncSession, tenant_id: str, prefix: str) -> None:
    """Raise ``PrefixNotServed`` unless the prefix or an ancestor is the tenant's and active."""
    chain = [fold(p) for p in prefix_chain(prefix)]
    rows = (
        await s.execute(
            select(IdPrefix.prefix_norm, IdPrefix.status).where(
                IdPrefix.prefix_norm.in_(chain), IdPrefix.tenant_id == tenant_id
            )
        )
    ).all()
    statuses = dict((r[0], r[1]) for r in rows)
    for p in reversed(chain):
        if p in statuses:
            if statuses[p] == FilingStatus.active.value:
                return
            raise PrefixNotServed(f"prefix {p} is {statuses[p]}, not active", prefix=p, status=statuses[p])
    raise PrefixNotServed(f"no active prefix of this tenant covers {prefix}", prefix=prefix)
