"""Device enrolment over the API: one-time tokens, CSR enrolment, revocation, CA bundle and CRL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from gongyun.api.deps import Ctx, PlatformDep, require
from gongyun.errors import InvalidInput, NotFound, PermissionDenied
from gongyun.platform import Platform
from gongyun.security.audit import record
from gongyun.security.models import Tenant
from gongyun.security.pki.ca import CertificateAuthority, EnrolmentRefused
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/api/v1/pki", tags=["pki"])


def platform_ca(platform: Platform) -> CertificateAuthority:
    """The platform's CA (under ``<data_dir>/pki``)."""
    return CertificateAuthority(platform.settings.ensure_data_dir() / "pki")


class TokenIn(BaseModel):
    """The edge node a token lets one device enrol as."""

    group: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    node: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    ttl_s: int = Field(default=86400, ge=60, le=30 * 86400)


@router.post("/tokens", status_code=201, summary="A one-time enrolment token for an edge node")
async def make_token(
    ctx: Annotated[Ctx, Depends(require(Perm.security_write))], body: TokenIn
) -> dict[str, str]:
    """The token is shown once; the device sends it with its CSR to ``POST /api/v1/pki/enrol``."""
    owner = ctx.platform.settings.sparkplug_groups.get(body.group)
    if owner is not None:
        tenant = await ctx.session.get(Tenant, ctx.tenant_id)
        if tenant is None or tenant.name != owner:
            raise PermissionDenied(f"Sparkplug group {body.group} belongs to another tenant")
    token = platform_ca(ctx.platform).enrolment_token(ctx.tenant_id, body.group, body.node, body.ttl_s)
    await ctx.audit("pki.token", f"{body.group}.{body.node}", ttl_s=body.ttl_s)
    return {"token": token, "identity": f"{body.group}.{body.node}"}


class EnrolIn(BaseModel):
    """A device's enrolment: its token and a PEM CSR."""

    token: str = Field(min_length=10, max_length=200)
    csr: str = Field(min_length=50, max_length=20_000)
    identifier: str = Field(default="", max_length=255)


class EnrolOut(BaseModel):
    """The issued certificate and its chain (PEM)."""

    serial: str
    identity: str
    certificate: str
    chain: str
    not_after: str


@router.post("/enrol", response_model=EnrolOut, summary="Enrol a device: CSR + one-time token (no login)")
async def enrol(platform: PlatformDep, body: EnrolIn) -> EnrolOut:
    """The token is the credential: spent on first use, bound to one tenant and edge node."""
    try:
        issued = platform_ca(platform).enrol(body.token, body.csr.encode(), body.identifier)
    except ValueError as exc:
        raise InvalidInput(f"not a PEM CSR: {exc}") from None
    except EnrolmentRefused:
        raise
    async with platform.db.session() as session:
        await record(
            session,
            issued.tenant_id,
            f"device:{issued.identity}",
            "pki.enrol",
            issued.identity,
            serial=str(issued.serial),
        )
    return EnrolOut(
        serial=str(issued.serial),
        identity=issued.identity,
        certificate=issued.cert_pem.decode(),
        chain=issued.chain_pem.decode(),
        not_after=issued.not_after.isoformat(),
    )


@router.post("/certificates/{serial}/revoke", summary="Revoke a device certificate")
async def revoke(
    ctx: Annotated[Ctx, Depends(require(Perm.security_write))],
    serial: Annotated[str, PathParam(pattern=r"^[0-9]{1,60}$", description="Decimal serial")],
) -> dict[str, str]:
    """Revoke one of the tenant's certificates; it is in the CRL from now on (regenerate the broker's)."""
    try:
        platform_ca(ctx.platform).revoke(int(serial), ctx.tenant_id)
    except NotFound:
        raise NotFound("no such certificate") from None
    await ctx.audit("pki.revoke", serial)
    return {"revoked": serial}


@router.get("/ca", response_class=PlainTextResponse, summary="The CA certificates (PEM)")
async def ca_bundle(platform: PlatformDep) -> str:
    """Root and tenant intermediates: what clients and brokers trust."""
    return platform_ca(platform).bundle().decode()


@router.get("/crl", response_class=PlainTextResponse, summary="The certificate revocation lists (PEM)")
async def crl(platform: PlatformDep) -> str:
    """One CRL per issuing CA, concatenated."""
    return platform_ca(platform).crl_pem().decode()
