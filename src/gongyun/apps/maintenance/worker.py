"""Incremental anomaly scoring of live telemetry (once per deployment: the leader's process).

For each tenant's active detector the worker keeps the latest value of each of its tags and the
detector's stream state; each new timestamp in a stored batch gives a score. Scores (relative to
the threshold) and the health index are written as tags of the device ``<equipment>-maintenance``
through ingest, so they trend, alarm and export like any tag; an alarm rule on the health tag raises
alarms through the alarm engine, and an anomaly that persists opens a work order with its evidence.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gongyun.apps import WorkerContext
from gongyun.apps.maintenance import diagnosis, store
from gongyun.apps.maintenance.anomaly import AdaptiveDetector, DetectorStream, top_contributors
from gongyun.apps.maintenance.health import health_index
from gongyun.apps.maintenance.settings import Settings
from gongyun.errors import GongyunError

SUFFIX = "-maintenance"
RELOAD_S = 2.0  # another process's registry changes are seen within this
_GENERATION = [0]  # bumped by this process's registry changes: seen at once


def registry_changed() -> None:
    """Tell this process's scorer that active models changed."""
    _GENERATION[0] += 1


def output_device(equipment: str) -> str:
    """The device that carries an equipment's scores."""
    return f"{equipment}{SUFFIX}"


@dataclass
class Watch:
    """The live state of one active detector."""

    model_id: int
    equipment: str
    det: AdaptiveDetector
    stream: DetectorStream
    latest: dict[str, float] = field(default_factory=dict)
    run: int = 0  # anomalous points in a row
    recent: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=120))
    raw: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=2 * diagnosis.WINDOW))
    ready: bool = False
    raw_ts: int = 0
    raw_count: int = 0  # 1 Hz rows appended so far
    # diagnosis and RUL of the 1 Hz rows up to raw_count: computed once per row, not once per batch
    cached: tuple[int, tuple[str, float] | None, tuple[float, float, float] | None] | None = None


class Scorer:
    """Scores tenants' live telemetry with their active detectors."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.watches: dict[str, dict[int, Watch]] = {}
        self.loaded: dict[str, float] = {}
        self.generation = _GENERATION[0]
        self.warming: asyncio.Task[None] | None = None
        self.enabled: tuple[float, set[str]] = (0.0, set())

    async def _tenants(self) -> set[str]:
        at, found = self.enabled
        if time.monotonic() - at > RELOAD_S:
            found = set(await self.ctx.tenants())
            self.enabled = (time.monotonic(), found)
        return found

    async def _reload(self, tenant: str) -> dict[int, Watch]:
        if self.generation != _GENERATION[0]:
            self.generation = _GENERATION[0]
            self.loaded.clear()
        if time.monotonic() - self.loaded.get(tenant, 0.0) < RELOAD_S:
            return self.watches.get(tenant, {})
        async with self.ctx.acting_in(tenant) as app:
            rows = await store.active_models(app.session, tenant, "anomaly")
        current = self.watches.get(tenant, {})
        fresh: dict[int, Watch] = {}
        for r in rows:
            if r["id"] in current:
                fresh[r["id"]] = current[r["id"]]
                continue
            params = json.loads(r["artifact"])
            params.pop("kind", None)
            det = AdaptiveDetector(**params)
            fresh[r["id"]] = Watch(r["id"], r["equipment"], det, det.stream())
            if diagnosis.pump_columns(det.names) is not None and self.warming is None:
                # a pump is watched: train its classifier and RUL model now, before a fault needs them
                self.warming = asyncio.create_task(asyncio.to_thread(_warm_up))
        self.watches[tenant] = fresh
        self.loaded[tenant] = time.monotonic()
        return fresh

    async def handle(self, tenant: str, points: list[Any]) -> None:
        """Score one stored batch."""
        if tenant not in await self._tenants():
            return
        relevant = [p for p in points if not p.tag.split("/", 1)[0].endswith(SUFFIX)]
        if not relevant:
            return
        watches = await self._reload(tenant)
        for w in watches.values():
            mine = sorted((p for p in relevant if p.tag in w.det.names), key=lambda p: p.ts)
            if mine:
                await self._score(tenant, w, mine)

    async def _score(self, tenant: str, w: Watch, points: list[Any]) -> None:
        out: list[tuple[str, datetime, float]] = []
        dev = output_device(w.equipment)
        last: tuple[float, np.ndarray] | None = None
        i = 0
        while i < len(points):
            ts = points[i].ts
            while i < len(points) and points[i].ts == ts:
                w.latest[points[i].tag] = float(points[i].value)
                i += 1
            if len(w.latest) < len(w.det.names):
                continue
            x = np.array([w.latest[n] for n in w.det.names])
            score, contrib = w.stream.update(x)
            if diagnosis.new_second(ts, w.raw_ts):  # diagnosis and RUL models work on 1 Hz samples
                w.raw.append(x)
                w.raw_ts = ts
                w.raw_count += 1
            if w.stream.seen < w.det.window:
                continue  # a fresh stream's trailing mean is over too few points to be judged yet
            ratio = score / w.det.threshold if w.det.threshold > 0 else 0.0
            w.run = w.run + 1 if ratio > 1 else 0
            w.recent.append((ts, ratio))
            at = datetime.fromtimestamp(ts / 1e6, UTC)
            out += [(f"{dev}/anomaly_score", at, ratio), (f"{dev}/health", at, health_index(ratio) or 0.0)]
            last = (ratio, contrib)
        if last is None:
            return
        async with self.ctx.acting_in(tenant) as app:
            settings = app.settings_as(Settings)
            if not w.ready:
                await self._prepare(tenant, w, settings)
            ratio, contrib = last
            top = top_contributors(w.det.names, contrib)
            await store.upsert_equipment(
                app.session,
                tenant,
                w.equipment,
                score=round(ratio, 4),
                health=health_index(ratio),
                contributors=[{"tag": n, "share": s} for n, s in top],
                updated_at=datetime.now(UTC),
            )
            fault, rul = await _fault_and_rul(w, w.run >= settings.anomaly_persist_points)
            if fault and fault[0] != "normal":
                await store.upsert_equipment(
                    app.session, tenant, w.equipment, fault=fault[0], fault_confidence=round(fault[1], 3)
                )
                await store.set_likely_fault(app.session, tenant, w.equipment, fault)
                if rul is not None:
                    mid, lo, hi = rul
                    at_last = datetime.fromtimestamp(points[-1].ts / 1e6, UTC)
                    out += [
                        (f"{dev}/rul", at_last, mid),
                        (f"{dev}/rul_low", at_last, lo),
                        (f"{dev}/rul_high", at_last, hi),
                    ]
                    await store.upsert_equipment(
                        app.session,
                        tenant,
                        w.equipment,
                        rul=round(mid, 1),
                        rul_low=round(lo, 1),
                        rul_high=round(hi, 1),
                        health=health_index(ratio, mid, diagnosis.RUL_CAP),
                    )
                    if mid < settings.rul_lead_time and not await store.has_open_order(
                        app.session, tenant, w.equipment, "rul"
                    ):
                        await store.open_order(
                            app.session,
                            tenant,
                            equipment_name=w.equipment,
                            title=f"{w.equipment}: {fault[0]}, about {mid:.0f} s to failure",
                            reason="rul",
                            evidence={**_evidence(w, top, fault), "rul": {"rul": mid, "low": lo, "high": hi}},
                            who=f"app:{self.ctx.name}",
                        )
            if w.run >= settings.anomaly_persist_points and not await store.has_open_order(
                app.session, tenant, w.equipment, "anomaly"
            ):
                await store.open_order(
                    app.session,
                    tenant,
                    equipment_name=w.equipment,
                    title=f"{w.equipment}: persistent anomaly ({', '.join(n for n, _ in top)})",
                    reason="anomaly",
                    evidence=_evidence(w, top, fault),
                    who=f"app:{self.ctx.name}",
                )
                await app.audit("work_order.open", w.equipment, reason="anomaly")
        await self.ctx.services.write(tenant, out)

    async def _prepare(self, tenant: str, w: Watch, settings: Settings) -> None:
        dev = output_device(w.equipment)
        await self.ctx.services.ensure_device(tenant, dev)
        await self.ctx.services.ensure_tag(tenant, dev, "anomaly_score", description="score / threshold")
        await self.ctx.services.ensure_tag(tenant, dev, "health", unit="%", description="health index 0-100")
        await self.ctx.services.ensure_tag(tenant, dev, "rul", unit="s", description="remaining useful life")
        for tag, what in (("rul_low", "10 %"), ("rul_high", "90 %")):
            await self.ctx.services.ensure_tag(tenant, dev, tag, unit="s", description=f"RUL {what} quantile")
        await self.ctx.services.ensure_rule(
            tenant,
            {
                "name": f"{w.equipment} health low",
                "kind": "threshold",
                "tag": f"{dev}/health",
                "direction": "low",
                "limit": float(settings.health_alarm_below),
                "deadband": 5.0,
                "message": f"Health of {w.equipment} is low (maintenance app)",
            },
        )
        w.ready = True


async def _diagnose(w: Watch) -> tuple[str, float] | None:
    """The likely fault of a pump whose detector watches the pump signals (None otherwise)."""
    cols = diagnosis.pump_columns(w.det.names)
    if cols is None or len(w.raw) < diagnosis.WINDOW or not w.det.std:
        return None
    window = np.asarray(w.raw)[:, cols]
    mean = np.asarray(w.det.mean)[cols]
    std = np.asarray(w.det.std)[cols]
    clf = await asyncio.to_thread(diagnosis.pump_classifier)
    return clf.predict(diagnosis.stats_features(window, mean, std)[None, :])[0]


async def _fault_and_rul(
    w: Watch, persistent: bool
) -> tuple[tuple[str, float] | None, tuple[float, float, float] | None]:
    """Likely fault and RUL of a persistent anomaly, recomputed only when a new 1 Hz row arrived.

    Both depend on the 1 Hz rows alone; at the gateway's 5 Hz, computing them for every batch cost
    five times the CPU and could make a loaded worker fall behind the live data.
    """
    if not persistent:
        return None, None
    if w.cached is not None and w.cached[0] == w.raw_count:
        return w.cached[1], w.cached[2]
    fault = await _diagnose(w)
    rul = await _pump_rul(w) if fault and fault[0] != "normal" else None
    w.cached = (w.raw_count, fault, rul)
    return fault, rul


def _warm_up() -> None:
    diagnosis.pump_classifier()
    diagnosis.pump_rul()


async def _pump_rul(w: Watch) -> tuple[float, float, float] | None:
    """Seconds to failure of a faulty pump, with its interval (None when not a pump or too early)."""
    cols = diagnosis.pump_columns(w.det.names)
    if cols is None or len(w.raw) < 2 * diagnosis.WINDOW or not w.det.std:
        return None
    values = np.asarray(w.raw)[:, cols]
    x = diagnosis.rul_features(values, len(values), np.asarray(w.det.mean)[cols], np.asarray(w.det.std)[cols])
    model = await asyncio.to_thread(diagnosis.pump_rul)
    return model.predict(x[None, :])[0]


def _evidence(w: Watch, top: list[tuple[str, float]], fault: tuple[str, float] | None) -> dict[str, Any]:
    recent = list(w.recent)
    start, end = recent[0][0], recent[-1][0]
    return {
        "window": {
            "start": datetime.fromtimestamp(start / 1e6, UTC).isoformat(),
            "end": datetime.fromtimestamp(end / 1e6, UTC).isoformat(),
        },
        "scores": [round(r, 3) for _, r in recent[-60:]],
        "contributors": [{"tag": n, "share": s} for n, s in top],
        "tags": w.det.names,
        "model": w.model_id,
        "rul": None,
        "likely_fault": (
            {"fault": fault[0], "confidence": round(fault[1], 3)} if fault and fault[0] != "normal" else None
        ),
    }


async def scorer(ctx: WorkerContext) -> None:
    """The worker: wait for the leadership, then score every stored batch."""
    await ctx.services.wait_leader()
    s = Scorer(ctx)
    async for tenant, points in ctx.services.listen():
        try:
            await s.handle(tenant, points)
        except GongyunError as exc:  # one tenant's trouble does not stop the others
            ctx.log.warning("maintenance scoring in tenant %s: %s", tenant, exc.message)
