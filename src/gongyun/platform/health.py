"""Readiness from a cache: each dependency is probed in the background, ``/readyz`` reads the cache.

A probe that has not answered within ``timeout_s`` counts as down (the first probe, made while
the process starts and serves nothing yet, may take ``startup_timeout_s``: opening the first
connection costs more than a ping on an open one), so an outage of the bus or
the database (a connection that hangs rather than fails) never makes the readiness probe
wait: the API answers from the last states at once, with each state's age. A state older
than ``stale_s`` (the prober itself is stuck) counts as down too. Optional dependencies (the
resolution cache: resolution falls back to the database without it) are reported but do
not make the process unready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from gongyun.core.tasks import cancel_and_wait
from gongyun.errors import GongyunError

log = logging.getLogger("gongyun.platform.health")
UP = Gauge(
    "gongyun_platform_dependency_up", "1 when the last probe of a dependency succeeded", ["dependency"]
)
PROBE_SECONDS = Gauge(
    "gongyun_platform_dependency_probe_seconds", "Duration of the last probe", ["dependency"]
)

Probe = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class DependencyState:
    """The outcome of a dependency's last probe."""

    ok: bool
    detail: str
    checked_at: float  # time.monotonic()
    required: bool = True


class HealthMonitor:
    """Probes dependencies every ``interval_s`` (each bounded by ``timeout_s``) and keeps their states."""

    def __init__(
        self,
        *,
        interval_s: float = 1.0,
        timeout_s: float = 0.5,
        startup_timeout_s: float = 5.0,
        stale_s: float = 5.0,
    ) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.stale_s = stale_s
        self.probes: dict[str, tuple[Probe, bool]] = {}
        self.states: dict[str, DependencyState] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, probe: Probe, *, required: bool = True) -> None:
        """Watch a dependency (``required``: its outage makes the process unready)."""
        self.probes[name] = (probe, required)

    async def _probe(self, name: str, probe: Probe, required: bool, timeout_s: float) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                await probe()
            state = DependencyState(True, "ok", time.monotonic(), required)
        except TimeoutError:
            state = DependencyState(False, f"no answer within {timeout_s:g} s", time.monotonic(), required)
        except GongyunError as exc:
            state = DependencyState(False, exc.message, time.monotonic(), required)
        except Exception as exc:  # a probe may fail in any way; the prober must keep running
            state = DependencyState(False, f"{type(exc).__name__}: {exc}", time.monotonic(), required)
        if self.states.get(name, state).ok != state.ok:
            log.warning("dependency %s is %s: %s", name, "up" if state.ok else "down", state.detail)
        self.states[name] = state
        UP.labels(name).set(1 if state.ok else 0)
        PROBE_SECONDS.labels(name).set(time.monotonic() - started)

    async def probe_all(self, timeout_s: float | None = None) -> None:
        """Probe every dependency once, concurrently, each within ``timeout_s`` (default: the monitor's)."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        await asyncio.gather(*(self._probe(n, p, r, limit) for n, (p, r) in self.probes.items()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.probe_all()

    async def start(self) -> None:
        """Probe once (so the first answer is known), then keep probing in the background."""
        await self.probe_all(self.startup_timeout_s)
        self._task = asyncio.create_task(self._run(), name="platform-health")

    async def stop(self) -> None:
        """Stop probing."""
        await cancel_and_wait(self._task)
        self._task = None

    def report(self) -> dict[str, Any]:
        """The readiness answer: ``status``, each dependency's state (``ok`` or why not) and age.

        ``checks`` holds the required dependencies in the shape probes parsed before
        (``{"database": "ok", "bus": "ok"}``), ``optional`` the others (reported, not counted),
        ``age_s`` each state's age in seconds.
        """
        now = time.monotonic()
        ready = True
        checks: dict[str, str] = {}
        optional: dict[str, str] = {}
        ages: dict[str, float | None] = {}
        for name, (_, required) in self.probes.items():
            state = self.states.get(name)
            if state is None:
                ok, detail, age = False, "not probed yet", None
            else:
                age = round(now - state.checked_at, 3)
                stale = age > self.stale_s
                ok = state.ok and not stale
                detail = f"state is {age:.1f} s old (prober stuck)" if stale else state.detail
            ready = ready and (ok or not required)
            (checks if required else optional)[name] = "ok" if ok else detail
            ages[name] = age
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks, "age_s": ages}
        if optional:
            body["optional"] = optional
        return body
