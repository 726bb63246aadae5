"""Between the routes, the worker and the SPC domain: chart definitions, data, limits, violations."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, StrictFloat, StrictInt, ValidationError, model_validator
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps import AppServices, IsoTime
from gongyun.apps.quality.errors import SpcInputInvalid
from gongyun.apps.quality.inspection_window import aware, read_inspections
from gongyun.apps.quality.spc import (
    ALL_RULES,
    ChartKind,
    ChartResult,
    ControlLimits,
    RuleSet,
    by_count,
    by_lot,
    by_time_window,
    evaluate,
    phase1,
)
from gongyun.apps.quality.spc.charts import AttributeData, Data, attribute_data
from gongyun.apps.quality.spc.rules import names
from gongyun.apps.quality.spc.subgroups import Subgroups
from gongyun.apps.quality.tables import charts, limits, violations
from gongyun.apps.quality.window import LIVE_POINTS, LeftOut, count_points, cut_point, last_before
from gongyun.errors import NotFound

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Subgrouping(BaseModel):
    """How measurements form subgroups."""

    by: Literal["count", "time", "lot"] = "count"
    size: StrictInt = Field(default=5, ge=1, le=1000)
    window_s: StrictFloat = Field(default=60.0, gt=0)
    lot_tag: str | None = None


class SpecLimits(BaseModel):
    """Specification limits (either may be absent) and the target."""

    lsl: StrictFloat | None = None
    usl: StrictFloat | None = None
    target: StrictFloat | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SpecLimits:
        if self.lsl is not None and self.usl is not None and not self.lsl < self.usl:
            raise SpcInputInvalid(
                f"specification limits reversed or equal: LSL {self.lsl} must be below USL {self.usl}",
                reason="spec_limits",
            )
        return self


class ChartIn(BaseModel):
    """A new control chart."""

    name: str = Field(min_length=1, max_length=200)
    kind: ChartKind
    source: Literal["tag", "inspection"] = "tag"
    tag: str | None = Field(default=None, pattern=r"^[^/\s]+/[^\s]+$")
    characteristic: str | None = Field(default=None, max_length=200)
    subgroup: Subgrouping = Subgrouping()
    rules: list[str] = Field(default_factory=lambda: list(ALL_RULES[:8]))
    params: dict[str, StrictFloat] = Field(default_factory=dict)
    spec: SpecLimits = SpecLimits()

    @model_validator(mode="after")
    def _consistent(self) -> ChartIn:
        RuleSet.of(self.rules)
        if self.source == "tag" and not self.tag:
            raise SpcInputInvalid("a chart on a tag needs the tag", reason="source")
        if self.source == "inspection" and not self.characteristic:
            raise SpcInputInvalid("a chart on inspections needs the characteristic", reason="source")
        if self.kind.attribute and self.source == "tag":
            raise SpcInputInvalid("attribute charts are drawn from inspection counts", reason="source")
        needs_table = self.kind in (ChartKind.XBAR_R, ChartKind.XBAR_S)
        if needs_table and self.subgroup.by == "count" and not 2 <= self.subgroup.size <= 25:
            raise SpcInputInvalid(
                f"subgroup size {self.subgroup.size} is outside 2..25, the range of the constant tables",
                reason="subgroup_size",
            )
        if self.kind == ChartKind.I_MR and self.subgroup.by == "count" and self.subgroup.size != 1:
            raise SpcInputInvalid(
                "the I-MR chart plots single values: subgroup size 1", reason="subgroup_size"
            )
        if self.subgroup.by == "lot" and self.source == "tag" and not self.subgroup.lot_tag:
            raise SpcInputInvalid("subgroups by lot on a tag need the lot tag", reason="subgroup")
        return self


class InspectionIn(BaseModel):
    """One measurement (variables) or one sample's count (attributes) for a lot."""

    lot: str = Field(min_length=1, max_length=200)
    characteristic: str = Field(min_length=1, max_length=200)
    value: StrictFloat | None = None
    sample_size: StrictFloat | None = Field(default=None, gt=0)
    defects: StrictFloat | None = Field(default=None, ge=0)
    recorded_at: IsoTime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> InspectionIn:
        if self.value is None and self.defects is None:
            raise SpcInputInvalid("an inspection records a value or a defect count", reason="inspection")
        if self.defects is not None and self.sample_size is not None and self.defects > self.sample_size:
            raise SpcInputInvalid(
                f"lot {self.lot}: {self.defects:g} defectives in a sample of {self.sample_size:g}",
                reason="count_exceeds_sample",
            )
        return self


def new_id() -> str:
    """A fresh row id."""
    return uuid.uuid4().hex


def us(dt: datetime) -> int:
    """An aware datetime as µs since the epoch."""
    return (dt - _EPOCH) // timedelta(microseconds=1)


def iso(ts_us: int) -> str:
    """µs since the epoch as ISO 8601."""
    return (_EPOCH + timedelta(microseconds=int(ts_us))).isoformat()


async def chart_row(session: AsyncSession, tenant: str, chart_id: str) -> Mapping[str, Any]:
    """A chart of the tenant (NotFound otherwise, also for another tenant's)."""
    row = (
        (await session.execute(select(charts).where(charts.c.id == chart_id, charts.c.tenant_id == tenant)))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no chart {chart_id}")
    return dict(row)


async def current_limits(session: AsyncSession, tenant: str, chart_id: str) -> ControlLimits | None:
    """The latest frozen limit version of a chart."""
    row = (
        await session.execute(
            select(limits.c.limits)
            .where(limits.c.chart_id == chart_id, limits.c.tenant_id == tenant)
            .order_by(limits.c.version.desc())
            .limit(1)
        )
    ).first()
    return ControlLimits.from_dict(row[0]) if row else None


async def _tag_series(
    services: AppServices, tenant: str, tag: str, start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray]:
    pts = await services.store.raw(tenant, tag, us(start), us(end))
    return (
        np.fromiter((p.ts for p in pts), np.int64, len(pts)),
        np.fromiter((p.value for p in pts), np.float64, len(pts)),
    )


async def chart_data(
    session: AsyncSession,
    services: AppServices,
    tenant: str,
    chart: Mapping[str, Any],
    start: datetime,
    end: datetime,
    rollups: bool = True,
    max_points: int | None = None,
) -> tuple[Data, list[int], LeftOut | None]:
    """The chart's subgroups (or attribute samples) in [start, end), each one's time (µs), and
    what a bounded read left out.

    Subgroups by a time window of whole minutes come from the store's 1 min or 1 h rollups
    (mean = avg, range = max - min, size = count) for the charts that need no more than that,
    so a month of 1 Hz data is read as rollup rows, not raw points. Other charts on a tag read
    raw points; with ``max_points`` only the newest that many (see ``window``)."""
    kind = ChartKind(chart["kind"])
    sg = Subgrouping.model_validate(chart["subgroup"])
    lots: list[str] | None = None
    if chart["source"] == "inspection":
        rows, left = await read_inspections(
            session,
            tenant,
            str(chart["characteristic"]),
            start,
            end,
            attribute=kind.attribute,
            by=sg.by,
            window_us=int(sg.window_s * US),
            max_rows=max_points,
        )
        if kind.attribute:
            per_lot: dict[str, list[float]] = {}
            when: dict[str, int] = {}
            for r in rows:
                acc = per_lot.setdefault(r["lot"], [0.0, 0.0])
                acc[0] += float(r["defects"])
                acc[1] += float(r["sample_size"] or 1.0)
                when.setdefault(r["lot"], us(aware(r["recorded_at"])))
            data = attribute_data([v[0] for v in per_lot.values()], [v[1] for v in per_lot.values()])
            return AttributeData(data.counts, data.sizes, list(per_lot)), list(when.values()), left
        ts = np.array([us(aware(r["recorded_at"])) for r in rows], dtype=np.int64)
        x = np.array([float(r["value"]) for r in rows])
        lots = [str(r["lot"]) for r in rows]
    else:
        tag = str(chart["tag"])
        if rollups and sg.by == "time" and sg.window_s % 60 == 0 and kind in ROLLUP_KINDS:
            windows = None if max_points is None else max(1, max_points // 5)
            return await _from_rollups(services, tenant, tag, sg.window_s, start, end, windows)
        ts, x, lots, left = await _tag_data(services, tenant, tag, sg, start, end, max_points)
    if left is not None and sg.by == "count":
        skip = (-left.points) % sg.size
        g, times = _group(sg, ts[skip:], x[skip:], None)
        first = (left.points + skip) // sg.size
        keys = [str(first + i) for i in range(len(g))]
        return replace(g, keys=keys), times, replace(left, subgroups=first)
    return (*_group(sg, ts, x, lots), left)


async def _tag_data(
    services: AppServices,
    tenant: str,
    tag: str,
    sg: Subgrouping,
    start: datetime,
    end: datetime,
    max_points: int | None,
) -> tuple[np.ndarray, np.ndarray, list[str] | None, LeftOut | None]:
    """A tag's raw points (at most the newest ``max_points``), each one's lot, what was left out."""
    left = None
    if max_points is not None and (sg.by != "time" or (3600 * US) % int(sg.window_s * US) == 0):
        left = await cut_point(services.store, tenant, tag, us(start), us(end), max_points)
    read_from = _EPOCH + timedelta(microseconds=left.before) if left else start
    ts, x = await _tag_series(services, tenant, tag, read_from, end)
    if not (sg.by == "lot" and sg.lot_tag):
        return ts, x, None, left
    lt, lv = await _tag_series(services, tenant, sg.lot_tag, read_from, end)
    prior = await last_before(services.store, tenant, sg.lot_tag, us(read_from))
    if prior is not None:  # the lot in force when the read begins (it began before)
        lt = np.concatenate([np.array([us(read_from) - 1], np.int64), lt])
        lv = np.concatenate([np.array([prior]), lv])
    idx = np.searchsorted(lt, ts, side="right") - 1
    if left is not None:
        idx, ts, x, left = await _drop_first_lot(services, tenant, sg.lot_tag, idx, ts, x, lt, left, start)
    codes, inverse = np.unique(idx, return_inverse=True)
    names = np.array([f"{lv[i]:g}" if i >= 0 else "?" for i in codes], dtype=object)
    return ts, x, list(names[inverse]) if codes.size else [], left


async def _drop_first_lot(
    services: AppServices,
    tenant: str,
    lot_tag: str,
    idx: np.ndarray,
    ts: np.ndarray,
    x: np.ndarray,
    lt: np.ndarray,
    left: LeftOut,
    start: datetime,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, LeftOut]:
    """Leave out the lot that began before the cut (it is incomplete in the read); count the lots
    begun before the cut: lot values recorded in [start, cut), and the one in force at start."""
    a = us(start)
    begun = await count_points(services.store, tenant, lot_tag, a, left.before)
    begun += await last_before(services.store, tenant, lot_tag, a) is not None
    if idx.size and idx[0] >= 0 and lt[idx[0]] < left.before:
        keep = idx != idx[0]
        idx, ts, x = idx[keep], ts[keep], x[keep]
    return idx, ts, x, replace(left, lots=int(begun))


ROLLUP_KINDS = (ChartKind.XBAR_R, ChartKind.EWMA, ChartKind.CUSUM)


async def _from_rollups(
    services: AppServices,
    tenant: str,
    tag: str,
    window_s: float,
    start: datetime,
    end: datetime,
    max_windows: int | None = None,
) -> tuple[Subgroups, list[int], LeftOut | None]:
    width = int(window_s) * US
    a, b = us(start), us(end)
    source: Literal["1m", "1h"] = "1h" if width % (3600 * US) == 0 else "1m"
    res = 3600 * US if source == "1h" else 60 * US
    a0 = a // width * width
    n = max(1, -(-(b - a0) // width))
    left = None
    if max_windows is not None and n > max_windows:  # the newest windows; the rest summarised
        cut = a0 + (n - max_windows) * width
        [rest] = (await services.store.downsample(tenant, tag, a0, cut, 1, source=source)).buckets
        left = LeftOut(cut, rest.count, rest.avg, rest.min, rest.max)
        a0, n = cut, max_windows
    if n > 100_000:
        raise SpcInputInvalid("the window holds more than 100,000 subgroups", reason="window")
    ds = await services.store.downsample(tenant, tag, a0, a0 + n * width, n, source=source)
    rows = [x for x in ds.buckets if x.count > 0 and x.avg is not None]
    if ds.plan.width != width or ds.plan.origin % res:
        raise SpcInputInvalid("the time window does not fit the rollups", reason="window")
    means = np.array([x.avg for x in rows], dtype=np.float64)
    ranges = np.array([(x.max or 0.0) - (x.min or 0.0) for x in rows], dtype=np.float64)
    sizes = np.array([x.count for x in rows], dtype=np.int64)
    starts = np.array([x.start for x in rows], dtype=np.int64)
    if sizes.size and (sizes.min() < 2 or sizes.max() > 25):
        raise SpcInputInvalid(
            f"time windows hold {int(sizes.min())}..{int(sizes.max())} values; X-bar R needs 2..25: "
            "choose another window",
            reason="subgroup_size",
        )
    keys = [str(s) for s in starts]
    return Subgroups.from_stats(means, ranges, sizes, keys, starts), [int(s) for s in starts], left


def _group(
    sg: Subgrouping, ts: np.ndarray, x: np.ndarray, lots: list[str] | None
) -> tuple[Subgroups, list[int]]:
    if sg.by == "time":
        g = by_time_window(ts, x, sg.window_s)
        return g, [int(s) for s in (g.starts if g.starts is not None else [])]
    if sg.by == "lot":
        g = by_lot(lots or [], x)
        if not len(g):
            return g, []
        names, at = np.unique(np.asarray(lots, dtype=object).astype(str), return_index=True)
        first = dict(zip(names.tolist(), ts[at].tolist(), strict=True))
        return g, [int(first[k]) for k in g.keys]
    g = by_count(x, sg.size)
    return g, [int(ts[(i + 1) * sg.size - 1]) for i in range(len(g))]


def result_json(
    chart: Mapping[str, Any],
    res: ChartResult,
    times: Sequence[int],
    lim: ControlLimits | None,
    preview: bool,
    left: LeftOut | None = None,
) -> dict[str, Any]:
    """What the console draws: points, centre line, limits, σ (for the zones), violations."""
    marks = [
        {
            "index": int(i),
            "key": res.keys[i] if i < len(res.keys) else str(i),
            "rules": names(int(res.violations[i])),
        }
        for i in np.flatnonzero(res.violations)
    ]
    return {
        "chart": chart_json(chart),
        "limits": None if lim is None else {**lim.to_dict(), "preview": preview},
        "times": [iso(t) for t in times],
        "keys": res.keys,
        "primary": res.primary.to_dict(),
        "sigma": [float(s) if np.isfinite(s) else None for s in res.sigma],
        "secondary": None if res.secondary is None else res.secondary.to_dict(),
        "violations": marks,
        "empty": res.empty,
        "message": res.message,
        "left_out": None if left is None else left.to_json(iso),
    }


def chart_json(row: Any) -> dict[str, Any]:
    """A chart definition as the API shows it."""
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items() if k != "tenant_id"
    }


async def evaluate_chart(
    session: AsyncSession, services: AppServices, tenant: str, chart_id: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """The chart over [start, end) against its frozen limits (a preview from the window without)."""
    chart = await chart_row(session, tenant, chart_id)
    data, times, left = await chart_data(session, services, tenant, chart, start, end, max_points=LIVE_POINTS)
    lim = await current_limits(session, tenant, chart_id)
    kind = ChartKind(chart["kind"])
    rules = RuleSet.of(chart["rules"])
    if len(data) == 0:
        empty = evaluate(lim or ControlLimits(kind, 0.0, 0.0, None, None, {}, 0), data, rules)
        return result_json(chart, empty, [], lim, False, left)
    preview = lim is None
    if lim is None:
        lim = phase1(kind, data, params=chart["params"])
    return result_json(chart, evaluate(lim, data, rules), times, lim, preview, left)


async def freeze_limits(
    session: AsyncSession,
    services: AppServices,
    tenant: str,
    chart_id: str,
    start: datetime,
    end: datetime,
    exclude: Sequence[int],
    drop_out_of_control: bool,
    by: str,
    note: str,
) -> ControlLimits:
    """Phase I on the baseline [start, end): compute, freeze as the next version, store."""
    chart = await chart_row(session, tenant, chart_id)
    data, _, _ = await chart_data(session, services, tenant, chart, start, end)
    lim = phase1(
        ChartKind(chart["kind"]),
        data,
        exclude=exclude,
        drop_out_of_control=drop_out_of_control,
        params=chart["params"],
    )
    last = await session.scalar(
        select(func.max(limits.c.version)).where(limits.c.chart_id == chart_id, limits.c.tenant_id == tenant)
    )
    frozen = lim.frozen(int(last or 0) + 1, by, note)
    await session.execute(
        insert(limits).values(
            id=new_id(),
            tenant_id=tenant,
            chart_id=chart_id,
            version=frozen.version,
            limits=frozen.to_dict(),
            baseline_start=start,
            baseline_end=end,
            frozen_by=by,
            note=note,
            created_at=datetime.now(UTC),
        )
    )
    return frozen


_CSV_NUMBERS = {"value", "sample_size", "defects"}


def parse_csv(text: str) -> list[InspectionIn]:
    """Inspections from CSV with a header: lot, characteristic, and value or defects (+ sample_size,
    recorded_at); every bad row is named in one refusal."""
    reader = csv.DictReader(io.StringIO(text))
    need = {"lot", "characteristic"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise SpcInputInvalid(
            "the CSV needs a header with lot, characteristic and value or defects", reason="csv"
        )
    out, problems = [], []
    for n, row in enumerate(reader, start=2):
        clean = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
        given = {k: v for k, v in clean.items() if v not in ("", None)}
        bad = []
        for column in _CSV_NUMBERS & given.keys():
            try:  # CSV cells are text; the model takes numbers only (JSON bodies send numbers)
                given[column] = float(given[column])
            except (TypeError, ValueError):
                bad.append(f"{column} {given[column]!r} is not a number")
        if bad:
            problems.append(f"line {n}: " + ", ".join(sorted(bad)))
            continue
        try:
            out.append(InspectionIn.model_validate(given))
        except ValidationError as exc:
            fields = ", ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())
            problems.append(f"line {n}: {fields}")
        except SpcInputInvalid as exc:
            problems.append(f"line {n}: {str(exc).splitlines()[0]}")
    if problems:
        raise SpcInputInvalid("; ".join(problems[:20]), reason="csv", lines=len(problems))
    return out


async def record_violation(
    session: AsyncSession, tenant: str, chart_id: str, key: str, ts: int, rules: list[str], value: float
) -> bool:
    """Keep a violation once per chart and subgroup; True when it is new."""
    exists = await session.scalar(
        select(func.count()).where(violations.c.chart_id == chart_id, violations.c.subgroup == key)
    )
    if exists:
        return False
    await session.execute(
        insert(violations).values(
            id=new_id(),
            tenant_id=tenant,
            chart_id=chart_id,
            subgroup=key,
            ts=_EPOCH + timedelta(microseconds=ts),
            rules=",".join(rules),
            value=value,
            state="open",
            created_at=datetime.now(UTC),
        )
    )
    return True
