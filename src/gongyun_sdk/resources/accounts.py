"""Who and where: the caller, tenants, users, API keys and the audit trail."""

from __future__ import annotations

from typing import Any

from gongyun_sdk._ops import M, Op, Pages, Resource, body, call, call_no_content, operation, paginated, query
from gongyun_sdk.types import (
    ApiKey,
    ApiKeyCreated,
    AuditEvent,
    AuditVerification,
    Me,
    Tenant,
    User,
)


class Session(Resource[M]):
    """The caller and its session."""

    @operation
    def me(self) -> Op[Me]:
        """The authenticated caller, its tenant, role and permissions."""
        return call("GET", "me")

    @operation
    def change_password(self, current_password: str, new_password: str) -> Op[None]:
        """Change the signed-in user's own password; every session of the user ends (sign in again)."""
        doc = {"current_password": current_password, "new_password": new_password}
        return call_no_content("POST", "me/password", json=doc)

    @operation
    def logout(self, refresh_token: str) -> Op[None]:
        """End the session of ``refresh_token`` (its access tokens stop working too)."""
        return call_no_content("POST", "auth/logout", json={"refresh_token": refresh_token})


class Tenants(Resource[M]):
    """Tenants: a platform admin sees all, anyone else only their own."""

    @operation
    def list(self) -> Op[list[Tenant]]:
        """The tenants visible to the caller."""
        return call("GET", "tenants")

    @operation
    def create(self, name: str, display_name: str | None = None) -> Op[Tenant]:
        """Create a tenant (platform admins)."""
        return call("POST", "tenants", json=body(name=name, display_name=display_name))

    @operation
    def get(self, tenant_id: str) -> Op[Tenant]:
        """One tenant."""
        return call("GET", f"tenants/{tenant_id}")

    @operation
    def update(
        self, tenant_id: str, *, display_name: str | None = None, disabled: bool | None = None
    ) -> Op[Tenant]:
        """Rename or disable a tenant (platform admins)."""
        return call("PATCH", f"tenants/{tenant_id}", json=body(display_name=display_name, disabled=disabled))


class Users(Resource[M]):
    """Users of the tenant the client acts in."""

    @operation
    def list(self) -> Op[list[User]]:
        """Every user of the tenant."""
        return call("GET", "users")

    @operation
    def create(self, username: str, password: str, role: str, display_name: str | None = None) -> Op[User]:
        """Create a user with a role no higher than the caller's."""
        return call(
            "POST",
            "users",
            json=body(username=username, password=password, role=role, display_name=display_name),
        )

    @operation
    def get(self, user_id: str) -> Op[User]:
        """One user."""
        return call("GET", f"users/{user_id}")

    @operation
    def update(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
    ) -> Op[User]:
        """Change a user's display name, role or disabled flag."""
        doc = body(display_name=display_name, role=role, disabled=disabled)
        return call("PATCH", f"users/{user_id}", json=doc)

    @operation
    def set_password(self, user_id: str, password: str, current_password: str | None = None) -> Op[User]:
        """Change a password: one's own needs ``current_password``; an admin resetting another's does not."""
        doc = body(password=password, current_password=current_password)
        return call("PATCH", f"users/{user_id}", json=doc)


class ApiKeys(Resource[M]):
    """API keys of the tenant: the secret is returned once, at creation."""

    @operation
    def list(self) -> Op[list[ApiKey]]:
        """Every key of the tenant (prefixes, never secrets)."""
        return call("GET", "apikeys")

    @operation
    def create(self, name: str, role: str, expires_in_days: int | None = None) -> Op[ApiKeyCreated]:
        """Create a key acting for the caller with ``role`` (no higher than the caller's)."""
        return call("POST", "apikeys", json=body(name=name, role=role, expires_in_days=expires_in_days))

    @operation
    def get(self, key_id: str) -> Op[ApiKey]:
        """One key."""
        return call("GET", f"apikeys/{key_id}")

    @operation
    def revoke(self, key_id: str) -> Op[None]:
        """Revoke a key: it stops working at once."""
        return call_no_content("DELETE", f"apikeys/{key_id}")


def _older(op: Op[Any], page: list[AuditEvent]) -> Op[Any] | None:
    """The next (older) page: events before the oldest of this one."""
    if not page:
        return None
    rest = [(k, v) for k, v in op.params or [] if k != "before_seq"]
    return call("GET", op.path, params=[*rest, ("before_seq", str(page[-1]["seq"]))])


class Audit(Resource[M]):
    """The tenant's tamper-evident audit trail."""

    @paginated
    def events(self, *, action: str | None = None, page_size: int = 500) -> Pages[AuditEvent]:
        """Every audit event, newest first (pages of ``page_size`` fetched as you iterate)."""
        first = call("GET", "audit", params=query(limit=page_size, action=action))
        return Pages(first, list, _older)

    @operation
    def page(
        self, *, limit: int = 100, before_seq: int | None = None, action: str | None = None
    ) -> Op[list[AuditEvent]]:
        """One page of events, newest first, older than ``before_seq``."""
        return call("GET", "audit", params=query(limit=limit, before_seq=before_seq, action=action))

    @operation
    def verify(self) -> Op[AuditVerification]:
        """Recompute the hash chain and report the first altered or missing event."""
        return call("GET", "audit/verify")
