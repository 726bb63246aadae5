"""Catalogue changes (devices, tags) announced on the bus, so every process's caches agree.

A process that commits a change publishes ``catalog.changed.<tenant>``; every process (itself
included) holds its own consumer on the short-lived ``CATALOG`` stream and, on each announcement,
drops the tenant's ingest caches (the tag lookups and their "unknown tag" answers). A change is so
seen by every process within the bus's delivery time instead of the caches' 30 s.
"""

from __future__ import annotations

import contextlib
import logging
import uuid

from gongyun.bus import Message
from gongyun.bus.base import NoStreamForSubject
from gongyun.errors import GongyunError, ServiceUnavailable
from gongyun.platform.container import Platform

log = logging.getLogger("gongyun.platform.catalog")

STREAM = "CATALOG"
SUBJECT = "catalog.changed"
MAX_AGE_S = 300  # an announcement only matters to processes running now


def _invalidate(platform: Platform, tenant: str) -> None:
    with contextlib.suppress(ServiceUnavailable):  # no ingest in this process: nothing cached
        platform.running_telemetry().ingestor.invalidate(tenant)


async def announce_change(platform: Platform, tenant: str) -> None:
    """After a committed catalogue change: clear this process's caches and tell the others."""
    _invalidate(platform, tenant)
    try:
        try:
            await platform.bus.publish(f"{SUBJECT}.{tenant}", b"")
        except NoStreamForSubject:  # the stream was removed while this process ran: make it again
            await platform.bus.ensure_stream(STREAM, [f"{SUBJECT}.>"], max_age_s=MAX_AGE_S)
            await platform.bus.publish(f"{SUBJECT}.{tenant}", b"")
    except GongyunError as exc:  # the change is stored; other processes fall back to their cache TTL
        log.warning("could not announce the catalogue change of tenant %s: %s", tenant, exc)


async def start_catalog_watch(platform: Platform) -> None:
    """Apply every process's catalogue announcements here (one consumer of this process's own)."""

    async def handle(msg: Message) -> None:
        _invalidate(platform, msg.subject.removeprefix(f"{SUBJECT}."))
        await msg.ack()

    await platform.bus.ensure_stream(STREAM, [f"{SUBJECT}.>"], max_age_s=MAX_AGE_S)
    sub = await platform.bus.subscribe(
        f"{SUBJECT}.>", durable=f"catalog-{uuid.uuid4().hex[:12]}", handler=handle, forget_after_s=60
    )
    platform.on_close("catalog watch", sub.close)
