"""``gongyun edge``: run the edge gateway, or check a profile / config file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from gongyun.cli.common import STATE
from gongyun.edge.config import EdgeConfig, load_config
from gongyun.edge.errors import ProfileInvalid
from gongyun.edge.profiles import Profile, load_profile
from gongyun.edge.runtime import Gateway
from gongyun.log import quiet_libraries

app = typer.Typer(help="Edge gateway: Modbus TCP, OPC UA, MQTT and Sparkplug B to the platform.")
edge_app = app  # the name gongyun.cli.main looks for


def _fail(exc: ProfileInvalid) -> None:
    for err in exc.details.get("errors", []):
        typer.echo(f"{err['file']}:{err['line']}: {err['field']}: {err['message']}", err=True)
    raise typer.Exit(2)


@app.callback(invoke_without_command=True)
def edge(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Gateway configuration (edge.toml).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run the gateway described by ``--config`` until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo("gongyun edge: --config edge.toml is required", err=True)
        raise typer.Exit(2)
    level = "DEBUG" if STATE.debug else log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(level)
    try:
        cfg, profiles = load_config(config)
    except ProfileInvalid as exc:
        _fail(exc)
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(cfg, profiles))


async def _serve(cfg: EdgeConfig, profiles: dict[str, Profile]) -> None:
    """Run the gateway; SIGTERM stops it cleanly (pending samples flushed, NDEATH sent)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await Gateway(cfg, profiles).serve_forever()


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="Profiles or edge.toml files to validate.")],
) -> None:
    """Validate profiles and gateway configs; print every error with file, line and field."""
    failed = False
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
            if "[profile]" in text:
                load_profile(file)
            else:
                load_config(file)
        except ProfileInvalid as exc:
            failed = True
            for err in exc.details.get("errors", []):
                typer.echo(f"{err['file']}:{err['line']}: {err['field']}: {err['message']}", err=True)
            continue
        typer.echo(f"{file}: ok")
    if failed:
        raise typer.Exit(2)


@app.command()
def status(config: Annotated[Path, typer.Option("--config", "-c", help="Gateway configuration.")]) -> None:
    """Print the status a running gateway last wrote (devices, buffer, uplink)."""
    try:
        cfg, _ = load_config(config)
    except ProfileInvalid as exc:
        _fail(exc)
        return
    path = Path(cfg.gateway.buffer).with_suffix(".status.json")
    if not path.exists():
        typer.echo(f"no status at {path}: is the gateway running?", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(json.loads(path.read_text()), indent=2))


@app.command()
def drivers(
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """List the device drivers registered under the ``gongyun.drivers`` entry points, with manifests."""
    from dataclasses import asdict
    from importlib.metadata import entry_points

    from rich.console import Console
    from rich.table import Table

    found = []
    for ep in sorted(entry_points(group="gongyun.drivers"), key=lambda e: e.name):
        try:
            manifest = ep.load().manifest
        except Exception as exc:  # a broken plugin is reported, not fatal
            found.append({"name": ep.name, "error": f"{type(exc).__name__}: {exc}", "entry_point": ep.value})
            continue
        found.append({**asdict(manifest), "entry_point": ep.value})
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("driver", "version", "library", "reads", "writes", "permissions", "class", "entry point")
    for m in found:
        if "error" in m:
            table.add_row(m["name"], "-", "-", "-", "-", "-", "-", f"[red]{m['error']}[/red]")
            continue
        perms = ", ".join(m["permissions"])
        table.add_row(
            m["name"], m["version"], m["library"], m["reads"], m["writes"], perms,
            m["classification"], m["entry_point"],
        )  # fmt: skip
    Console().print(table)
