"""What the maintenance app does on behalf of a caller, shared by its routes and by `gongyun demo`."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gongyun.apps import AppCtx
from gongyun.apps.maintenance import store
from gongyun.apps.maintenance.anomaly import AdaptiveDetector
from gongyun.apps.maintenance.cmapss import Array, Histories
from gongyun.apps.maintenance.errors import DataInvalid, ModelNotFound
from gongyun.apps.maintenance.health import health_index
from gongyun.apps.maintenance.history import (
    Failure,
    after,
    check_runs,
    failures_from_orders,
    resample,
    runs_between,
    to_histories,
)
from gongyun.apps.maintenance.telemetry import align
from gongyun.apps.maintenance.worker import registry_changed


async def learn_detector(
    ctx: AppCtx,
    equipment: str,
    tags: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    window: int = 30,
    activate: bool = True,
) -> dict[str, Any]:
    """Learn and register a detector from the tags' stored values in [start, end) (refused when too short)."""
    if end <= start:
        raise DataInvalid("the baseline window's end must be after its start")
    series = [await ctx.services.read(ctx.tenant_id, tag, start, end) for tag in tags]
    empty = [t for t, s in zip(tags, series, strict=True) if not s]
    if empty:
        raise DataInvalid(f"no stored values in the baseline window for {', '.join(empty)}")
    x = align(series)
    det = AdaptiveDetector(window=window).fit(x, list(tags))
    meta = {
        "tags": list(tags),
        "baseline": {"start": start.isoformat(), "end": end.isoformat(), "points": len(x)},
        "threshold": det.threshold,
        "params": {"window": det.window, "alpha": det.alpha, "gate": det.gate, "margin": det.margin},
    }
    await store.upsert_equipment(ctx.session, ctx.tenant_id, equipment)
    m = await store.register_model(
        ctx.session,
        ctx.tenant_id,
        kind="anomaly",
        equipment_name=equipment,
        algorithm="adaptive",
        meta=meta,
        artifact=json.dumps(det.to_json()),
        who=ctx.actor,
        activate=activate,
    )
    await ctx.audit("model.train", str(m["id"]), kind="anomaly", equipment=equipment, version=m["version"])
    await ctx.session.commit()
    registry_changed()
    return m


async def recorded_failures(ctx: AppCtx, equipment: str) -> list[Failure]:
    """The equipment's failures recorded by closed work orders, oldest first."""
    orders = await store.list_orders(ctx.session, ctx.tenant_id, equipment_name=equipment)
    return failures_from_orders(orders)


async def _rows(ctx: AppCtx, tags: Sequence[str], start: datetime, end: datetime, step_s: float) -> Array:
    until = end + timedelta(microseconds=1)  # the read is [start, end): the failure's instant included
    series = [await ctx.services.read(ctx.tenant_id, tag, start, until) for tag in tags]
    return resample(series, start, end, step_s)


def _train(h: Histories, folds: int, window: int, cap: int, who: str) -> tuple[dict[str, Any], str]:
    from gongyun.apps.maintenance import rul
    from gongyun.apps.maintenance.features import FeatureSpec

    with tempfile.TemporaryDirectory() as tmp:
        model = rul.train_to_directory(
            h, Path(tmp) / "model", folds=folds, who=who, spec=FeatureSpec(window=window), cap=cap
        )
        return model.meta, rul.to_artifact(Path(tmp) / "model")


async def train_rul_from_telemetry(
    ctx: AppCtx,
    equipment: str,
    tags: Sequence[str],
    start: datetime,
    *,
    step_s: float = 10.0,
    window: int = 30,
    cap_s: float = 3600.0,
    folds: int = 0,
    activate: bool = True,
) -> dict[str, Any]:
    """Train the equipment's RUL model on its stored telemetry between recorded failures, register it."""
    await store.upsert_equipment(ctx.session, ctx.tenant_id, equipment)
    failures = await recorded_failures(ctx, equipment)
    runs = runs_between(failures, start)
    rows = [await _rows(ctx, tags, r.start, r.end, step_s) for r in runs]
    check_runs(runs, rows, window, equipment)
    h = to_histories(rows, tags, f"stored telemetry of {equipment}")
    cap = max(2, round(cap_s / step_s))
    folds = min(folds, len(runs)) if folds > 1 else 0
    meta, artifact = await asyncio.to_thread(_train, h, folds, window, cap, ctx.actor)
    slim = {k: v for k, v in meta.items() if k not in {"normaliser", "files", "ridge"}}
    slim["telemetry"] = {
        "equipment": equipment,
        "tags": list(tags),
        "step_s": step_s,
        "cap_s": cap * step_s,
        "start": start.isoformat(),
        "end": runs[-1].end.isoformat(),
        "runs": [
            {
                "start": r.start.isoformat(),
                "failure": r.end.isoformat(),
                "fault": r.failure.fault,
                "steps": len(x),
            }
            for r, x in zip(runs, rows, strict=True)
        ],
        "orders": [r.failure.order for r in runs],
    }
    m = await store.register_model(
        ctx.session,
        ctx.tenant_id,
        kind="rul",
        equipment_name=equipment,
        algorithm=str(meta["algorithm"]),
        meta=slim,
        artifact=artifact,
        who=ctx.actor,
        activate=activate,
    )
    await ctx.audit("model.train", str(m["id"]), kind="rul", equipment=equipment, version=m["version"])
    await ctx.session.commit()
    registry_changed()
    return m


async def predict_rul_from_telemetry(ctx: AppCtx, equipment: str, now: datetime) -> dict[str, Any]:
    """The equipment's RUL in seconds, with its 10-90 % interval, from the telemetry since its last
    recorded failure and its active RUL model; kept on the equipment."""
    from gongyun.apps.maintenance import rul

    active = [
        m for m in await store.active_models(ctx.session, ctx.tenant_id, "rul") if m["equipment"] == equipment
    ]
    if not active or "telemetry" not in (active[0]["meta"] or {}):
        raise ModelNotFound(f"{equipment} has no active RUL model trained from stored telemetry")
    model_row = active[0]
    spec = model_row["meta"]["telemetry"]
    failures = await recorded_failures(ctx, equipment)
    since = after(failures[-1]) if failures else datetime.fromisoformat(spec["end"])
    x = await _rows(ctx, spec["tags"], since, now, float(spec["step_s"]))
    if not len(x):
        raise DataInvalid(
            f"{equipment}: no stored values of {', '.join(spec['tags'])} since {since.isoformat()}"
        )
    h = to_histories([x], spec["tags"], f"stored telemetry of {equipment}")
    model = await asyncio.to_thread(rul.from_artifact, model_row["artifact"])
    [(_, mid, lo, hi)] = await asyncio.to_thread(model.predict_last, h)
    step = float(spec["step_s"])
    out = {"rul": round(mid * step, 1), "low": round(lo * step, 1), "high": round(hi * step, 1)}
    eq = await store.get_equipment(ctx.session, ctx.tenant_id, equipment)
    await store.upsert_equipment(
        ctx.session,
        ctx.tenant_id,
        equipment,
        rul=out["rul"],
        rul_low=out["low"],
        rul_high=out["high"],
        health=health_index(eq.get("score"), out["rul"], float(spec["cap_s"])),
    )
    return {
        **out,
        "since": since.isoformat(),
        "at": now.isoformat(),
        "steps": len(x),
        "model": {"id": model_row["id"], "version": model_row["version"]},
    }
