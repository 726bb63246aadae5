"""``gongyun id`` (register, resolve, import, template, prefix) and ``gongyun idnode --role ...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gongyun.cli.common import console, run, settings
from gongyun.db import Database
from gongyun.errors import InvalidInput
from gongyun.idres import prefixes as pfx
from gongyun.idres.bulk import count_rows, import_records, read_file
from gongyun.idres.nodes import NodeConfig, Role, serve
from gongyun.idres.registry import Registry
from gongyun.idres.rescache import resolution_cache_namespace
from gongyun.idres.values import HandleValue, decode_values, string_value
from gongyun.platform import prepare_database
from gongyun.security.classify.keyring import shared_keyring

id_app = typer.Typer(
    help="Identifiers: register, resolve, bulk import, templates and prefixes.", no_args_is_help=True
)
template_app = typer.Typer(help="Metadata templates per prefix.", no_args_is_help=True)
prefix_app = typer.Typer(help="Prefixes and their filing status.", no_args_is_help=True)
id_app.add_typer(template_app, name="template")
id_app.add_typer(prefix_app, name="prefix")
idnode_app = typer.Typer(help="Run an identifier node: root, secondary, enterprise or recursive.")

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant name (default tenant by default).")]


async def _open(tenant: str) -> tuple[Database, str]:
    cfg = settings()
    await prepare_database(cfg)
    db = Database(cfg.effective_database_url)
    from gongyun.security.accounts import get_tenant_by_name

    async with db.session() as s:
        tenant_id = (await get_tenant_by_name(s, tenant)).id
    return db, tenant_id


def _values(urls: list[str], pairs: list[str], json_file: Path | None) -> list[HandleValue]:
    if json_file is not None:
        raw = orjson.loads(json_file.read_bytes())
        return decode_values(raw.get("values") if isinstance(raw, dict) else raw)
    values = [string_value(i + 1, "URL", u) for i, u in enumerate(urls)]
    for pair in pairs:
        vtype, sep, text = pair.partition("=")
        if not sep or not vtype:
            raise InvalidInput(f"--value must be TYPE=VALUE, got {pair!r}")
        values.append(string_value(len(values) + 1, vtype, text))
    if not values:
        raise InvalidInput("give at least one --url, --value TYPE=VALUE or --json FILE")
    return values


@id_app.command()
def register(
    handle: Annotated[str, typer.Argument(help="Identifier prefix/suffix.")],
    url: Annotated[list[str] | None, typer.Option("--url", help="URL value (repeatable).")] = None,
    value: Annotated[list[str] | None, typer.Option("--value", help="TYPE=VALUE (repeatable).")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="File with Handle JSON values.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing record.")] = False,
    tenant: TenantOpt = "default",
) -> None:
    """Register one identifier in the local registry."""

    async def go() -> None:
        db, tenant_id = await _open(tenant)
        try:
            values = _values(url or [], value or [], json_file)
            registry = Registry(db, keyring=shared_keyring(settings()))
            rec, created = await registry.put(tenant_id, handle, values, overwrite=overwrite)
            console.print(f"{'created' if created else 'updated'} {rec.handle} ({len(rec.values)} values)")
        finally:
            await db.dispose()

    run(go())


@id_app.command()
def resolve(
    handle: Annotated[str, typer.Argument(help="Identifier to resolve.")],
    node: Annotated[str | None, typer.Option("--node", help="Resolve over HTTP at this node URL.")] = None,
    tenant: TenantOpt = "default",
) -> None:
    """Print an identifier's record (from the local registry, or from a node); core values opened."""
    if node:
        r = httpx.get(f"{node.rstrip('/')}/api/handles/{handle}", timeout=10, trust_env=False)
        console.print_json(r.text)
        if r.status_code != 200:
            raise typer.Exit(1)
        return

    async def go() -> None:
        db, tenant_id = await _open(tenant)
        try:
            rec = await Registry(db, keyring=shared_keyring(settings())).get(tenant_id, handle, reveal=True)
            console.print_json(json.dumps({"responseCode": 1, **rec.to_json()}))
        finally:
            await db.dispose()

    run(go())


@id_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV (handle,url or handle,type,value,...) or JSONL.")],
    batch_size: Annotated[int, typer.Option(help="Rows per COPY / executemany batch.")] = 20_000,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad",
            help="Import the good rows and report the bad ones (default: refuse the whole file).",
        ),
    ] = False,
    tenant: TenantOpt = "default",
) -> None:
    """Bulk import identifiers behind a progress bar; every row is validated (syntax, values, prefix,
    template); one bad row refuses the whole file unless --skip-bad; existing ones are skipped."""
    total = count_rows(file)

    async def go() -> int:
        db, tenant_id = await _open(tenant)
        try:
            columns = (TextColumn("import"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("import", total=total)
                stats = await import_records(
                    db,
                    tenant_id,
                    read_file(file),
                    batch_size,
                    lambda n: progress.advance(task, n),
                    skip_bad=skip_bad,
                )
            for err in stats.errors[:20]:
                console.print(
                    f"  {file.name}:{err['line']}: {err['handle']}: {err['message']}", highlight=False
                )
            if stats.failed > 20:
                console.print(f"  ... {stats.failed - 20} more bad rows")
            if stats.rolled_back:
                console.print(
                    f"refused: {stats.failed} bad rows, nothing imported (use --skip-bad to import the rest)"
                )
                return 1
            console.print(f"inserted {stats.inserted}, skipped {stats.skipped}, failed {stats.failed}")
            return 0
        finally:
            await db.dispose()

    if run(go()):
        raise typer.Exit(1)


@template_app.command("add")
def template_add(
    file: Annotated[Path, typer.Argument(help="Template definition (JSON).")], tenant: TenantOpt = "default"
) -> None:
    """Store a template definition as the next version of its name."""

    async def go() -> None:
        db, tenant_id = await _open(tenant)
        try:
            t = await Registry(db).save_template(tenant_id, orjson.loads(file.read_bytes()))
            console.print(f"saved template {t.ref} for prefix {t.prefix}")
        finally:
            await db.dispose()

    run(go())


@template_app.command("list")
def template_list(tenant: TenantOpt = "default") -> None:
    """List every template version."""

    async def go() -> None:
        db, tenant_id = await _open(tenant)
        try:
            table = Table("prefix", "template", "items")
            for t in await Registry(db).list_templates(tenant_id):
                table.add_row(t.prefix, t.ref, ", ".join(i.type for i in t.items))
            console.print(table)
        finally:
            await db.dispose()

    run(go())


@prefix_app.command("add")
def prefix_add(
    prefix: Annotated[str, typer.Argument(help="Prefix, e.g. 88.100.1.")],
    kind: Annotated[str, typer.Option(help="top, secondary or enterprise.")] = "enterprise",
    org: Annotated[str, typer.Option(help="Organisation name.")] = "",
    contact: Annotated[str, typer.Option(help="Contact.")] = "",
    active: Annotated[bool, typer.Option(help="Create it active (operator) instead of submitted.")] = False,
    tenant: TenantOpt = "default",
) -> None:
    """File a prefix (submitted, or active with --active)."""

    async def go() -> None:
        db, tenant_id = await _open(tenant)
        try:
            status = pfx.FilingStatus.active if active else pfx.FilingStatus.submitted
            async with db.session() as s:
                info = await pfx.submit(
                    s, tenant_id, prefix, kind, org_name=org, contact=contact, status=status
                )
            console.print(f"{info.prefix}: {info.status}")
        finally:
            await db.dispose()

    run(go())


@prefix_app.command("set")
def prefix_set(
    prefix: Annotated[str, typer.Argument(help="Prefix.")],
    status: Annotated[str, typer.Argument(help="verified, active, rejected or suspended.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    tenant: TenantOpt = "default",
) -> None:
    """Move a prefix filing to a new status."""

    async def go() -> None:
        db, tenant_id = await _open(tenant)
        try:
            async with db.session() as s:
                info = await pfx.transition(s, tenant_id, prefix, status, note)
            console.print(f"{info.prefix}: {info.status}")
        finally:
            await db.dispose()

    run(go())


@prefix_app.command("list")
def prefix_list(tenant: TenantOpt = "default") -> None:
    """List prefixes and their filing status."""

    async def go() -> None:
        db, tenant_id = await _open(tenant)
        try:
            table = Table("prefix", "kind", "status", "organisation")
            async with db.session() as s:
                for info in await pfx.list_prefixes(s, tenant_id):
                    table.add_row(info.prefix, info.kind, info.status, info.org_name)
            console.print(table)
        finally:
            await db.dispose()

    run(go())


@idnode_app.callback(invoke_without_command=True)
def idnode(
    role: Annotated[Role, typer.Option("--role", help="root, secondary, enterprise or recursive.")],
    db: Annotated[str | None, typer.Option("--db", help="Database URL (SQLite or PostgreSQL).")] = None,
    prefix: Annotated[list[str] | None, typer.Option("--prefix", help="Prefix this node serves.")] = None,
    root: Annotated[
        list[str] | None, typer.Option("--root", help="Root node URL (repeat for mirrors).")
    ] = None,
    mirror_of: Annotated[str | None, typer.Option("--mirror-of", help="Root to mirror (root role).")] = None,
    mirror_interval: Annotated[float, typer.Option(help="Seconds between mirror pulls.")] = 2.0,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            help="memory or redis://...: the recursive cache, or the shared record cache of a database node.",
        ),
    ] = None,
    cache_size: Annotated[int, typer.Option(help="Entries in the memory cache.")] = 200_000,
    cache_max_age: Annotated[
        float,
        typer.Option(
            help="Upper bound (s) of keeping a record in a worker's cache; the record's TTL rules below it."
        ),
    ] = 86_400.0,
    read_connections: Annotated[
        int, typer.Option(help="PostgreSQL connections per worker for resolution reads.")
    ] = 4,
    negative_ttl: Annotated[float, typer.Option(help="Seconds to cache 'not found'.")] = 30.0,
    credential_ttl: Annotated[
        float,
        typer.Option(help="Seconds a verified Basic credential is remembered (re-checked ahead of expiry)."),
    ] = 60.0,
    max_ttl: Annotated[float, typer.Option(help="Upper bound of cached TTLs.")] = 86_400.0,
    admin_token: Annotated[
        str | None, typer.Option(envvar="GONGYUN_IDNODE_TOKEN", help="Bearer token of the node operator.")
    ] = None,
    admin_secret: Annotated[
        str | None, typer.Option(envvar="GONGYUN_IDNODE_SECRET", help="Secret of <prefix>/admin (index 300).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant id the node's records belong to.")] = "default",
    platform_auth: Annotated[
        bool, typer.Option(help="Accept Gongyun users and API keys (node on the platform's database).")
    ] = False,
    all_tenants: Annotated[
        bool,
        typer.Option(
            help="Resolve every tenant's records on the database (the platform's objects); "
            "callers see private values of their own tenant only."
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8100,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run an identifier node until interrupted."""
    config = NodeConfig(
        role=role,
        db_url=db,
        tenant=tenant,
        prefixes=prefix or [],
        roots=root or [],
        mirror_of=mirror_of,
        mirror_interval=mirror_interval,
        cache_url=cache,
        cache_namespace=resolution_cache_namespace(settings().deployment_id),
        cache_size=cache_size,
        cache_max_age=cache_max_age,
        read_connections=read_connections,
        negative_ttl=negative_ttl,
        credential_ttl=credential_ttl,
        max_ttl=max_ttl,
        admin_token=admin_token,
        admin_secret=admin_secret,
        platform_auth=platform_auth,
        all_tenants=all_tenants,
        host=host,
        port=port,
        workers=workers,
    )
    serve(config)


def main() -> Any:
    """Run ``idnode`` standalone (``python -m gongyun.cli.idres --role ...``)."""
    return idnode_app()


if __name__ == "__main__":
    main()
