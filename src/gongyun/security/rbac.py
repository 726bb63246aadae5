"""Roles and the permission matrix — defined here and nowhere else."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """The built-in roles."""

    platform_admin = "platform-admin"
    tenant_admin = "tenant-admin"
    engineer = "engineer"
    operator = "operator"
    viewer = "viewer"
    auditor = "auditor"


class Perm(StrEnum):
    """Every permission a route or app may require."""

    tenants_read = "tenants:read"
    tenants_write = "tenants:write"
    users_read = "users:read"
    users_write = "users:write"
    apikeys_read = "apikeys:read"
    apikeys_write = "apikeys:write"
    assets_read = "assets:read"
    assets_write = "assets:write"
    devices_read = "devices:read"
    devices_write = "devices:write"
    devices_command = "devices:command"
    telemetry_read = "telemetry:read"
    telemetry_write = "telemetry:write"
    alarms_read = "alarms:read"
    alarms_ack = "alarms:ack"
    alarms_write = "alarms:write"
    identifiers_read = "identifiers:read"
    identifiers_write = "identifiers:write"
    identifiers_admin = "identifiers:admin"
    apps_read = "apps:read"
    apps_write = "apps:write"
    apps_admin = "apps:admin"  # install, enable, configure and disable apps in a tenant
    audit_read = "audit:read"
    security_read = "security:read"
    security_write = "security:write"


_READ_DATA = {
    Perm.assets_read,
    Perm.devices_read,
    Perm.telemetry_read,
    Perm.alarms_read,
    Perm.identifiers_read,
    Perm.apps_read,
}
_ALL = set(Perm)

MATRIX: dict[Role, frozenset[Perm]] = {
    Role.platform_admin: frozenset(_ALL),
    Role.tenant_admin: frozenset(_ALL - {Perm.tenants_write}),
    Role.engineer: frozenset(
        _READ_DATA
        | {
            Perm.assets_write,
            Perm.devices_write,
            Perm.devices_command,
            Perm.telemetry_write,
            Perm.alarms_ack,
            Perm.alarms_write,
            Perm.identifiers_write,
            Perm.apps_write,
        }
    ),
    Role.operator: frozenset(_READ_DATA | {Perm.alarms_ack, Perm.devices_command}),
    Role.viewer: frozenset(_READ_DATA),
    Role.auditor: frozenset(
        _READ_DATA
        | {Perm.audit_read, Perm.security_read, Perm.users_read, Perm.apikeys_read, Perm.tenants_read}
    ),
}

# Seniority, used to pick the strongest role that fits under a cap.
RANK: dict[Role, int] = {
    Role.platform_admin: 100,
    Role.tenant_admin: 80,
    Role.engineer: 60,
    Role.auditor: 50,
    Role.operator: 40,
    Role.viewer: 20,
}


def permissions(role: Role) -> frozenset[Perm]:
    """The permissions a role grants."""
    return MATRIX[role]


def has_permission(role: Role, perm: Perm) -> bool:
    """True when ``role`` grants ``perm``."""
    return perm in MATRIX[role]


def can_grant(granter: Role, role: Role) -> bool:
    """True when a caller with ``granter`` may create a user or key with ``role``.

    Decided on permissions, not on rank: a role may only hand out a role whose every
    permission it holds itself (an engineer cannot mint an auditor, who reads the audit trail).
    """
    return MATRIX[role] <= MATRIX[granter]


def cap_role(role: Role, ceiling: Role) -> Role | None:
    """The role that acts for ``role`` held under ``ceiling``: the highest-ranked role whose
    permissions both grant; None when no role fits.

    An API key acts with ``cap_role(key role, its creator's current role)``, so a key never
    does more than the person behind it can do now.
    """
    allowed = MATRIX[role] & MATRIX[ceiling]
    fitting = [r for r in Role if MATRIX[r] <= allowed]
    return max(fitting, key=RANK.__getitem__, default=None)
