"""``gongyun telemetry``: export, rollups, retention and the demo asset tree from the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from sqlalchemy import select

from gongyun.cli.common import console, db_session, run, settings
from gongyun.telemetry import export as ex
from gongyun.telemetry.query import span
from gongyun.telemetry.store import TimeSeriesStore, open_store, store_url_for

telemetry_app = typer.Typer(help="Telemetry store: export, rollups, retention.", no_args_is_help=True)


async def _store() -> TimeSeriesStore:
    cfg = settings()
    store = open_store(store_url_for(cfg.ensure_data_dir(), cfg.database_url))
    await store.open()
    return store


async def _tenant_id(name: str) -> str:
    from gongyun.security.models import Tenant

    async with db_session(settings()) as s:
        row = (await s.execute(select(Tenant.id).where(Tenant.name == name))).scalar_one_or_none()
    if row is None:
        raise typer.BadParameter(f"no tenant named {name!r}")
    return str(row)


@telemetry_app.command("export")
def export_cmd(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    tag: Annotated[list[str], typer.Option(help="device/tag (repeat for several).")],
    start: Annotated[datetime, typer.Option(help="Start (ISO 8601, UTC when no zone).")],
    end: Annotated[datetime, typer.Option(help="End, exclusive.")],
    out: Annotated[Path, typer.Option(help="Output file.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    series: Annotated[str, typer.Option(help="raw or clean.")] = "raw",
) -> None:
    """Export a time range of some tags to CSV or Parquet."""

    if fmt not in ("csv", "parquet") or series not in ("raw", "clean"):
        raise typer.BadParameter("--format is csv or parquet, --series raw or clean")

    async def go() -> int:
        tid = await _tenant_id(tenant)
        a, b = span(*(d if d.tzinfo else d.replace(tzinfo=UTC) for d in (start, end)))
        store = await _store()
        try:
            kind: Literal["raw", "clean"] = "clean" if series == "clean" else "raw"
            fmt_: Literal["csv", "parquet"] = "parquet" if fmt == "parquet" else "csv"
            return await ex.export(store, tid, tag, a, b, out, fmt_, kind)
        finally:
            await store.close()

    console.print(f"{run(go()):,} rows written to {out}")


@telemetry_app.command("rollups")
def rollups_cmd() -> None:
    """Bring the 1-minute and 1-hour rollups up to date."""

    async def go() -> int:
        store = await _store()
        try:
            return await store.refresh_rollups()
        finally:
            await store.close()

    console.print(f"{run(go()):,} hour(s) of rollups refreshed")


@telemetry_app.command("retention")
def retention_cmd() -> None:
    """Apply retention policies now (raw data first, rollups kept longer)."""

    async def go() -> dict[str, int]:
        store = await _store()
        try:
            return await store.apply_retention()
        finally:
            await store.close()

    for table, n in run(go()).items():
        console.print(f"{table}: {n:,}")


@telemetry_app.command("seed-demo")
def seed_demo_cmd(tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default") -> None:
    """Create the virtual factory's asset tree (devices, tags, an alarm) in a tenant."""
    from gongyun.assets.seed import factory_layout, seed
    from gongyun.db import Database
    from gongyun.idres.objects import object_registrar
    from gongyun.sim.factory import profiles_dir

    async def go() -> int:
        tid = await _tenant_id(tenant)  # also migrates the database
        cfg = settings()
        db = Database(cfg.effective_database_url)
        try:
            async with db.session() as s:
                layout = factory_layout(profiles_dir())
                return len(await seed(s, tid, layout, minter=object_registrar(cfg, db)))
        finally:
            await db.dispose()

    console.print(f"{run(go())} devices seeded")
