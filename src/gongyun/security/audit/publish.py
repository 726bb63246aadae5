"""Publishing checkpoints outside the database: files, directories, HTTP(S) URLs.

The platform signs a checkpoint of every tenant's tree, records each in the platform's own
log (so the platform log witnesses every tenant's size and root), then signs the platform
log's checkpoint, and writes them all where the operator chose (``audit_publish``). Anyone
holding an earlier published checkpoint detects a history rewritten, cut short or wiped.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.config import Settings
from gongyun.security.audit import chain, tlog
from gongyun.security.audit.keys import audit_signer
from gongyun.security.audit.note import Checkpoint

log = logging.getLogger(__name__)

Sink = Callable[[str, str], Awaitable[None]]  # (name, signed checkpoint)


async def sign_all(session: AsyncSession, settings: Settings) -> dict[str, str]:
    """Checkpoints of every tenant's log, each recorded in the platform log, then the platform's."""
    signer = audit_signer(settings)
    base = settings.effective_audit_origin
    trees = [
        t
        for t in (await session.execute(select(chain.AuditHead.tenant_id))).scalars()
        if t != tlog.PLATFORM_LOG
    ]
    out: dict[str, str] = {}
    for tree in sorted(trees):
        before = await tlog.latest_stored(session, tree)
        note = await tlog.checkpoint(session, tree, signer, base)
        cp = Checkpoint.parse(note[: note.rindex("\n\n") + 1])
        if before is None or before.size != cp.size or before.root != cp.root.hex():
            await chain.record(
                session,
                tlog.PLATFORM_LOG,
                "platform",
                "audit.checkpoint",
                tree,
                size=cp.size,
                root=base64.b64encode(cp.root).decode(),
            )
        out[f"tenant-{tree}"] = note
    out[tlog.PLATFORM_LOG] = await tlog.checkpoint(session, tlog.PLATFORM_LOG, signer, base)
    return out


def _write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def publish_to(target: str, notes: dict[str, str]) -> None:
    """Write ``notes`` to a directory (one file each) or PUT them under an http(s) URL."""
    if target.startswith(("http://", "https://")):
        import httpx

        async with httpx.AsyncClient(timeout=10) as client:
            for name, note in notes.items():
                resp = await client.put(f"{target.rstrip('/')}/{name}.checkpoint", content=note.encode())
                resp.raise_for_status()
        return
    directory = Path(target.removeprefix("file://"))
    for name, note in notes.items():
        _write_file(directory / f"{name}.checkpoint", note)


async def publish(session: AsyncSession, settings: Settings, extra: tuple[Sink, ...] = ()) -> dict[str, str]:
    """Sign every log's checkpoint and publish them to every ``audit_publish`` target and sink."""
    notes = await sign_all(session, settings)
    await session.commit()
    for target in settings.audit_publish:
        try:
            await publish_to(target, notes)
        except Exception:
            log.exception("publishing audit checkpoints to %s failed", target)
    for sink in extra:
        try:
            await sink(tlog.PLATFORM_LOG, notes[tlog.PLATFORM_LOG])
        except Exception:
            log.exception("publishing the audit checkpoint failed")
    return notes
