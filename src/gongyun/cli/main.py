"""The ``gongyun`` entry point: serve, demo, db, user, tenant, apikey and the rooms' commands."""

from __future__ import annotations

import importlib
import logging
import socket
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from gongyun import __version__
from gongyun.cli.accounts import apikey_app, tenant_app, user_app
from gongyun.cli.common import STATE, announce_password, console, err_console, log_level, run, settings
from gongyun.config import use_config_file
from gongyun.errors import ConfigError, GongyunError

app = typer.Typer(
    name="gongyun",
    help="Gongyun (工云): open industrial internet platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Metadata database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")

# Rooms that contribute CLI commands: (module, attribute, command name).
ROOM_COMMANDS = (
    ("gongyun.cli.idres", "id_app", "id"),
    ("gongyun.cli.idres", "idnode_app", "idnode"),
    ("gongyun.cli.edge", "edge_app", "edge"),
    ("gongyun.cli.sim", "sim_app", "sim"),
    ("gongyun.cli.telemetry", "telemetry_app", "telemetry"),
    ("gongyun.cli.apps", "app_app", "app"),
    ("gongyun.cli.ids", "ids_app", "ids"),
    ("gongyun.cli.range", "range_app", "range"),
    ("gongyun.cli.audit", "audit_app", "audit"),
    ("gongyun.cli.pki", "pki_app", "pki"),
    ("gongyun.cli.classify", "classify_app", "classify"),
)


def _rooms_to_load(argv: list[str]) -> set[str]:
    """The rooms whose commands to import: run as ``gongyun`` with a command that is not a
    room's, none (importing every room costs about a second of start-up); else every one
    (``--help``, no command, or the module imported by tests and other programs)."""
    every = {name for _, _, name in ROOM_COMMANDS}
    if Path(argv[0]).name != "gongyun" or len(argv) < 2 or {"--help", "-h"} & set(argv[1:]):
        return every
    return every & set(argv[1:])  # a value that happens to be a room's name loads it too: harmless


def _add_room_commands(rooms: set[str] | None = None) -> None:
    """Register the CLI commands of ``rooms`` (every room by default)."""
    for module_name, attr, name in ROOM_COMMANDS:
        if rooms is not None and name not in rooms:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        sub = getattr(module, attr, None)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)


def _version(value: bool) -> None:
    if value:
        console.print(f"gongyun {__version__}")
        raise typer.Exit


@app.callback()
def main(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="GONGYUN_DATA_DIR", help="Data directory (default ./var)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", envvar="GONGYUN_CONFIG", help="Settings file (gongyun.toml).")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors; log at DEBUG, libraries included.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Gongyun (工云): open industrial internet platform."""
    STATE.data_dir = data_dir
    STATE.debug = debug
    if config is not None:
        use_config_file(config)


def _sockets(hosts: list[str], port: int) -> list[socket.socket]:
    made: list[socket.socket] = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and len(hosts) > 1:
                logging.getLogger("gongyun").warning("not listening on [%s]:%s: %s", host, port, exc)
                continue
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        sock.listen(2048)
        sock.set_inheritable(True)
        port = port or int(sock.getsockname()[1])
        made.append(sock)
    return made


def _serve(host: list[str] | None, port: int | None, demo: bool) -> None:
    import uvicorn

    from gongyun.api.app import StartHook, create_app
    from gongyun.log import setup_logging
    from gongyun.platform import prepare_database

    cfg = settings(**({"host": host} if host else {}), port=port)
    setup_logging(log_level(cfg), cfg.log_format)
    announce_password(cfg, run(prepare_database(cfg)))
    hooks: list[StartHook] = []
    if demo:
        from gongyun.platform.demo import start_demo

        hooks.append(start_demo)
    cfg_app = create_app(cfg, on_start=hooks, prepare=False)  # prepared just above
    socks = _sockets(cfg.host, cfg.port)
    for s in socks:
        addr = s.getsockname()
        shown = f"[{addr[0]}]" if s.family == socket.AF_INET6 else addr[0]
        console.print(f"Gongyun {__version__} serving on http://{shown}:{addr[1]}", highlight=False)
    config = uvicorn.Config(cfg_app, log_config=None, access_log=False, proxy_headers=False, lifespan="on")
    uvicorn.Server(config).run(sockets=socks)


HostOpt = Annotated[list[str] | None, typer.Option("--host", help="Address to listen on (repeatable).")]
PortOpt = Annotated[int | None, typer.Option("--port", help="TCP port (default 8000).")]


@app.command()
def serve(host: HostOpt = None, port: PortOpt = None) -> None:
    """Serve the API and the console (default http://127.0.0.1:8000 and http://[::1]:8000)."""
    _serve(host, port, demo=False)


@app.command()
def demo(host: HostOpt = None, port: PortOpt = None) -> None:
    """Serve with the virtual factory: simulators, an edge gateway and a seeded asset model."""
    _serve(host, port, demo=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Run database migrations up to the newest revision."""
    from gongyun.platform import prepare_database

    cfg = settings()
    announce_password(cfg, run(prepare_database(cfg)))
    console.print("[green]database is up to date[/]")


_add_room_commands(_rooms_to_load(sys.argv))


def _one_line(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return first[0] if first else type(exc).__name__


def run_cli() -> None:
    """Run the CLI, printing one line (no traceback unless --debug) on failure."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        app()  # standalone: usage errors print the usage and exit 2, as click does
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if STATE.debug or "--debug" in sys.argv:
            traceback.print_exc()
        if isinstance(exc, GongyunError):
            err_console.print(f"[red]error[/] ({exc.code}): {exc.message}", highlight=False)
        elif isinstance(exc, SQLAlchemyError):
            orig = getattr(exc, "orig", None) or exc
            err_console.print(f"[red]error[/] (database): {_one_line(orig)}", highlight=False)
        elif isinstance(exc, OSError):
            err_console.print(f"[red]error[/] ({type(exc).__name__}): {_one_line(exc)}", highlight=False)
        else:
            err_console.print(f"[red]error[/]: {type(exc).__name__}: {_one_line(exc)}", highlight=False)
        sys.exit(1)
