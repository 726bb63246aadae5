"""Small apps that tests register through in-test entry points (``gongyun.apps`` group)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gongyun.apps import AppCtx, AppManifest, AppPage, Localized, WorkerContext, current_app, needs
from gongyun.security.rbac import Perm
from gongyun.telemetry.store.base import from_us

HERE = Path(__file__).parent


class GreeterSettings(BaseModel):
    """Settings of the greeter app."""

    greeting: str = Field(default="hello", min_length=1, max_length=40)
    repeat: int = Field(default=1, ge=1, le=5)


greeter_router = APIRouter()


@greeter_router.get("/greet")
async def greet(ctx: Annotated[AppCtx, Depends(needs(Perm.assets_read))]) -> dict[str, Any]:
    """Answer with the tenant's greeting."""
    settings = ctx.settings_as(GreeterSettings)
    return {
        "text": " ".join([settings.greeting] * settings.repeat),
        "tenant": ctx.tenant_id,
        "actor": ctx.actor,
    }


@greeter_router.post("/command")
async def command(ctx: Annotated[AppCtx, Depends(needs(Perm.devices_command))]) -> dict[str, str]:
    """Needs a permission the manifest does not list: always refused."""
    return {"done": ctx.app}


@greeter_router.post("/notes")
async def note(ctx: Annotated[AppCtx, Depends(current_app)]) -> dict[str, str]:
    """Record an action of the app."""
    await ctx.audit("note", "n1")
    return {"ok": "yes"}


TICKS: list[str] = []


async def ticker(ctx: WorkerContext) -> None:
    """A worker that notes the tenants it serves, then waits to be cancelled."""
    TICKS.append(ctx.name)
    await asyncio.Event().wait()


GREETER = AppManifest(
    name="greeter",
    version="1.2.0",
    platform=">=0.1",
    title=Localized(en="Greeter", zh_cn="问候"),
    description=Localized(en="Says hello.", zh_cn="打个招呼。"),
    permissions=["assets:read", "telemetry:read"],
    reads=("assets",),
    writes=(),
    classification="general",
    settings=GreeterSettings,
    router=greeter_router,
    pages=(AppPage(slug="main", title=Localized(en="Greeter", zh_cn="问候"), script="greeter.js"),),
    static_dir=HERE / "static",
    workers=(ticker,),
)

# Three problems at once: a missing title, an unknown permission, a platform range not met.
MALFORMED: dict[str, Any] = {
    "name": "broken",
    "version": "0.1.0",
    "platform": ">=99",
    "description": {"en": "Broken.", "zh-CN": "损坏。"},
    "permissions": ["assets:read", "rockets:launch"],
    "reads": [],
    "writes": [],
    "classification": "general",
}


async def exploding(ctx: WorkerContext) -> None:
    """A worker that raises at start-up."""
    raise RuntimeError(f"{ctx.name} cannot reach its PLC")


EXPLODER = AppManifest(
    name="exploder",
    version="0.0.1",
    platform=">=0.1",
    title=Localized(en="Exploder", zh_cn="爆炸"),
    description=Localized(en="Fails at start.", zh_cn="启动失败。"),
    permissions=[],
    reads=(),
    writes=(),
    classification="general",
    workers=(exploding,),
)


def named(name: str) -> dict[str, Any]:
    """A valid manifest (as a mapping) called ``name``."""
    return {
        "name": name,
        "version": "1.0",
        "platform": ">=0.1",
        "title": {"en": name, "zh-CN": name},
        "description": {"en": name, "zh-CN": name},
        "permissions": [],
        "reads": [],
        "writes": [],
        "classification": "general",
    }


ALARMS = named("alarms")  # a platform area's name
TWIN_A = named("twin")
TWIN_B = named("twin")
NAMED_ALPHA = named("alpha")


# A worker that doubles every value of ``line/speed`` into its own tag ``doubler/score`` through
# the platform's services, and watches that score with an alarm rule it owns.
async def doubling(ctx: WorkerContext) -> None:
    """Write twice each stored ``line/speed`` value as ``doubler/score`` (leader only)."""
    await ctx.services.wait_leader()
    ready: set[str] = set()
    async for tenant, points in ctx.services.listen():
        if tenant not in await ctx.tenants():
            continue
        speeds = [p for p in points if p.tag == "line/speed"]
        if not speeds:
            continue
        if tenant not in ready:
            await ctx.services.ensure_device(tenant, "doubler")
            await ctx.services.ensure_tag(tenant, "doubler", "score", description="twice the speed")
            await ctx.services.ensure_rule(
                tenant,
                {"name": "score high", "kind": "threshold", "tag": "doubler/score", "limit": 100.0},
            )
            ready.add(tenant)
        await ctx.services.write(tenant, [("doubler/score", from_us(p.ts), 2 * p.value) for p in speeds])


doubler_cli = typer.Typer(help="The doubler's commands.")


@doubler_cli.command("double")
def double_cmd(value: float) -> None:
    """Print twice VALUE (needs no server)."""
    typer.echo(f"{2 * value:g}")


DOUBLER = AppManifest(
    name="doubler",
    version="0.1.0",
    platform=">=0.1",
    title=Localized(en="Doubler", zh_cn="加倍"),
    description=Localized(en="Doubles the line speed.", zh_cn="线速度加倍。"),
    permissions=["telemetry:read"],
    reads=("telemetry",),
    writes=("telemetry", "alarm rules"),
    classification="general",
    workers=(doubling,),
    cli=doubler_cli,
)
