"""``gongyun app``: scaffold a new app package, list the apps this platform finds."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Annotated, Any

import typer
from packaging.version import Version
from rich.table import Table
from typer.core import TyperGroup

from gongyun import __version__
from gongyun.apps import AppHost, AppStatus
from gongyun.apps.discovery import RESERVED_NAMES
from gongyun.apps.manifest import NAME_PATTERN
from gongyun.cli.common import console
from gongyun.errors import Conflict, InvalidInput

_APP_COMMANDS = "gongyun.app_commands"


class AppCommands(TyperGroup):
    """``gongyun app``: its own commands, then each installed app's (``gongyun app <name> ...``).

    Apps are discovered only when an app's command is asked for, so that the rest of the
    command line does not import every app.
    """

    def _app_commands(self, ctx: Any) -> dict[str, Any]:  # typer's vendored click types are private
        """Each app's command group, discovered once per invocation (help asks for every one)."""
        cached: dict[str, Any] | None = ctx.meta.get(_APP_COMMANDS)
        if cached is not None:
            return cached
        found: dict[str, Any] = {}
        for entry in AppHost.discover().entries():
            manifest = entry.manifest
            if manifest is None or manifest.cli is None or entry.name in self.commands:
                continue  # a name of gongyun app's own commands is not an app's
            command = typer.main.get_group(manifest.cli)  # a group even with one command
            command.name = entry.name  # a Typer without a name of its own is listed nameless
            command.help = command.help or manifest.description.en
            found[entry.name] = command
        ctx.meta[_APP_COMMANDS] = found
        return found

    def list_commands(self, ctx: Any) -> list[str]:
        """The built-in commands, then the apps that bring commands."""
        return [*super().list_commands(ctx), *sorted(self._app_commands(ctx))]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """A built-in command, else the app of that name's commands."""
        return super().get_command(ctx, cmd_name) or self._app_commands(ctx).get(cmd_name)


app_app = typer.Typer(
    cls=AppCommands,
    help="Apps: scaffold a new app, list installed apps, run an app's commands.",
    no_args_is_help=True,
)
TEMPLATE_DIR = Path(__file__).parent / "app_template"

# template file -> path in the new project ({package} and {name} filled in)
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "init.py.tmpl": "src/{package}/__init__.py",
    "manifest.py.tmpl": "src/{package}/manifest.py",
    "settings.py.tmpl": "src/{package}/settings.py",
    "tables.py.tmpl": "src/{package}/tables.py",
    "routes.py.tmpl": "src/{package}/routes.py",
    "worker.py.tmpl": "src/{package}/worker.py",
    "migration.py.tmpl": "src/{package}/migrations/{name}_0001_notes.py",
    "main.js.tmpl": "src/{package}/static/main.js",
    "test_app.py.tmpl": "tests/test_app.py",
}


def check_name(name: str) -> None:
    """Refuse a name no app may take (pattern or a platform name)."""
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"app name {name!r}: use 2-32 lowercase letters, digits or '_', starting with a letter"
        )
    if name in RESERVED_NAMES:
        raise InvalidInput(f"app name {name!r} is taken by the platform")


def scaffold(name: str, target: Path) -> list[Path]:
    """Write a working app package called ``name`` into ``target``; return the files written."""
    check_name(name)
    if target.exists() and any(target.iterdir()):
        raise Conflict(f"{target} exists and is not empty")
    running = Version(__version__)
    values = {
        "name": name,
        "package": f"gongyun_app_{name}",
        "title": name.replace("_", " ").title(),
        "platform_min": f"{running.major}.{running.minor}",
        "platform_next": f"{running.major + 1}" if running.major else f"0.{running.minor + 1}",
    }
    written = []
    for source, dest in LAYOUT.items():
        path = target / dest.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = Template((TEMPLATE_DIR / source).read_text(encoding="utf-8")).substitute(values)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


@app_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="App name: lowercase letters, digits, '_'.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to create the project (default ./NAME).")
    ] = None,
) -> None:
    """Create a new app package: manifest, API route, console page, worker, migrations and tests."""
    target = (directory or Path(name)).resolve()
    files = scaffold(name, target)
    console.print(f"[green]created[/] app {name!r} in {target} ({len(files)} files)", highlight=False)
    console.print(f"next: pip install -e '{target}[test]' && pytest {target}", markup=False, highlight=False)


@app_app.command("list")
def list_apps() -> None:
    """The apps this platform finds (entry point group gongyun.apps), with their problems."""
    entries = AppHost.discover().entries()
    if not entries:
        console.print("no apps installed (make one with: gongyun app new NAME)")
        return
    table = Table("name", "version", "distribution", "state", "problems")
    for entry in entries:
        state = "failed" if entry.status is AppStatus.failed else "ok"
        version = entry.manifest.version if entry.manifest else "—"
        table.add_row(entry.name, version, entry.distribution or "—", state, "; ".join(entry.problems))
    console.print(table)
