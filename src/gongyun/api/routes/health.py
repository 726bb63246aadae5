"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gongyun import __version__
from gongyun.api.deps import Ctx, PlatformDep, require
from gongyun.platform.health import HealthMonitor
from gongyun.security.rbac import Perm

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """Liveness probe (public)."""
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    summary="Readiness: database and bus reachable",
    responses={
        503: {
            "description": "A dependency did not answer its last probe (named in `checks`)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def readyz(platform: PlatformDep) -> JSONResponse:
    """Readiness probe (public): the dependencies' states as last probed in the background."""
    health = platform.health
    if health is None:  # a platform not started by start_platform: probe now (bounded)
        health = HealthMonitor()
        health.add("database", platform.db.ping)
        health.add("bus", platform.bus.ping)
        await health.probe_all()
    body = health.report()
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(_ctx: Annotated[Ctx, Depends(require(Perm.security_read))]) -> Response:
    """Prometheus exposition (needs an authenticated caller with security:read, e.g. an auditor key)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
