"""What the platform lends an app beyond its database session: tags, telemetry, alarms, leadership.

An app sees these through ``ctx.services`` (in a request and in a worker). The platform's
composition root implements :class:`AppServices` (``gongyun.platform.appservices``); a process
that runs no platform data (an API-only process) hands apps :data:`UNAVAILABLE`, whose every
call raises ``ServiceUnavailable``.

Everything an app writes goes the way a device's data goes (ingest, rollups, alarm rules, live
views, exports), so an app's scores and flags are tags like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from gongyun.errors import ServiceUnavailable
from gongyun.telemetry.ingest import IngestResult
from gongyun.telemetry.store import TimeSeriesStore
from gongyun.telemetry.store.base import Point

AppPoint = tuple[str, datetime, float]
"""One value an app writes: ``("device/tag", aware datetime, value)``."""


class AppServices(Protocol):
    """The platform's services an app may use (tenant ids are always explicit)."""

    @property
    def store(self) -> TimeSeriesStore:
        """The time-series store, for reads beyond :meth:`read` (downsample, aligned, rollups)."""

    @property
    def leader(self) -> bool:
        """True while this process runs the deployment's alarm engine (always, when embedded)."""

    async def wait_leader(self) -> None:
        """Return once this process holds the leadership (work meant to run once per deployment)."""

    async def ensure_device(self, tenant_id: str, name: str, *, equipment_id: str | None = None) -> str:
        """The id of the tenant's device ``name``, created (bound to ``equipment_id``) when missing."""

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
        """The ``device/tag`` reference of a float tag, created when missing (the device must exist)."""

    async def write(self, tenant_id: str, points: Sequence[AppPoint]) -> IngestResult:
        """Store points through ingest (InvalidInput, listing the rejections, when any is refused)."""

    async def read(
        self, tenant_id: str, tag: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """One tag's stored values in [start, end), oldest first."""

    async def latest(self, tenant_id: str, tags: Sequence[str]) -> dict[str, tuple[datetime, float]]:
        """The newest value of each tag that has one."""

    def listen(self) -> AsyncIterator[tuple[str, list[Point]]]:
        """Every batch stored in this process from now on, as (tenant, points)."""

    async def ensure_rule(self, tenant_id: str, spec: dict[str, Any]) -> str:
        """Create or replace (by name) an alarm rule with the body of ``POST /alarms/rules``; its id."""


class _Unavailable:
    """The services of a process that runs no platform data: every call says so."""

    def _refuse(self) -> ServiceUnavailable:
        return ServiceUnavailable("platform data does not run in this process")

    @property
    def store(self) -> TimeSeriesStore:
        raise self._refuse()

    @property
    def leader(self) -> bool:
        return False

    async def wait_leader(self) -> None:
        raise self._refuse()

    async def ensure_device(self, tenant_id: str, name: str, *, equipment_id: str | None = None) -> str:
        raise self._refuse()

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
        raise self._refuse()

    async def write(self, tenant_id: str, points: Sequence[AppPoint]) -> IngestResult:
        raise self._refuse()

    async def read(
        self, tenant_id: str, tag: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        raise self._refuse()

    async def latest(self, tenant_id: str, tags: Sequence[str]) -> dict[str, tuple[datetime, float]]:
        raise self._refuse()

    def listen(self) -> AsyncIterator[tuple[str, list[Point]]]:
        raise self._refuse()

    async def ensure_rule(self, tenant_id: str, spec: dict[str, Any]) -> str:
        raise self._refuse()


UNAVAILABLE: AppServices = _Unavailable()
