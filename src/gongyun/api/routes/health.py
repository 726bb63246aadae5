"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gongyun import __version__
from gongyun.api.deps import Ctx, PlatformDep, require
from gongyun.errors import ServiceUnavailable
from gongyun.security.rbac import Perm

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """Liveness probe (public)."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="Readiness: database and bus reachable")
async def readyz(platform: PlatformDep) -> JSONResponse:
    """Readiness probe: checks the database and the bus (public)."""
    checks: dict[str, Any] = {}
    ok = True
    for name, probe in (("database", platform.db.ping), ("bus", platform.bus.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except ServiceUnavailable as exc:
            checks[name] = exc.message
            ok = False
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(_ctx: Annotated[Ctx, Depends(require(Perm.security_read))]) -> Response:
    """Prometheus exposition (needs an authenticated caller with security:read, e.g. an auditor key)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
