"""Connected devices: status from the tenant's gateways, commands, and demo fault injection."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from gongyun.api.deps import Ctx, require
from gongyun.edge.commands import CommandRequest, sign_command
from gongyun.edge.errors import CommandNotConfirmed, CommandRefused
from gongyun.errors import GongyunError, NotFound
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/api/v1", tags=["devices"])
Read = Annotated[Ctx, Depends(require(Perm.devices_read))]
Command = Annotated[Ctx, Depends(require(Perm.devices_command))]
Engineer = Annotated[Ctx, Depends(require(Perm.devices_write))]


class CommandIn(BaseModel):
    """A write to one tag of a device."""

    model_config = ConfigDict(extra="forbid")
    tag: str = Field(min_length=1, max_length=100)
    value: float | int | bool | str
    reason: str = Field(default="", max_length=500)


class FaultIn(BaseModel):
    """A fault to start in a simulated machine."""

    model_config = ConfigDict(extra="forbid")
    machine: str = Field(pattern=r"^(pump|cnc|packaging)$")
    fault: str = Field(min_length=1, max_length=64)
    rate: StrictFloat | None = Field(default=None, gt=0, le=100)


@router.get("/devices/status", summary="Connection state of the tenant's devices")
async def device_status(ctx: Read) -> list[dict[str, Any]]:
    """Per device: connected, last good read, error counts, from every gateway of the tenant."""
    out: list[dict[str, Any]] = []
    for gw in ctx.platform.gateways.of(ctx.tenant_id):
        status = gw.status()
        for device in status["devices"].values():
            out.append({**device, "gateway": status["gateway"]})
    return out


@router.get("/gateways", summary="The tenant's gateways")
async def gateway_status(ctx: Read) -> list[dict[str, Any]]:
    """Per gateway: buffer depth and counters, uplink state, driver restarts."""
    result = []
    for gw in ctx.platform.gateways.of(ctx.tenant_id):
        status = gw.status()
        result.append(
            {
                "name": status["gateway"],
                "started": status["started"],
                "buffer": status["buffer"],
                "buffer_depth": status["buffer"]["depth"],
                "uplink": status["uplink"],
                "devices": len(status["devices"]),
                "crashes": status["crashes"],
            }
        )
    return result


@router.post("/devices/{device}/commands", summary="Write a value to a device tag")
async def command(device: str, body: CommandIn, ctx: Command) -> dict[str, Any]:
    """Check the tag's write permission and limits, write, read back, record who asked."""
    gw = ctx.platform.gateways.gateway_for(ctx.tenant_id, device)
    request = CommandRequest(
        device=device,
        tag=body.tag,
        value=body.value,
        requested_by=ctx.username,
        role=ctx.role,
        tenant_id=ctx.tenant_id,
        reason=body.reason,
    )
    try:
        record = await gw.commands.execute(request)
    except GongyunError as exc:
        await ctx.audit("device.command", f"{device}/{body.tag}", "failure", value=body.value, error=exc.code)
        await ctx.session.commit()
        raise
    await ctx.audit("device.command", f"{device}/{body.tag}", value=body.value, status=record.status)
    return asdict(record)


class RemoteCommandIn(CommandIn):
    """A write to one tag of a device behind a remote (Sparkplug B) gateway."""

    device: str = Field(min_length=1, max_length=100, pattern=r"^[^/#+]+$")


_SPARKPLUG_ID = r"^[^/#+]{1,64}$"


@router.post(
    "/gateways/{group}/{node}/commands", summary="Write a value to a device tag behind a remote gateway"
)
async def remote_command(
    group: Annotated[str, Path(pattern=_SPARKPLUG_ID)],
    node: Annotated[str, Path(pattern=_SPARKPLUG_ID)],
    body: RemoteCommandIn,
    ctx: Command,
) -> dict[str, Any]:
    """Send an NCMD (signed with ``command_secret``) through the tenant's receiver; the gateway checks
    role, tenant, signature, the tag's write permission and limits, writes and reads back."""
    key, settings = f"{group}/{node}", ctx.platform.settings
    receiver = next(
        (
            r
            for r, _task in ctx.platform.gateways.receivers
            if r.tenant == ctx.tenant_id and r.host.group == group
        ),
        None,
    )
    if receiver is None or all(gw.name != key for gw in ctx.platform.gateways.remote.of(ctx.tenant_id)):
        raise NotFound(f"no remote gateway {key}")
    props = {
        "requested_by": ctx.actor,
        "role": ctx.role.value,
        "tenant": settings.sparkplug_groups[group],
        "reason": body.reason,
    }
    if settings.command_secret is not None:
        secret = settings.command_secret.get_secret_value()
        props = sign_command(secret, key, body.device, body.tag, body.value, props)
    target = f"{key}/{body.device}/{body.tag}"
    try:
        result = await receiver.command(key, body.device, body.tag, body.value, props)
    except TimeoutError:
        result = {
            "status": "unconfirmed",
            "code": CommandNotConfirmed.code,
            "detail": "the gateway did not answer",
        }
    if result.get("status") != "confirmed":
        code = str(result.get("code") or CommandNotConfirmed.code)
        await ctx.audit("device.command", target, "failure", value=body.value, error=code, remote=True)
        await ctx.session.commit()
        error = CommandRefused if code == CommandRefused.code else CommandNotConfirmed
        raise error(f"{key}: {result.get('detail') or result.get('status')}")
    await ctx.audit("device.command", target, value=body.value, status="confirmed", remote=True)
    return result


@router.get("/devices/commands", summary="Command history of the tenant's gateways")
async def command_history(ctx: Read) -> list[dict[str, Any]]:
    """Every command this process's gateways executed for the tenant, newest first."""
    records = [
        asdict(r)
        for gw in ctx.platform.gateways.of(ctx.tenant_id)
        for r in gw.commands.history
        if r.tenant_id in (None, ctx.tenant_id)
    ]
    return sorted(records, key=lambda r: r["at"], reverse=True)


@router.post("/demo/faults", summary="Inject a fault into the virtual factory")
async def inject_fault(body: FaultIn, ctx: Engineer) -> dict[str, str]:
    """Start bearing wear, clogging, tool wear ... in a simulated machine (demo only)."""
    demo = ctx.platform.demo
    if demo is None or demo.tenant_id != ctx.tenant_id:
        raise NotFound("the virtual factory is not running for this tenant")
    demo.inject(body.machine, body.fault, body.rate)
    await ctx.audit("demo.fault", body.machine, fault=body.fault)
    return {"machine": body.machine, "fault": body.fault, "status": "injected"}


@router.get("/demo/machines", summary="The virtual factory's machines and their true time to failure")
async def demo_machines(ctx: Read) -> list[dict[str, Any]]:
    """Each simulated machine's state; the pump's wear and its true time to failure (demo only)."""
    demo = ctx.platform.demo
    if demo is None or demo.tenant_id != ctx.tenant_id:
        raise NotFound("the virtual factory is not running for this tenant")
    return demo.machines()
