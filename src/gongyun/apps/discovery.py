"""Find apps through the ``gongyun.apps`` entry points and refuse the malformed ones.

Loading never raises: an app whose module fails to import, whose manifest is malformed or
whose name is taken becomes a failed ``AppEntry`` with every problem listed, and the
platform starts with the others.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points

from pydantic import ValidationError

from gongyun.apps.manifest import AppManifest, check_manifest, describe_errors

log = logging.getLogger("gongyun.apps")
GROUP = "gongyun.apps"
PLATFORM_DIST = "gongyun"

# Names an app cannot take: the platform's own areas, API resources and console pages.
RESERVED_NAMES = frozenset(
    {
        "admin",
        "alarms",
        "api",
        "apikeys",
        "apps",
        "assets",
        "audit",
        "auth",
        "console",
        "core",
        "devices",
        "edge",
        "gongyun",
        "health",
        "identifiers",
        "idres",
        "login",
        "overview",
        "platform",
        "security",
        "static",
        "telemetry",
        "tenants",
        "users",
    }
)


class AppStatus(StrEnum):
    """Where an app stands in this process."""

    loaded = "loaded"  # valid, not started yet
    running = "running"
    failed = "failed"  # refused manifest, import error, or a worker that raised
    stopped = "stopped"


@dataclass
class AppEntry:
    """One discovered app: its manifest when valid, and why it failed otherwise."""

    name: str
    distribution: str
    builtin: bool
    manifest: AppManifest | None = None
    status: AppStatus = AppStatus.loaded
    problems: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """The problems as one message (empty when there are none)."""
        if not self.problems:
            return ""
        return f"app {self.name!r} refused: " + "; ".join(self.problems)

    def fail(self, problem: str) -> None:
        """Mark the app failed with ``problem`` added to its reasons."""
        self.problems.append(problem)
        self.status = AppStatus.failed


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else ""


def _load(ep: EntryPoint) -> AppEntry:
    dist = _distribution(ep)
    entry = AppEntry(name=ep.name, distribution=dist, builtin=dist == PLATFORM_DIST)
    try:
        value = ep.load()
    except ValidationError as exc:
        problems = describe_errors(exc)
    except Exception as exc:  # an app's import error must not stop the platform
        problems = [f"import of {ep.value} failed: {type(exc).__name__}: {exc}"]
    else:
        checked = check_manifest(value)
        entry.manifest = checked.manifest
        problems = checked.problems
    if entry.manifest is not None and entry.manifest.name != ep.name:
        problems.append(
            f"entry point name {ep.name!r} differs from the manifest name {entry.manifest.name!r}"
        )
    for problem in problems:
        entry.fail(problem)
    return entry


def discover(eps: Iterable[EntryPoint] | None = None) -> list[AppEntry]:
    """Load every app of the ``gongyun.apps`` group (or ``eps``) and check names for clashes.

    Built-in apps (shipped in the ``gongyun`` distribution) keep their name; a third-party
    app with a reserved or taken name is refused, as are all but the first of several
    third-party apps that share a name.
    """
    if eps is None:
        importlib.invalidate_caches()  # a package installed since start-up must be importable
        eps = entry_points(group=GROUP)
    found = [_load(ep) for ep in eps]
    found.sort(key=lambda e: (not e.builtin, e.distribution, e.name))
    taken: dict[str, AppEntry] = {}
    for entry in found:
        if entry.name in RESERVED_NAMES:
            entry.fail(f"name {entry.name!r} clashes with a built-in part of the platform")
        elif entry.name in taken:
            owner = taken[entry.name]
            kind = "built-in app" if owner.builtin else "app"
            entry.fail(f"name {entry.name!r} clashes with the {kind} from {owner.distribution or 'unknown'}")
        else:
            taken[entry.name] = entry
    for entry in found:
        if entry.status is AppStatus.failed:
            log.error("%s", entry.reason, extra={"app": entry.name})
    return found
