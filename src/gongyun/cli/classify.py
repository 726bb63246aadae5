"""``gongyun classify ...``: data keys of the envelope encryption (rotation, shredding), the report."""

from __future__ import annotations

from typing import Annotated

import typer

from gongyun.cli.common import console, db_session, run, settings
from gongyun.security import accounts
from gongyun.security.audit import record
from gongyun.security.classify.keyring import Keyring
from gongyun.security.classify.levels import Level

classify_app = typer.Typer(help="Data classification: keys of core data.", no_args_is_help=True)
CLI_ACTOR = "cli"


@classify_app.command("rotate-master")
def rotate_master() -> None:
    """Rewrap every data key under the first configured master key (put the new key first, the old after).

    Nothing is re-encrypted and nothing stops; afterwards the old master key can be removed.
    """

    async def go() -> int:
        cfg = settings()
        async with db_session(cfg) as session:
            return await Keyring.from_settings(cfg).rewrap_all(session)

    console.print(f"rewrapped {run(go())} data keys under the current master key")


@classify_app.command("rotate-key")
def rotate_key(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")],
    level: Annotated[str, typer.Option(help="Level: core (3) or important (2).")] = "core",
) -> None:
    """Start a new data key version for a tenant and level (old values stay readable)."""

    async def go() -> int:
        cfg = settings()
        async with db_session(cfg) as session:
            t = await accounts.get_tenant_by_name(session, tenant)
            lv = Level.parse(level)
            version = await Keyring.from_settings(cfg).rotate_data_key(session, t.id, int(lv))
            await record(session, t.id, CLI_ACTOR, "classification.rotate_key", lv.name, version=version)
            return version

    console.print(f"new data key version {run(go())}")


@classify_app.command("shred")
def shred(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the sealed data becomes unreadable for good.")
    ] = False,
    level: Annotated[str | None, typer.Option(help="Only this level (default: all).")] = None,
) -> None:
    """Crypto-shred a tenant's data keys (audited)."""
    if not yes:
        raise typer.BadParameter("add --yes: shredding cannot be undone")

    async def go() -> int:
        cfg = settings()
        async with db_session(cfg) as session:
            t = await accounts.get_tenant_by_name(session, tenant)
            lv = int(Level.parse(level)) if level else None
            n = await Keyring.from_settings(cfg).shred(session, t.id, lv)
            await record(session, t.id, CLI_ACTOR, "classification.shred", t.id, keys=n, level=level or "all")
            return n

    console.print(f"destroyed {run(go())} data keys")
