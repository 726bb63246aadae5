"""Live rescheduling: repair a schedule after a disruption, moving as little as possible.

At time ``now`` operations that have finished or are running keep their machine and start. A
machine breakdown becomes a downtime window on that machine (from the end of the operation
running on it, to the expected end of the repair); a rush order is an order the schedule does
not know yet; an operation running late gets its new expected end. The repair first finds a good
objective (CP-SAT seeded with the right-shifted old schedule), then, holding that objective,
minimises the stability cost: total start shift plus a penalty per operation changing machine.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gongyun.apps.scheduling.domain.compiled import Compiled, compile_instance, machine_sequences
from gongyun.apps.scheduling.domain.cpsat import (
    Weights,
    add_hint,
    build,
    cp_model_module,
    extract,
    hint_values,
)
from gongyun.apps.scheduling.domain.model import Assignment, Instance, Machine, Objective, Schedule
from gongyun.apps.scheduling.domain.search import Progress
from gongyun.apps.scheduling.domain.solve import SolveOptions, evaluator, solve


@dataclass
class Disruption:
    """What happened at ``now``."""

    now: int
    down: dict[str, int] = field(default_factory=dict)  # machine id -> expected end of the repair
    late: dict[str, int] = field(default_factory=dict)  # running operation id -> new expected end
    started: set[str] = field(default_factory=set)  # reported started, though planned at or after now


@dataclass
class Stability:
    """How much a new schedule differs from the old one (operations both contain and not frozen)."""

    moved: int  # operations whose machine or start changed
    machine_changes: int
    total_shift: int  # sum of |start change|

    def as_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return {"moved": self.moved, "machine_changes": self.machine_changes, "total_shift": self.total_shift}


def stability(old: Schedule, new: Schedule, frozen: Mapping[str, Any] | None = None) -> Stability:
    """Stability of ``new`` against ``old``."""
    before = old.by_op()
    moved = changes = shift = 0
    for a in new.assignments:
        b = before.get(a.op)
        if b is None or (frozen and a.op in frozen):
            continue
        if a.machine != b.machine:
            changes += 1
        if a.machine != b.machine or a.start != b.start:
            moved += 1
        shift += abs(a.start - b.start)
    return Stability(moved, changes, shift)


def diff(old: Schedule, new: Schedule) -> list[dict[str, Any]]:
    """Operations whose placement changed: op, old and new machine and start (None when new)."""
    before = old.by_op()
    out = []
    for a in new.assignments:
        b = before.get(a.op)
        if b is None or (a.machine, a.start) != (b.machine, b.start):
            out.append(
                {
                    "op": a.op,
                    "old_machine": b.machine if b else None,
                    "old_start": b.start if b else None,
                    "machine": a.machine,
                    "start": a.start,
                    "end": a.end,
                }
            )
    return out


def situation(
    inst: Instance, old: Schedule, event: Disruption
) -> tuple[Instance, dict[str, tuple[str, int]]]:
    """The instance as it stands at ``event.now`` and the operations that must stay where they are."""
    frozen: dict[str, tuple[str, int]] = {}
    ops = {o.id: o for o in inst.operations}
    new_ops = dict(ops)
    running_end: dict[str, int] = {}
    for a in old.assignments:
        if a.op not in ops or (a.start >= event.now and a.op not in event.started):
            continue
        frozen[a.op] = (a.machine, a.start)
        end = a.end
        if a.op in event.late and event.late[a.op] > a.start:
            end = max(a.end, event.late[a.op])
            op = ops[a.op]
            new_ops[a.op] = replace(op, durations={**op.durations, a.machine: end - a.start})
        running_end[a.machine] = max(running_end.get(a.machine, 0), end)
    machines: list[Machine] = []
    for mach in inst.machines:
        if mach.id in event.down:
            start = max(event.now, running_end.get(mach.id, 0))
            until = event.down[mach.id]
            if until > start:
                mach = replace(mach, unavailable=(*mach.unavailable, (start, until)))  # noqa: PLW2901
        machines.append(mach)
    now_inst = Instance(
        inst.name, machines, list(inst.orders), [new_ops[o.id] for o in inst.operations], list(inst.setups)
    )
    return now_inst, frozen


def right_shift(
    c: Compiled, old: Schedule, frozen: Mapping[str, tuple[str, int]], now: int
) -> tuple[list[int], list[int]]:
    """The old sequences pushed right as needed (a feasible repair that changes no machine)."""
    inst = c.inst
    before = old.by_op()
    machine = [0] * c.n
    start = [0] * c.n
    for i, op in enumerate(inst.operations):
        a = before.get(op.id)
        if a is not None and a.machine in op.durations:
            machine[i], start[i] = inst.machine_index[a.machine], a.start
        else:  # a new operation: the first eligible machine, after everything else
            machine[i], start[i] = c.opts[i][0][0], 1 << 40
    seqs = machine_sequences(c, machine, start)
    prev = [-1] * c.n
    for seq in seqs:
        for x, y in itertools.pairwise(seq):
            prev[y] = x
    fz = {inst.op_index[o] for o in frozen}
    new = [0] * c.n
    done = [False] * c.n
    order = sorted(range(c.n), key=lambda i: (start[i], i))
    pending = list(order)
    while pending:
        rest = []
        for i in pending:
            if any(not done[p] for p in c.preds[i]) or (prev[i] >= 0 and not done[prev[i]]):
                rest.append(i)
                continue
            if i in fz:
                new[i] = start[i]
            else:
                t = max(now, c.release[i], start[i] if start[i] < 1 << 40 else 0)
                for p in c.preds[i]:
                    t = max(t, new[p] + c.duration(p, machine[p]))
                if prev[i] >= 0:
                    pm = prev[i]
                    t = max(t, new[pm] + c.duration(pm, machine[pm]) + c.setup_time(machine[i], pm, i))
                new[i] = c.fit(machine[i], t, c.duration(i, machine[i]))
            done[i] = True
        if len(rest) == len(pending):  # cannot happen for a valid old schedule; fall back to dispatch order
            raise ValueError("the old schedule's sequences contradict the precedence")
        pending = rest
    return machine, new


@dataclass
class RepairResult:
    """A proposed repair, its stability, and the same measures for a from-scratch solve if asked."""

    schedule: Schedule
    stability: Stability
    changes: list[dict[str, Any]]
    frozen: dict[str, tuple[str, int]]
    instance: Instance
    scratch: Schedule | None = None
    scratch_stability: Stability | None = None


def repair(
    inst: Instance,
    old: Schedule,
    event: Disruption,
    options: SolveOptions | None = None,
    compare_scratch: bool = False,
) -> RepairResult:
    """Repair ``old`` after ``event`` (finished and running operations stay in place)."""
    opts = options or SolveOptions(time_limit=5.0)
    cpm = cp_model_module()  # imported before the clock starts
    t0 = time.monotonic()
    now_inst, frozen = situation(inst, old, event)
    now_inst.check()
    c = compile_instance(now_inst)
    objective, weights = opts.objective, opts.weights
    value_of = evaluator(c, objective, weights)
    fz = {now_inst.op_index[o]: (now_inst.machine_index[m], s) for o, (m, s) in frozen.items()}
    machine, start = right_shift(c, old, frozen, event.now)
    base_value = value_of(machine, start)
    b = build(c, objective, weights, upper=base_value, frozen=fz, not_before=event.now)
    # phase 1: the objective
    phase1 = max(0.2, 0.4 * opts.time_limit)
    model = b.model.clone()
    add_hint(model, hint_values(c, b, machine, start, objective, weights))
    solver = cpm.CpSolver()
    solver.parameters.max_time_in_seconds = phase1
    solver.parameters.num_workers = max(1, opts.workers)
    st = solver.solve(model)
    best_m, best_s, best_v = machine, start, base_value
    if st in (cpm.OPTIMAL, cpm.FEASIBLE):
        m1, s1 = extract(c, b, solver)
        v1 = value_of(m1, s1)
        if v1 <= best_v:
            best_m, best_s, best_v = m1, s1, v1
    bound = int(solver.best_objective_bound) if st in (cpm.OPTIMAL, cpm.FEASIBLE) else None
    # phase 2: hold the objective, move as little as possible
    model = b.model.clone()
    iv = model.get_int_var_from_proto_index
    bv = model.get_bool_var_from_proto_index
    model.add(iv(b.objective) <= best_v)
    before = old.by_op()
    terms: list[Any] = []
    penalty = max(1, sum(c.min_dur) // max(1, c.n))
    for i, op in enumerate(now_inst.operations):
        a = before.get(op.id)
        if i in fz or a is None:
            continue
        d = model.new_int_var(0, b.horizon + abs(a.start), f"d{i}")
        model.add(d >= iv(b.start[i]) - a.start)
        model.add(d >= a.start - iv(b.start[i]))
        terms.append(d)
        for m, _, lit in b.alts[i]:
            if lit >= 0 and now_inst.machines[m].id == a.machine:
                terms.append(penalty * (1 - bv(lit)))
    model.minimize(sum(terms))
    hint = hint_values(c, b, best_m, best_s, objective, weights)
    add_hint(model, hint)
    solver = cpm.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.2, opts.time_limit - (time.monotonic() - t0))
    solver.parameters.num_workers = max(1, opts.workers)
    st = solver.solve(model)
    if st in (cpm.OPTIMAL, cpm.FEASIBLE):
        best_m, best_s = extract(c, b, solver)
        best_v = value_of(best_m, best_s)
    if opts.on_progress is not None:
        opts.on_progress(Progress(time.monotonic() - t0, best_v, bound, "repair"))
    sched = c.to_schedule(
        best_m,
        best_s,
        objective=objective,
        value=best_v,
        bound=bound,
        status="feasible",
        solver="repair",
        wall_s=time.monotonic() - t0,
        stats={"right_shift_value": base_value, "now": event.now},
    )
    stab = stability(old, sched, frozen)
    sched.stats["stability"] = stab.as_dict()
    result = RepairResult(sched, stab, diff(old, sched), frozen, now_inst)
    if compare_scratch:
        scratch = solve(
            now_inst,
            replace(opts, time_limit=opts.time_limit, on_progress=None),
            frozen=frozen,
            not_before=event.now,
        )
        result.scratch = scratch
        result.scratch_stability = stability(old, scratch, frozen)
    return result


def fixed_ok(result: RepairResult) -> bool:
    """True when every frozen operation kept its machine and start."""
    by = result.schedule.by_op()
    return all(by[o].machine == m and by[o].start == s for o, (m, s) in result.frozen.items())


__all__ = [
    "Assignment",
    "Disruption",
    "Objective",
    "RepairResult",
    "Stability",
    "Weights",
    "diff",
    "fixed_ok",
    "repair",
    "right_shift",
    "situation",
    "stability",
]
