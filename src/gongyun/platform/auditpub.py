"""Publish the audit checkpoints periodically: to ``audit_publish`` and the platform's identifier.

Every ``audit_publish_interval_s`` the platform signs a checkpoint of every tenant's log, records
them in the platform log, signs the platform log's checkpoint and writes them out of its own
tables: to the operator's files or URLs, and as value 1 (type ``GY_AUDIT_CHECKPOINT``) of the
identifier ``<id_prefix>/gongyun.audit``, so a resolver anywhere can fetch the newest head.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gongyun.core.tasks import cancel_and_wait
from gongyun.idres.objects import PLATFORM_OWNER
from gongyun.idres.registry import Registry
from gongyun.idres.syntax import NA_PREFIX
from gongyun.idres.values import admin_value, string_value
from gongyun.platform.container import Platform
from gongyun.security.audit.publish import Sink, publish
from gongyun.telemetry.sealed import apply_retention

log = logging.getLogger(__name__)

CHECKPOINT_TYPE = "GY_AUDIT_CHECKPOINT"


def audit_handle(id_prefix: str) -> str:
    """The identifier whose value carries the platform log's newest checkpoint."""
    return f"{id_prefix}/gongyun.audit"


def identifier_sink(platform: Platform) -> Sink:
    """A sink that writes the checkpoint as a value of the platform's audit identifier."""
    registry = Registry(platform.db, enforce_prefixes=False)
    id_prefix = platform.settings.id_prefix

    async def sink(_name: str, note: str) -> None:
        values = [string_value(1, CHECKPOINT_TYPE, note), admin_value(f"{NA_PREFIX}/{id_prefix}", 200, 100)]
        await registry.put(PLATFORM_OWNER, audit_handle(id_prefix), values, overwrite=True)

    return sink


async def publish_once(platform: Platform) -> dict[str, str]:
    """Sign and publish every checkpoint now."""
    async with platform.db.session() as session:
        return await publish(session, platform.settings, (identifier_sink(platform),))


async def start_audit_publisher(platform: Platform) -> None:
    """Publish every ``audit_publish_interval_s`` until the platform closes."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(platform.settings.audit_publish_interval_s)
            try:
                await publish_once(platform)
            except Exception:
                log.exception("publishing the audit checkpoints failed")
            try:  # and the core level's retention of sealed points, at the same pace
                await apply_retention(platform.db, int(time.time() * 1_000_000))
            except Exception:
                log.exception("applying the retention of sealed points failed")

    task = asyncio.create_task(loop(), name="audit-publisher")

    async def stop() -> None:
        await cancel_and_wait(task)

    platform.on_close("audit publisher", stop)
