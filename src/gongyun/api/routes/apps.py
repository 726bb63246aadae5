"""The app catalogue of the caller's tenant, and installing, enabling, configuring, disabling apps.

Each app's own routes are mounted under ``/api/v1/apps/<name>/`` by ``mount_apps``; they
answer 404 in tenants where the app is not enabled and run with the app's scoped identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic import ValidationError as PydanticValidationError

from gongyun.api.deps import Ctx, CtxDep, require
from gongyun.apps import AppCtx, AppEntry, AppHost, AppStatus, app_actor
from gongyun.apps.context import REQUEST_STATE_KEY, parse_settings
from gongyun.apps.models import AppInstallation, installation, installations
from gongyun.db.base import utcnow
from gongyun.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/api/v1/apps", tags=["apps"])
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PageOut(BaseModel):
    """A console page of an app."""

    slug: str
    title: dict[str, str]
    url: str
    script: str


class InstallationOut(BaseModel):
    """An app's installation in the caller's tenant."""

    model_config = ConfigDict(from_attributes=True)
    version: str
    enabled: bool
    settings: dict[str, Any]
    installed_at: datetime
    updated_at: datetime
    updated_by: str


class AppOut(BaseModel):
    """One catalogue entry: what the app is, whether it runs here, and its state in this tenant."""

    name: str
    version: str | None
    status: str = Field(description="running, loaded, stopped, failed, or missing (installed, package gone)")
    problems: list[str]
    builtin: bool
    distribution: str
    title: dict[str, str]
    description: dict[str, str]
    permissions: list[str]
    reads: list[str]
    writes: list[str]
    classification: str | None
    pages: list[PageOut]
    settings_schema: dict[str, Any] | None
    installation: InstallationOut | None
    state: str = Field(description="this tenant: not_installed, enabled or disabled")


class AppChange(BaseModel):
    """Install (when absent), enable or disable, and configure an app in the caller's tenant."""

    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool | None = None
    settings: dict[str, Any] | None = None


def _host(ctx: Ctx) -> AppHost:
    host = ctx.platform.apps
    if host is None:
        raise ServiceUnavailable("the app host is not running in this process")
    return host


def _state(row: AppInstallation | None) -> str:
    if row is None:
        return "not_installed"
    return "enabled" if row.enabled else "disabled"


def _out(entry: AppEntry | None, name: str, row: AppInstallation | None) -> AppOut:
    inst = InstallationOut.model_validate(row) if row is not None else None
    m = entry.manifest if entry is not None else None
    if entry is None or m is None:
        fallback = {"en": name, "zh-CN": name}
        return AppOut(
            name=name,
            version=None,
            status="missing" if entry is None else entry.status.value,
            problems=entry.problems
            if entry is not None
            else [f"app {name!r} is not installed on this platform"],
            builtin=entry.builtin if entry is not None else False,
            distribution=entry.distribution if entry is not None else "",
            title=fallback,
            description={"en": "", "zh-CN": ""},
            permissions=[],
            reads=[],
            writes=[],
            classification=None,
            pages=[],
            settings_schema=None,
            installation=inst,
            state=_state(row),
        )
    pages = [
        PageOut(slug=p.slug, title=p.title.as_dict(), url=f"/apps/{m.name}/{p.slug}", script=p.script)
        for p in m.pages
    ]
    return AppOut(
        name=m.name,
        version=m.version,
        status=entry.status.value,
        problems=entry.problems,
        builtin=entry.builtin,
        distribution=entry.distribution,
        title=m.title.as_dict(),
        description=m.description.as_dict(),
        permissions=sorted(p.value for p in m.permissions),
        reads=list(m.reads),
        writes=list(m.writes),
        classification=m.classification,
        pages=pages,
        settings_schema=m.settings.model_json_schema() if m.settings else None,
        installation=inst,
        state=_state(row),
    )


@router.get("", response_model=list[AppOut], summary="List the app catalogue")
async def list_apps(ctx: Annotated[Ctx, Depends(require(Perm.apps_read))]) -> list[AppOut]:
    """Every app this platform knows (failed ones with their problems), with its state in the caller's
    tenant; installations whose package is gone are listed as ``missing``."""
    rows = await installations(ctx.session)
    host = _host(ctx)
    entries = host.entries()
    # a tenant's installation belongs to the entry that owns the name, not to refused namesakes
    out = [_out(e, e.name, rows.get(e.name) if host.get(e.name) is e else None) for e in entries]
    known = {e.name for e in entries}
    out += [_out(None, name, row) for name, row in sorted(rows.items()) if name not in known]
    return out


@router.get("/{name}", response_model=AppOut, summary="Get one app of the catalogue")
async def get_app(name: str, ctx: Annotated[Ctx, Depends(require(Perm.apps_read))]) -> AppOut:
    """One app with its state in the caller's tenant."""
    entry = _host(ctx).get(name)
    row = await installation(ctx.session, name)
    if entry is None and row is None:
        raise NotFound(f"no app called {name!r}")
    return _out(entry, name, row)


def _valid_settings(entry: AppEntry, given: dict[str, Any]) -> dict[str, Any]:
    manifest = entry.manifest
    assert manifest is not None
    if manifest.settings is None:
        if given:
            raise ValidationFailed(f"app {entry.name!r} has no settings")
        return {}
    try:
        return manifest.settings.model_validate(given).model_dump(mode="json")
    except PydanticValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ValidationFailed(f"settings of app {entry.name!r} are invalid", errors=errors) from None


@router.patch("/{name}", response_model=AppOut, summary="Install, enable, disable or configure an app")
async def change_app(
    name: str, body: AppChange, ctx: Annotated[Ctx, Depends(require(Perm.apps_admin))]
) -> AppOut:
    """Install the app in the caller's tenant when absent (disabled, default settings), then apply
    ``enabled`` and ``settings``. Every change is audited."""
    entry = _host(ctx).get(name)
    row = await installation(ctx.session, name)
    if entry is None or entry.manifest is None:
        if row is None:
            raise NotFound(f"no app called {name!r}")
        if body.enabled or body.settings is not None:
            raise Conflict(
                f"app {name!r} is not available on this platform: "
                + "; ".join(_out(entry, name, row).problems)
            )
    elif entry.status is AppStatus.failed and (body.enabled or body.settings is not None):
        raise Conflict(entry.reason or f"app {name!r} failed", app_problems=entry.problems)
    if row is None:
        assert entry is not None and entry.manifest is not None
        row = AppInstallation(
            tenant_id=ctx.tenant_id,
            app=name,
            version=entry.manifest.version,
            enabled=False,
            settings=entry.manifest.default_settings(),
            updated_by=ctx.actor,
        )
        ctx.session.add(row)
        await ctx.audit("app.install", name, version=row.version)
    if body.settings is not None and entry is not None:
        before, row.settings = row.settings, _valid_settings(entry, body.settings)
        # the names of the changed settings only: a value may be a credential
        changed = sorted(k for k in {*before, *row.settings} if before.get(k) != row.settings.get(k))
        await ctx.audit("app.configure", name, changed=changed)
    if body.enabled is not None and body.enabled != row.enabled:
        row.enabled = body.enabled
        await ctx.audit("app.enable" if body.enabled else "app.disable", name)
    if entry is not None and entry.manifest is not None:
        row.version = entry.manifest.version
    row.updated_at, row.updated_by = utcnow(), ctx.actor
    await ctx.session.flush()
    return _out(entry, name, row)


@router.delete("/{name}", status_code=204, summary="Uninstall an app from the tenant")
async def uninstall_app(name: str, ctx: Annotated[Ctx, Depends(require(Perm.apps_admin))]) -> None:
    """Remove the app's installation from the caller's tenant (the app's own data stays)."""
    row = await installation(ctx.session, name)
    if row is None:
        raise NotFound(f"app {name!r} is not installed in this tenant")
    await ctx.session.delete(row)
    await ctx.audit("app.uninstall", name)


# ---- the apps' own routes ----


def _gate(name: str) -> Callable[[Request, Ctx], AsyncIterator[AppCtx]]:
    """The dependency in front of every route of app ``name``: enabled here, scoped identity, audit."""

    async def gate(request: Request, ctx: CtxDep) -> AsyncIterator[AppCtx]:
        entry = _host(ctx).get(name)
        if entry is None or entry.manifest is None:
            raise NotFound(f"no app called {name!r}")
        row = await installation(ctx.session, name)
        if row is None or not row.enabled:
            raise NotFound(f"app {name!r} is not enabled in this tenant")
        if entry.status is AppStatus.failed:
            raise ServiceUnavailable(entry.reason or f"app {name!r} failed")
        app_ctx = AppCtx(
            app=name,
            tenant_id=ctx.tenant_id,
            actor=app_actor(name, ctx.actor),
            permissions=entry.manifest.permissions & ctx.permissions,
            session=ctx.session,
            db=ctx.platform.db,
            settings=parse_settings(entry.manifest, row.settings),
            detail={"client": ctx.client},
            services=_host(ctx).services,
            config=ctx.platform.settings,
        )
        setattr(request.state, REQUEST_STATE_KEY, app_ctx)
        yield app_ctx
        if request.method not in _SAFE_METHODS:
            await app_ctx.audit("request", request.url.path, method=request.method)

    gate.__name__ = f"app_gate_{name}"
    return gate


def mount_apps(app: FastAPI, host: AppHost) -> None:
    """Mount each valid app's router under ``/api/v1/apps/<name>``, behind its gate."""
    for entry in host.entries():
        manifest = entry.manifest
        if manifest is None or manifest.router is None or entry.status is AppStatus.failed:
            continue
        if host.get(entry.name) is not entry:
            continue
        app.include_router(
            manifest.router,
            prefix=f"{router.prefix}/{manifest.name}",
            tags=[f"app:{manifest.name}"],
            dependencies=[Depends(_gate(manifest.name), scope="function")],
        )
