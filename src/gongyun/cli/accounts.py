"""``gongyun user|tenant|apikey ...``: manage accounts without the API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from gongyun.cli.common import console, db_session, err_console, run, settings
from gongyun.db.base import utcnow
from gongyun.errors import NotFound, PermissionDenied, ValidationFailed
from gongyun.security import accounts
from gongyun.security.audit import record as audit
from gongyun.security.models import ApiKey, Tenant, User
from gongyun.security.rbac import Role, cap_role

user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tenant_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]
CLI_ACTOR = "cli"  # how changes made at the console appear in the audit trail


def _password(given: str | None) -> str:
    if given:
        return given
    first: str = typer.prompt("Password", hide_input=True)
    second: str = typer.prompt("Repeat password", hide_input=True)
    if first != second:
        raise ValidationFailed("the passwords do not match")
    return first


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[Role, typer.Option(help="Role of the user.")] = Role.viewer,
    tenant: TenantOpt = accounts.DEFAULT_TENANT,
    password: Annotated[str | None, typer.Option(help="Password (prompted if omitted).")] = None,
    display_name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create a user."""
    secret = _password(password)

    async def go() -> None:
        async with db_session(settings()) as session:
            t = await accounts.get_tenant_by_name(session, tenant)
            await accounts.create_user(session, t.id, username, secret, role, display_name)
            await audit(session, t.id, CLI_ACTOR, "user.create", username, role=role.value)

    run(go())
    console.print(f"[green]created[/] user {username} ({role.value}) in tenant {tenant}")


@user_app.command("list")
def user_list() -> None:
    """List users of every tenant."""

    async def go() -> list[tuple[User, str]]:
        async with db_session(settings()) as session:
            rows = await session.execute(
                select(User, Tenant.name).join(Tenant, Tenant.id == User.tenant_id).order_by(User.username)
            )
            return [(u, n) for u, n in rows.all()]

    table = Table("username", "tenant", "role", "disabled", "locked until", "created")
    for user, tenant_name in run(go()):
        locked = user.locked_until.isoformat(timespec="seconds") if user.locked_until else ""
        table.add_row(
            user.username,
            tenant_name,
            user.role,
            "yes" if user.disabled else "",
            locked,
            user.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@user_app.command("passwd")
def user_passwd(
    username: str,
    password: Annotated[str | None, typer.Option(help="New password (prompted if omitted).")] = None,
) -> None:
    """Set a user's password (also unlocks the account); audited as ``user.password_reset``."""
    secret = _password(password)

    async def go() -> None:
        async with db_session(settings()) as session:
            user = await accounts.get_user_by_name(session, username)
            await accounts.set_password(session, user, secret)
            await audit(session, user.tenant_id, CLI_ACTOR, "user.password_reset", username, user_id=user.id)
            await audit(session, user.tenant_id, CLI_ACTOR, "user.update", username, password="changed")

    run(go())
    console.print(f"[green]password changed[/] for {username}")


@user_app.command("disable")
def user_disable(
    username: str, enable: Annotated[bool, typer.Option("--enable", help="Enable instead.")] = False
) -> None:
    """Disable (or re-enable) a user; disabling ends its sessions and revokes its API keys."""

    async def go() -> None:
        async with db_session(settings()) as session:
            user = await accounts.get_user_by_name(session, username)
            await accounts.set_disabled(session, user, not enable, actor=CLI_ACTOR)
            await audit(session, user.tenant_id, CLI_ACTOR, "user.update", username, disabled=not enable)

    run(go())
    console.print(f"[green]{'enabled' if enable else 'disabled'}[/] {username}")


ROLE_NAMES = ", ".join(r.value for r in Role)


@user_app.command("role")
def user_role(
    username: str,
    role: Annotated[str, typer.Argument(help=f"New role: one of {ROLE_NAMES}.", show_default=False)],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Tenant the user must belong to.")
    ] = None,
) -> None:
    """Change a user's role; a demotion caps the API keys the user made (audited)."""
    if role not in {r.value for r in Role}:
        err_console.print(
            f"[red]error[/] (validation_failed): unknown role {role!r}; choose one of {ROLE_NAMES}",
            highlight=False,
            soft_wrap=True,  # one line however narrow the terminal
        )
        raise typer.Exit(2)
    new = Role(role)

    async def go() -> tuple[Role, str, list[tuple[str, str, Role, Role | None]]]:
        async with db_session(settings()) as session:
            user = await accounts.get_user_by_name(session, username)
            home = await session.get(Tenant, user.tenant_id)
            home_name = home.name if home else user.tenant_id
            if tenant is not None and home_name != tenant:
                raise NotFound(f"user {username!r} not found in tenant {tenant!r}")
            old = Role(user.role)
            await accounts.set_role(session, user, new, actor=CLI_ACTOR)
            await audit(session, user.tenant_id, CLI_ACTOR, "user.update", username, role=new.value)
            keys = await session.execute(
                select(ApiKey.name, Tenant.name, ApiKey.role)
                .join(Tenant, Tenant.id == ApiKey.tenant_id)
                .where(ApiKey.creator_user_id == user.id, ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.name, Tenant.name)
            )
            live = [(k, t, Role(r), cap_role(Role(r), new)) for k, t, r in keys.all()]
            return old, home_name, live

    old, home_name, live = run(go())
    console.print(
        f"[green]role changed[/] for {username} in tenant {home_name}: {old.value} → [bold]{new.value}[/]",
        highlight=False,
    )
    if live:
        table = Table(
            "API key", "tenant", "stored role", "acts as", title=f"live API keys made by {username}"
        )
        for name, key_tenant, stored, acts in live:
            shown = "[red]nothing (rejected)[/]" if acts is None else acts.value
            if acts is not None and acts is not stored:
                shown = f"[yellow]{acts.value}[/] (capped)"
            table.add_row(name, key_tenant, stored.value, shown)
        console.print(table)


@tenant_app.command("add")
def tenant_add(name: str, display_name: Annotated[str, typer.Option(help="Display name.")] = "") -> None:
    """Create a tenant."""

    async def go() -> str:
        async with db_session(settings()) as session:
            return (await accounts.create_tenant(session, name, display_name)).id

    console.print(f"[green]created[/] tenant {name} (id {run(go())})")


@tenant_app.command("disable")
def tenant_disable(
    name: str, enable: Annotated[bool, typer.Option("--enable", help="Enable instead.")] = False
) -> None:
    """Disable (or re-enable) a tenant: its users' sessions end and its keys stop working.

    Like the API: the default tenant (home of the platform admins) cannot be disabled, the
    sessions ended stay ended after re-enabling, and the change is audited in the tenant.
    """

    async def go() -> None:
        async with db_session(settings()) as session:
            tenant = await accounts.get_tenant_by_name(session, name)
            if not enable and tenant.name == accounts.DEFAULT_TENANT:
                raise PermissionDenied("the default tenant holds the platform admins and cannot be disabled")
            await accounts.set_tenant_disabled(session, tenant, not enable)
            await audit(session, tenant.id, CLI_ACTOR, "tenant.update", tenant.name, disabled=not enable)

    run(go())
    console.print(f"[green]{'enabled' if enable else 'disabled'}[/] tenant {name}")


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants."""

    async def go() -> list[Tenant]:
        async with db_session(settings()) as session:
            return list((await session.execute(select(Tenant).order_by(Tenant.name))).scalars())

    table = Table("name", "id", "display name", "disabled", "created")
    for t in run(go()):
        table.add_row(
            t.name,
            t.id,
            t.display_name,
            "yes" if t.disabled else "",
            t.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@apikey_app.command("create")
def apikey_create(
    name: str,
    role: Annotated[Role, typer.Option(help="Role the key acts with.")] = Role.viewer,
    tenant: TenantOpt = accounts.DEFAULT_TENANT,
    expires_in_days: Annotated[int | None, typer.Option(help="Expiry in days.")] = None,
) -> None:
    """Create an API key; it is printed once."""

    async def go() -> str:
        async with db_session(settings()) as session:
            t = await accounts.get_tenant_by_name(session, tenant)
            made = await accounts.create_api_key(session, t.id, name, role, CLI_ACTOR, expires_in_days)
            await audit(
                session, t.id, CLI_ACTOR, "apikey.create", name, role=role.value, prefix=made.row.prefix
            )
            return made.key

    key = run(go())
    console.print(f"[green]created[/] API key {name} ({role.value}); store it now, it is not shown again:")
    print(key)


@apikey_app.command("list")
def apikey_list(tenant: TenantOpt = accounts.DEFAULT_TENANT) -> None:
    """List API keys of a tenant."""

    async def go() -> list[ApiKey]:
        async with db_session(settings()) as session:
            t = await accounts.get_tenant_by_name(session, tenant)
            query = select(ApiKey).where(ApiKey.tenant_id == t.id).order_by(ApiKey.created_at)
            return list((await session.execute(query)).scalars())

    table = Table("name", "prefix", "role", "created", "expires", "revoked")
    for k in run(go()):
        table.add_row(
            k.name,
            f"gy_{k.prefix}_…",
            k.role,
            k.created_at.isoformat(timespec="seconds"),
            k.expires_at.isoformat(timespec="seconds") if k.expires_at else "",
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(name: str, tenant: TenantOpt = accounts.DEFAULT_TENANT) -> None:
    """Revoke an API key by name."""

    async def go() -> None:
        async with db_session(settings()) as session:
            t = await accounts.get_tenant_by_name(session, tenant)
            row = (
                await session.execute(select(ApiKey).where(ApiKey.tenant_id == t.id, ApiKey.name == name))
            ).scalar_one_or_none()
            if row is None:
                raise NotFound(f"API key {name!r} not found in tenant {tenant!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                await audit(session, t.id, CLI_ACTOR, "apikey.revoke", name, prefix=row.prefix)

    run(go())
    console.print(f"[green]revoked[/] API key {name}")
