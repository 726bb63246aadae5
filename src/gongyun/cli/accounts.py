"""``gongyun user|tenant|apikey ...``: manage accounts without the API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from gongyun.cli.common import console, db_session, run, settings
from gongyun.db.base import utcnow
from gongyun.errors import NotFound, ValidationFailed
from gongyun.security import accounts
from gongyun.security.audit import record as audit
from gongyun.security.models import ApiKey, Tenant, User
from gongyun.security.rbac import Role

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
    """Set a user's password (also unlocks the account)."""
    secret = _password(password)

    async def go() -> None:
        async with db_session(settings()) as session:
            user = await accounts.get_user_by_name(session, username)
            await accounts.set_password(session, user, secret)
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
    """Disable (or re-enable) a tenant: its users and keys stop working."""

    async def go() -> None:
        async with db_session(settings()) as session:
            (await accounts.get_tenant_by_name(session, name)).disabled = not enable

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
