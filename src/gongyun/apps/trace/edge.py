"""Genealogy captured from the edge: a machine's tags name the batch it makes and the lots it runs.

For each tenant's ``edge_lines`` (settings), the worker follows the batch tag as its points are
stored. When the value changes, the batch the tag held is finished: its time window runs from
the first point with that value to the first point with the next. Every lot a lot tag named in
that window (the last value before it included: a lot tag is reported when it changes) becomes
an item from its template, and each is linked into the batch (kind ``consume``) with the machine
and the window, so the batch's record holds the process data of that window. Runs once per
deployment (the leader); a batch already linked to a lot is not linked twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from gongyun.apps import AppCtx, WorkerContext
from gongyun.apps.trace import store
from gongyun.apps.trace.domain.ids import Minted, Template, mint, parse_template
from gongyun.apps.trace.registration import register
from gongyun.apps.trace.settings import EdgeLine, Settings
from gongyun.apps.trace.tables import links, templates
from gongyun.telemetry.store.base import from_us

REFRESH_S = 2.0
LOOKBACK = timedelta(days=7)
"""How far before a batch a lot tag's last value is looked for."""


def run_start(history: Sequence[tuple[datetime, float]], value: float) -> datetime | None:
    """When the newest run of ``value`` at the end of a tag's history began (None if it is not there)."""
    start = None
    for when, v in reversed(history):
        if v != value:
            break
        start = when
    return start


def lots_in_window(history: Sequence[tuple[datetime, float]], start: datetime, end: datetime) -> list[int]:
    """The lot numbers a lot tag held in [start, end): the last before ``start`` and every one
    within (0 and negative numbers mean no lot loaded)."""
    before = [v for when, v in history if when < start]
    within = [v for when, v in history if start <= when < end]
    seen = ([before[-1]] if before else []) + within
    return [n for n in dict.fromkeys(int(v) for v in seen) if n > 0]


async def _templates(ctx: AppCtx, names: set[str]) -> dict[str, tuple[Template, list[str]]]:
    """The tenant's templates of these names, each with its GS1 links."""
    rows = await ctx.session.execute(
        select(templates.c.name, templates.c.body).where(
            templates.c.tenant_id == ctx.tenant_id, templates.c.name.in_(names)
        )
    )
    return {r.name: (parse_template(r.body), list(r.body.get("links", []))) for r in rows}


async def _ensure(ctx: AppCtx, made: list[tuple[Minted, list[str]]], machine: str) -> dict[str, int]:
    """Ids of these identifiers, registering the missing ones (with their template's links)."""
    found = await store.item_ids(ctx.session, ctx.tenant_id, [m.key for m, _ in made])
    cfg = ctx.settings_as(Settings)
    for m, gs1_links in made:
        if m.key in found:
            continue
        ids = await store.add_items(ctx.session, ctx.tenant_id, [m], machine=machine, attrs={"edge": True})
        found[m.key] = ids[0]
        if cfg.register_identifiers:
            await register(
                ctx.session,
                ctx.db,
                ctx.tenant_id,
                ids,
                [m],
                base_url=cfg.base_url,
                id_prefix=cfg.id_prefix,
                links=gs1_links,
            )
    return found


async def finish_batch(
    ctx: AppCtx, line: EdgeLine, lot_numbers: dict[str, list[int]], batch: int, start: datetime, end: datetime
) -> int:
    """Link the lots each lot tag named in the window into batch ``batch``; the links added."""
    tpls = await _templates(ctx, {line.batch_template, *line.lot_tags.values()})
    missing = {line.batch_template, *line.lot_tags.values()} - tpls.keys()
    if missing:
        raise LookupError(f"templates {sorted(missing)} of edge line {line.machine} do not exist")
    tpl, gs1 = tpls[line.batch_template]
    made = [(mint(tpl, batch, 1)[0], gs1)]
    for tag, numbers in lot_numbers.items():
        tpl, gs1 = tpls[line.lot_tags[tag]]
        made += [(mint(tpl, n, 1)[0], gs1) for n in numbers]
    ids = await _ensure(ctx, made, line.machine)
    child = ids[made[0][0].key]
    parents = [ids[m.key] for m, _ in made[1:]]
    held = set(
        (await ctx.session.execute(select(links.c.parent_id).where(links.c.child_id == child))).scalars()
    )
    pairs = [(p, child) for p in dict.fromkeys(parents) if p not in held]
    if not pairs:
        return 0
    added = await store.add_links(
        ctx.session, ctx.tenant_id, pairs, "consume", machine=line.machine, start_at=start, end_at=end
    )
    await ctx.audit("edge.batch", made[0][0].key, lots=[m.key for m, _ in made[1:]], machine=line.machine)
    return added


class _Lines:
    """Each enabled tenant's edge lines by batch tag (re-read every few seconds)."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.at = 0.0
        self.by_tenant: dict[str, dict[str, EdgeLine]] = {}

    async def get(self, tenant: str) -> dict[str, EdgeLine]:
        if time.monotonic() - self.at > REFRESH_S:
            fresh: dict[str, dict[str, EdgeLine]] = {}
            for t in await self.ctx.tenants():
                async with self.ctx.acting_in(t) as app:
                    fresh[t] = {line.batch_tag: line for line in app.settings_as(Settings).edge_lines}
            self.by_tenant, self.at = fresh, time.monotonic()
        return self.by_tenant.get(tenant, {})


async def capture(ctx: WorkerContext) -> None:
    """Make genealogy links from the batch and lot tags of the tenants' edge lines as they arrive."""
    await ctx.services.wait_leader()
    lines = _Lines(ctx)
    runs: dict[tuple[str, str], tuple[float, datetime]] = {}  # (tenant, batch tag) -> value, since
    async for tenant, points in ctx.services.listen():
        try:
            mine = await lines.get(tenant)
            for p in sorted((p for p in points if p.tag in mine), key=lambda p: p.ts):
                line, when = mine[p.tag], from_us(p.ts)
                run = runs.get((tenant, p.tag))
                if run is None:  # first sight: when did this batch begin?
                    history = await ctx.services.read(tenant, p.tag, when - LOOKBACK, when + timedelta(0, 1))
                    runs[(tenant, p.tag)] = (p.value, run_start(history, p.value) or when)
                    continue
                if p.value == run[0]:
                    continue
                runs[(tenant, p.tag)] = (p.value, when)
                numbers = {}
                for tag in line.lot_tags:
                    history = await ctx.services.read(tenant, tag, run[1] - LOOKBACK, when)
                    numbers[tag] = lots_in_window(history, run[1], when)
                async with ctx.acting_in(tenant) as app:
                    await finish_batch(app, line, numbers, int(run[0]), run[1], when)
        except Exception:
            ctx.log.exception("trace: capturing genealogy from the edge in tenant %s failed", tenant)
