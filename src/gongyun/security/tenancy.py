"""Tenant isolation, enforced in one place: the tenant-scoped ORM session.

A session whose ``info["tenant_id"]`` is set (``api.deps`` does it for every request)
adds ``tenant_id = :tenant`` to every ORM SELECT, UPDATE and DELETE touching a
``TenantScoped`` table, stamps new rows with the tenant, and refuses to flush a row that
belongs to another tenant. Data-access code therefore cannot see another tenant's rows
even if it forgets a filter; objects of other tenants simply do not exist for it (404).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, event
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    UOWTransaction,
    mapped_column,
    with_loader_criteria,
)

from gongyun.errors import PermissionDenied

TENANT_KEY = "tenant_id"


class TenantScoped:
    """Mixin for tables whose rows belong to one tenant: gives them an indexed ``tenant_id``.

    A table may redeclare ``tenant_id`` (for example with a foreign key to ``tenants``).
    """

    tenant_id: Mapped[str] = mapped_column(String(32), index=True)


def scope_session(session: Session, tenant_id: str) -> None:
    """Bind a (sync or the sync part of an async) session to one tenant."""
    session.info[TENANT_KEY] = tenant_id


def session_tenant(session: Session) -> str | None:
    """The tenant a session is bound to, if any."""
    value = session.info.get(TENANT_KEY)
    return str(value) if value is not None else None


def _tenant_values(state: ORMExecuteState) -> list[Any]:
    """Every ``tenant_id`` value an INSERT or UPDATE statement would write."""
    found: list[Any] = []
    values = getattr(state.statement, "_values", None) or {}
    for key, bind in values.items():
        if getattr(key, "key", key) == "tenant_id":
            found.append(getattr(bind, "value", bind))
    for multi in getattr(state.statement, "_multi_values", ()) or ():
        for row in multi:
            if isinstance(row, dict):
                found.extend(v for k, v in row.items() if getattr(k, "key", k) == "tenant_id")
    params = state.parameters
    for row in params if isinstance(params, list) else [params] if params else []:
        if isinstance(row, dict) and "tenant_id" in row:
            found.append(row["tenant_id"])
    return found


def _targets_tenant_table(state: ORMExecuteState) -> bool:
    mapper = state.bind_mapper
    return mapper is not None and issubclass(mapper.class_, TenantScoped)


@event.listens_for(Session, "do_orm_execute")
def _add_tenant_criteria(state: ORMExecuteState) -> None:
    tenant = session_tenant(state.session)
    if tenant is None or state.execution_options.get("all_tenants", False):
        return
    writes = (state.is_insert or state.is_update) and _targets_tenant_table(state)
    if writes and any(value != tenant for value in _tenant_values(state)):
        raise PermissionDenied("a statement would write another tenant's rows")
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == tenant, include_aliases=True)
        )


@event.listens_for(Session, "before_flush")
def _stamp_and_check(session: Session, _ctx: UOWTransaction, _instances: object) -> None:
    tenant = session_tenant(session)
    if tenant is None:
        return
    for obj in [*session.new, *session.dirty, *session.deleted]:
        if not isinstance(obj, TenantScoped):
            continue
        if obj.tenant_id is None and obj in session.new:
            obj.tenant_id = tenant
        elif obj.tenant_id != tenant:
            raise PermissionDenied("object belongs to another tenant")
