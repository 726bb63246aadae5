"""The caller's tenant's audit trail and its verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from gongyun.api.deps import Ctx, require
from gongyun.errors import NotFound, PermissionDenied
from gongyun.security.audit import AuditEvent, tlog, verify
from gongyun.security.audit.keys import audit_signer
from gongyun.security.rbac import Perm, Role

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    """One audit event."""

    model_config = ConfigDict(from_attributes=True)
    seq: int
    ts: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]
    hash: str


class VerificationOut(BaseModel):
    """Whether the chain and the transparency log are intact."""

    ok: bool
    count: int
    head: str
    first_bad_seq: int | None
    reason: str
    tree_ok: bool = True
    tree_size: int = 0
    tree_root: str = ""
    problems: list[str] = []


class InclusionOut(BaseModel):
    """An RFC 9162 inclusion proof of one event (hashes in base64, as in checkpoints)."""

    log: str
    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]


class ConsistencyOut(BaseModel):
    """An RFC 9162 consistency proof between two tree sizes."""

    log: str
    first: int
    second: int
    proof: list[str]


LogQuery = Annotated[str | None, Query(max_length=32, description="'platform' for the platform's log")]


def _log(ctx: Ctx, log: str | None) -> str:
    """The tree a call reads: the caller's tenant's, or the platform's for platform admins."""
    if log is None or log == ctx.tenant_id:
        return ctx.tenant_id
    if log == tlog.PLATFORM_LOG and ctx.role is Role.platform_admin:
        return tlog.PLATFORM_LOG
    if log == tlog.PLATFORM_LOG:
        raise PermissionDenied("the platform's audit log is for platform admins")
    raise NotFound("no such audit log")


async def _size(ctx: Ctx, tree: str, size: int | None) -> int:
    current = await tlog.tree_size(ctx.session, tree)
    if size is None:
        return current
    if size > current:
        raise NotFound(f"the log has {current} events, not {size}")
    return size


@router.get("", response_model=list[AuditEventOut], summary="List audit events, newest first")
async def list_events(
    ctx: Annotated[Ctx, Depends(require(Perm.audit_read))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditEvent]:
    """Audit events of the caller's tenant, newest first, paged by ``before_seq``."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    if action:
        query = query.where(AuditEvent.action == action)
    return list((await ctx.session.execute(query)).scalars())


@router.get("/verify", response_model=VerificationOut, summary="Verify the hash chain and the log")
async def verify_chain(ctx: Annotated[Ctx, Depends(require(Perm.audit_read))]) -> VerificationOut:
    """Recompute the chain and the tree; hold the tree against every checkpoint issued."""
    result = await verify(ctx.session, ctx.tenant_id)
    signer = audit_signer(ctx.platform.settings)
    tree = await tlog.verify_log(ctx.session, ctx.tenant_id, [signer.verifier()])
    return VerificationOut(
        ok=result.ok and tree.ok,
        count=result.count,
        head=result.head,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason or "; ".join(tree.problems),
        tree_ok=tree.ok,
        tree_size=tree.size,
        tree_root=tree.root,
        problems=tree.problems,
    )


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP tlog-checkpoint)",
)
async def latest_checkpoint(
    ctx: Annotated[Ctx, Depends(require(Perm.audit_read))], log: LogQuery = None
) -> str:
    """Sign (and keep) a checkpoint of the log as it is now: origin, size, base64 root, Ed25519 signature."""
    tree = _log(ctx, log)
    settings = ctx.platform.settings
    return await tlog.checkpoint(ctx.session, tree, audit_signer(settings), settings.effective_audit_origin)


@router.get("/key", response_class=PlainTextResponse, summary="The checkpoints' verifier key")
async def verifier_key(ctx: Annotated[Ctx, Depends(require(Perm.audit_read))]) -> str:
    """The signed-note verifier key (name+id+base64 key) that checks the checkpoints."""
    return audit_signer(ctx.platform.settings).verifier().vkey() + "\n"


@router.get("/proof/inclusion", response_model=InclusionOut, summary="Inclusion proof of an event")
async def inclusion(
    ctx: Annotated[Ctx, Depends(require(Perm.audit_read))],
    seq: Annotated[int, Query(ge=1, le=2**62)],
    size: Annotated[int | None, Query(ge=1, le=2**62, description="tree size (default: now)")] = None,
    log: LogQuery = None,
) -> InclusionOut:
    """The audit path of event ``seq`` (leaf ``seq - 1``) in the tree of ``size`` leaves."""
    tree = _log(ctx, log)
    n = await _size(ctx, tree, size)
    if seq > n:
        raise NotFound(f"event {seq} is not in a tree of {n}")
    proof = await tlog.inclusion_proof(ctx.session, tree, seq - 1, n)
    leaf = await tlog.leaf_hash_at(ctx.session, tree, seq - 1)
    return InclusionOut(
        log=tree,
        seq=seq,
        leaf_index=seq - 1,
        tree_size=n,
        leaf_hash=tlog.b64([leaf])[0],
        proof=tlog.b64(proof),
    )


@router.get("/proof/consistency", response_model=ConsistencyOut, summary="Consistency proof between sizes")
async def consistency(
    ctx: Annotated[Ctx, Depends(require(Perm.audit_read))],
    first: Annotated[int, Query(ge=0, le=2**62)],
    second: Annotated[int | None, Query(ge=0, le=2**62, description="default: now")] = None,
    log: LogQuery = None,
) -> ConsistencyOut:
    """Proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    tree = _log(ctx, log)
    n = await _size(ctx, tree, second)
    if first > n:
        raise NotFound(f"the log has {n} events, not {first}")
    proof = await tlog.consistency_proof(ctx.session, tree, first, n)
    return ConsistencyOut(log=tree, first=first, second=n, proof=tlog.b64(proof))


@router.get(
    "/export",
    summary="The whole log as JSON lines (for offline verification)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One JSON document a line",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def export_log(
    ctx: Annotated[Ctx, Depends(require(Perm.audit_read))], log: LogQuery = None
) -> StreamingResponse:
    """A header line, then every event in order: ``gongyun audit verify`` checks it against a checkpoint."""
    tree = _log(ctx, log)
    lines = [line async for line in tlog.export(ctx.session, tree)]
    return StreamingResponse(iter(lines), media_type="application/x-ndjson")
