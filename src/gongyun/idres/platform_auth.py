"""Gongyun users and API keys as a node authenticator (Bearer token or ``X-API-Key``).

A node that shares the platform's metadata database adds
``platform_authenticator(db, settings, tenant_id)`` to its authenticators: a caller of the
node's tenant whose role grants ``identifiers:write`` administers every prefix of the
tenant; ``identifiers:read`` may read non-public values but not write. Callers of other
tenants are refused. With ``tenant_id`` None (a node serving every tenant) callers of any
tenant are accepted; the principal carries their tenant, and the node shows them private
values of their own tenant's records only.
"""

from __future__ import annotations

from collections.abc import Mapping

from gongyun.config import Settings
from gongyun.db import Database
from gongyun.errors import AuthError, PermissionDenied
from gongyun.idres.auth import Authenticator, Principal
from gongyun.security.auth import API_KEY_PREFIX, authenticate_access_token, authenticate_api_key
from gongyun.security.classify.levels import CLEARANCE, Level
from gongyun.security.rbac import Perm, has_permission


def platform_authenticator(db: Database, settings: Settings, tenant_id: str | None) -> Authenticator:
    """An authenticator checking Gongyun access tokens and API keys."""

    async def check(headers: Mapping[str, str]) -> Principal | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        credential = token.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "").strip()
        if not credential:
            return None
        async with db.session() as s:
            if credential.startswith(API_KEY_PREFIX):
                who = await authenticate_api_key(s, credential)
            else:
                try:
                    who = await authenticate_access_token(s, settings, credential)
                except AuthError:
                    return None  # not a platform token: let the next authenticator try
        if tenant_id is not None and who.tenant_id != tenant_id:
            raise PermissionDenied("this identifier node belongs to another tenant")
        if not has_permission(who.role, Perm.identifiers_read):
            raise PermissionDenied(f"role {who.role.value} may not use identifiers")
        return Principal(
            name=f"{who.kind}:{who.name}",
            prefixes=None,
            can_write=has_permission(who.role, Perm.identifiers_write),
            operator=has_permission(who.role, Perm.identifiers_admin) and tenant_id is not None,
            tenant_id=who.tenant_id,
            clearance=int(CLEARANCE.get(who.role, Level.general)),
        )

    return check
