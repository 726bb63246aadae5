"""An independent check of a schedule against its instance.

It shares no code with the solver: it reads only the instance and the assignments and checks
every operation placed once, eligibility and processing times, release dates, deadlines,
precedence, machine calendars, and no overlap on a machine including sequence-dependent setups.
Frozen operations (rescheduling) can be checked to keep their machine and start.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from gongyun.apps.scheduling.domain.model import Assignment, Instance, Schedule


def violations(
    instance: Instance,
    schedule: Schedule,
    frozen: Mapping[str, Assignment] | None = None,
    limit: int = 50,
) -> list[str]:
    """Every rule ``schedule`` breaks (up to ``limit``), as sentences; empty when it is valid."""
    out: list[str] = []
    ops = {o.id: o for o in instance.operations}
    machines = {m.id: m for m in instance.machines}
    orders = {o.id: o for o in instance.orders}
    placed: dict[str, Assignment] = {}
    for a in schedule.assignments:
        if a.op not in ops:
            out.append(f"{a.op}: not an operation of the instance")
            continue
        if a.op in placed:
            out.append(f"{a.op}: placed twice")
            continue
        placed[a.op] = a
        op = ops[a.op]
        if a.machine not in op.durations:
            out.append(f"{a.op}: machine {a.machine} is not eligible")
        elif a.end - a.start != op.durations[a.machine]:
            out.append(f"{a.op}: runs {a.end - a.start} on {a.machine}, needs {op.durations[a.machine]}")
        if a.start < 0:
            out.append(f"{a.op}: starts before time zero ({a.start})")
        order = orders.get(op.order)
        if order is not None:
            if a.start < order.release:
                out.append(f"{a.op}: starts at {a.start} before its order's release {order.release}")
            if order.deadline is not None and a.end > order.deadline:
                out.append(f"{a.op}: ends at {a.end} after its order's deadline {order.deadline}")
        machine = machines.get(a.machine)
        if machine is not None:
            for w0, w1 in machine.unavailable:
                if a.start < w1 and w0 < a.end:
                    out.append(
                        f"{a.op}: [{a.start}, {a.end}) on {a.machine} overlaps its downtime [{w0}, {w1})"
                    )
    for oid in ops:
        if oid not in placed:
            out.append(f"{oid}: not scheduled")
    for a in placed.values():
        for p in ops[a.op].predecessors:
            pa = placed.get(p)
            if pa is not None and pa.end > a.start:
                out.append(f"{a.op}: starts at {a.start} before its predecessor {p} ends at {pa.end}")
    by_machine: dict[str, list[Assignment]] = {}
    for a in placed.values():
        by_machine.setdefault(a.machine, []).append(a)
    for mid, seq in by_machine.items():
        seq.sort(key=lambda a: (a.start, a.end))
        for x, y in itertools.pairwise(seq):
            fx, fy = ops[x.op].family, ops[y.op].family
            setup = 0
            if fx is not None and fy is not None:
                setup = instance.setup_table.get((mid, fx, fy), 0)
            if y.start < x.end + setup:
                what = f" plus setup {setup}" if setup else ""
                out.append(f"{mid}: {y.op} starts at {y.start} before {x.op} ends at {x.end}{what}")
    for oid, fa in (frozen or {}).items():
        got = placed.get(oid)
        if got is not None and (got.machine, got.start) != (fa.machine, fa.start):
            out.append(f"{oid}: frozen at {fa.machine}@{fa.start} but moved to {got.machine}@{got.start}")
    return out[:limit]


def is_valid(instance: Instance, schedule: Schedule, frozen: Mapping[str, Assignment] | None = None) -> bool:
    """True when ``schedule`` breaks no rule."""
    return not violations(instance, schedule, frozen, limit=1)
