"""The platform's services lent to apps (:class:`gongyun.apps.services.AppServices`), built here.

Part of the composition root: it joins the assets (devices, tags with their identifiers), the
telemetry (ingest, store) and the alarms (rules, handed to the engine as commands) for apps, which
see none of those rooms' services directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from gongyun.alarms import commands, repo
from gongyun.alarms.models import AlarmRuleRow
from gongyun.alarms.rules import RuleSpec
from gongyun.assets import crud
from gongyun.assets.models import Device
from gongyun.assets.schemas import DeviceIn, TagIn
from gongyun.core.types import Sample, TagRef
from gongyun.errors import InvalidInput, NotFound, ValidationFailed
from gongyun.platform.catalog import announce_change
from gongyun.platform.container import Platform
from gongyun.platform.data import TelemetryService
from gongyun.telemetry.ingest import IngestResult
from gongyun.telemetry.store import TimeSeriesStore
from gongyun.telemetry.store.base import Point, from_us, to_us

log = logging.getLogger("gongyun.platform.appservices")
_RULE = TypeAdapter(RuleSpec)
LEADER_POLL_S = 0.5


class PlatformAppServices:
    """:class:`AppServices` over a running platform whose process runs platform data."""

    def __init__(self, platform: Platform, telemetry: TelemetryService) -> None:
        self._platform = platform
        self._telemetry = telemetry

    @property
    def store(self) -> TimeSeriesStore:
        """The time-series store of this process."""
        return self._telemetry.store

    @property
    def leader(self) -> bool:
        """True while the alarm engine runs in this process."""
        host = self._telemetry.host
        return host.local is not None if host is not None else True

    async def wait_leader(self) -> None:
        """Poll the election until this process leads."""
        while not self.leader:  # noqa: ASYNC110 (the election offers no event to wait on)
            await asyncio.sleep(LEADER_POLL_S)

    async def ensure_device(self, tenant_id: str, name: str, *, equipment_id: str | None = None) -> str:
        """The device's id, created when missing (with its identifier), announced to every process."""
        async with self._platform.db.session() as session:
            q = select(Device.id).where(Device.tenant_id == tenant_id, Device.name == name)
            found = (await session.execute(q)).scalar()
            if found is not None:
                return str(found)
            dev = await crud.create_device(
                session,
                tenant_id,
                DeviceIn(name=name, equipment_id=equipment_id),
                minter=self._platform.objects,
            )
            device_id = dev.id
            await session.commit()
        await announce_change(self._platform, tenant_id)
        return device_id

    async def ensure_tag(
        self,
        tenant_id: str,
        device: str,
        tag: str,
        *,
        unit: str | None = None,
        description: str = "",
        low: float | None = None,
        high: float | None = None,
    ) -> str:
        """``device/tag``, created as a float tag when missing, announced to every process."""
        ref = f"{device}/{tag}"
        async with self._platform.db.session() as session:
            if await crud.find_tag(session, tenant_id, ref) is not None:
                return ref
            q = select(Device.id).where(Device.tenant_id == tenant_id, Device.name == device)
            device_id = (await session.execute(q)).scalar()
            if device_id is None:
                raise NotFound(f"device {device!r} not found (ensure_device first)")
            data = TagIn(name=tag, unit=unit, description=description, low=low, high=high)
            await crud.create_tag(session, tenant_id, str(device_id), data, minter=self._platform.objects)
            await session.commit()
        await announce_change(self._platform, tenant_id)
        return ref

    async def write(self, tenant_id: str, points: Sequence[tuple[str, datetime, float]]) -> IngestResult:
        """Ingest the points; InvalidInput naming every rejection (the accepted ones are stored)."""
        samples = [Sample(TagRef.parse(tag), float(value), ts) for tag, ts, value in points]
        result = await self._telemetry.ingestor.ingest(tenant_id, samples)
        if result.rejected:
            raise InvalidInput(
                f"{len(result.rejected)} of {len(samples)} points refused",
                rejected=[r.to_dict() for r in result.rejected],
            )
        return result

    async def read(
        self, tenant_id: str, tag: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Stored values of one tag in [start, end)."""
        pts = await self._telemetry.store.raw(tenant_id, tag, to_us(start), to_us(end))
        return [(from_us(p.ts), p.value) for p in pts]

    async def latest(self, tenant_id: str, tags: Sequence[str]) -> dict[str, tuple[datetime, float]]:
        """The newest stored value of each tag."""
        found = await self._telemetry.store.latest(tenant_id, list(tags))
        return {tag: (from_us(p.ts), p.value) for tag, p in found.items()}

    async def listen(self) -> AsyncIterator[tuple[str, list[Point]]]:
        """Stored batches from now on (while a slow consumer's queue is full, new batches are
        dropped for it: ingest never waits for an app)."""
        queue = self._telemetry.listen(maxsize=10_000)
        try:
            while True:
                yield await queue.get()
        finally:
            self._telemetry.unlisten(queue)

    async def ensure_rule(self, tenant_id: str, spec: dict[str, Any]) -> str:
        """Create or replace the tenant's rule of the same name, and have the engine reload it."""
        try:
            parsed = _RULE.validate_python(spec)
        except ValidationError as exc:
            raise ValidationFailed(f"alarm rule refused: {exc.errors()[0]['msg']}") from exc
        async with self._platform.db.session() as session:
            q = select(AlarmRuleRow.id).where(
                AlarmRuleRow.tenant_id == tenant_id, AlarmRuleRow.name == parsed.name
            )
            existing = (await session.execute(q)).scalar()
            if existing is None:
                row = await repo.create_rule(session, tenant_id, parsed)
            elif repo.rule_spec(await repo.get_rule(session, tenant_id, str(existing))) == parsed:
                return str(existing)
            else:
                row = await repo.update_rule(session, tenant_id, str(existing), parsed)
            rule_id = row.id
            command = await commands.create(session, tenant_id, "reload_rule", rule_id, "app")
            await session.commit()
        if self._telemetry.tags is not None:  # points of the rule's tags go to the engine from now on
            await self._telemetry.tags.refresh()
        engine = self._telemetry.host.local if self._telemetry.host is not None else self._telemetry.engine
        try:
            await commands.dispatch(self._platform.bus, command, engine)
        except Exception:  # the row is committed: the engine's sweep applies it
            log.exception("the alarm engine failed on command %s; its sweep will apply it", command.id)
        return rule_id
