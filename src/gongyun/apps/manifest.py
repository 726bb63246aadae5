"""The app manifest: what an app is, needs and brings, validated in one pass.

An app's entry point (group ``gongyun.apps``) gives an ``AppManifest``. Building one with a
problem raises pydantic's ``ValidationError``, which lists every problem at once; the host
turns that into the single refusal message shown in the catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from fastapi import APIRouter
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from gongyun import __version__
from gongyun.security.rbac import Perm

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
LANGUAGES = ("en", "zh-CN")
Classification = Literal["general", "important", "core"]
# A worker is called with a gongyun.apps.context.WorkerContext (typed loosely here: the context
# module builds on the manifest, so naming it would make the two modules import each other).
Worker = Callable[[Any], Coroutine[Any, Any, None]]


def platform_version() -> Version:
    """The running platform's version, as apps' ``platform`` ranges are checked against it."""
    return Version(__version__)


class Localized(BaseModel):
    """A text in English and Simplified Chinese."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    en: str = Field(min_length=1, max_length=500)
    zh_cn: str = Field(min_length=1, max_length=500, alias="zh-CN")

    def get(self, lang: str) -> str:
        """The text in ``lang`` (English for any other language)."""
        return self.zh_cn if lang == "zh-CN" else self.en

    def as_dict(self) -> dict[str, str]:
        """``{"en": ..., "zh-CN": ...}``."""
        return {"en": self.en, "zh-CN": self.zh_cn}


class AppPage(BaseModel):
    """A console page of an app: a script from the app's static directory run in the console shell."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    slug: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    title: Localized
    script: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.js$", max_length=200)


def _perms(value: Any) -> Any:
    """Accept permission values as strings; name every unknown one in a single error."""
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        return value
    unknown = [str(v) for v in value if str(v) not in {p.value for p in Perm}]
    if unknown:
        raise ValueError(f"unknown permission(s): {', '.join(sorted(unknown))}")
    return frozenset(Perm(str(v)) for v in value)


class AppManifest(BaseModel):
    """Everything the platform needs to know about an app (one per ``gongyun.apps`` entry point)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(description="Unique name: lowercase letters, digits, underscores; 2-32 long.")
    version: str
    platform: str = Field(description="PEP 440 range of platform versions, e.g. '>=0.1,<1'.")
    title: Localized
    description: Localized
    permissions: Annotated[frozenset[Perm], BeforeValidator(_perms)]
    reads: tuple[str, ...] = Field(description="Data the app reads, e.g. 'telemetry', 'assets'.")
    writes: tuple[str, ...] = Field(description="Data the app writes, e.g. 'maintenance work orders'.")
    classification: Classification = Field(description="Highest data classification it handles.")
    settings: type[BaseModel] | None = None
    router: APIRouter | None = None
    pages: tuple[AppPage, ...] = ()
    static_dir: Path | None = None
    workers: tuple[Worker, ...] = ()
    migrations: Path | None = None
    cli: typer.Typer | None = Field(
        default=None, description="Commands run as `gongyun app <name> ...` (working without a server)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be 2-32 lowercase letters, digits or underscores, starting with a letter")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        try:
            Version(value)
        except InvalidVersion:
            raise ValueError(f"{value!r} is not a PEP 440 version") from None
        return value

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        try:
            spec = SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(f"{value!r} is not a PEP 440 version range") from None
        running = platform_version()
        if not spec.contains(running, prereleases=True):
            raise ValueError(f"needs platform {value}, this platform is {running}")
        return value

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: type[BaseModel] | None) -> type[BaseModel] | None:
        if value is not None:
            try:
                value()
            except ValidationError:
                raise ValueError("the settings model must have a default for every field") from None
        return value

    @field_validator("static_dir", "migrations")
    @classmethod
    def _directory(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    def default_settings(self) -> dict[str, Any]:
        """The settings a new installation starts with."""
        return self.settings().model_dump(mode="json") if self.settings else {}


def describe_errors(exc: ValidationError) -> list[str]:
    """Pydantic's errors as short lines: ``permissions: unknown permission(s): x:y``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "manifest"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "missing"
        lines.append(f"{where}: {message}")
    return lines


@dataclass
class ManifestCheck:
    """The outcome of checking one entry point: a manifest, or the problems that refuse it."""

    manifest: AppManifest | None
    problems: list[str] = field(default_factory=list)


def check_manifest(value: object) -> ManifestCheck:
    """Validate an entry point's object (an ``AppManifest`` or a mapping of its fields)."""
    if isinstance(value, AppManifest):
        return ManifestCheck(value)
    if not isinstance(value, dict):
        return ManifestCheck(None, [f"the entry point gives a {type(value).__name__}, not an AppManifest"])
    try:
        return ManifestCheck(AppManifest.model_validate(value))
    except ValidationError as exc:
        return ManifestCheck(None, describe_errors(exc))
