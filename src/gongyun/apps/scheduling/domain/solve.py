"""Solve an instance: Gongyun's strategy, the full CP-SAT model alone, or the plain textbook model."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from gongyun.apps.scheduling.domain.compiled import Compiled, compile_instance
from gongyun.apps.scheduling.domain.cpsat import (
    Weights,
    add_hint,
    build,
    cp_model_module,
    extract,
    hint_values,
)
from gongyun.apps.scheduling.domain.dispatch import best_dispatch
from gongyun.apps.scheduling.domain.model import Instance, Objective, Schedule
from gongyun.apps.scheduling.domain.search import Incumbent, Lns, Progress, ProgressFn

STRATEGIES = ("gongyun", "cpsat", "plain")
# Share of the time limit for the first full solve and the final one, by kind of shop. With a choice
# of machines the full model stalls early and LNS pays; a pure job shop keeps CP-SAT's own search
# (one full worker, one LNS worker) most of the time and polishes its best schedule at the end.
# Chosen on instances outside the benchmark (abz, orb, swv, yn, ta31-50, flexible variants of them).
FIRST = {True: float(os.environ.get("GY_FIRST", "0.4")), False: float(os.environ.get("GY_FIRST_JS", "1.0"))}
FINAL = {True: float(os.environ.get("GY_FINAL", "0.1")), False: float(os.environ.get("GY_FINAL_JS", "0.0"))}
# Share of the time limit for the tabu search on a pure job shop (makespan), one search per
# worker; CP-SAT, seeded with its best schedule, gets the rest (and all of it once the searches
# went GIVE_UP iterations per operation without a new best: on small shops CP-SAT proves the
# optimum). Set after 60 s runs on abz8, swv01 and yn1 (outside the benchmark).
TABU = float(os.environ.get("GY_TABU", "0.85"))
GIVE_UP = int(os.environ.get("GY_GIVE_UP", "10000"))
# Share of the time limit for the flexible tabu search (fjsp_tabu) on a flexible shop, one search
# per worker; CP-SAT, seeded with its best schedule, then LNS, get the rest.
FLEX_TABU = float(os.environ.get("GY_FLEX_TABU", "0.5"))


@dataclass
class SolveOptions:
    """Settings of a solve: objective, time limit, workers, strategy, progress callback."""

    objective: Objective = Objective.makespan
    weights: Weights = field(default_factory=Weights)
    time_limit: float = 10.0
    workers: int = 2
    seed: int = 0
    strategy: str = "gongyun"
    on_progress: ProgressFn | None = None


def evaluator(c: Compiled, objective: Objective, weights: Weights) -> Any:
    """A function (machine, start) -> objective value."""

    def value(machine: list[int], start: list[int]) -> int:
        end = [start[i] + c.duration(i, machine[i]) for i in range(c.n)]
        ms = max(end, default=0)
        if objective is Objective.makespan:
            return ms
        tard = 0
        for k, order in enumerate(c.inst.orders):
            if order.due is not None and c.order_ops[k]:
                tard += order.weight * max(0, max(end[i] for i in c.order_ops[k]) - order.due)
        if objective is Objective.tardiness:
            return tard
        return weights.makespan * ms + weights.tardiness * tard

    return value


def deadline_reasons(c: Compiled, frozen: Mapping[int, tuple[int, int]] | None = None) -> list[str]:
    """Deadlines that no schedule can meet, by heads and tails alone."""
    out = []
    for k, order in enumerate(c.inst.orders):
        if order.deadline is None or not c.order_ops[k]:
            continue
        earliest = max(c.head[i] + c.min_dur[i] for i in c.order_ops[k])
        if earliest > order.deadline:
            out.append(
                f"order {order.id}: its operations need until {earliest} at the earliest, "
                f"past its deadline {order.deadline}"
            )
    return out


def _meets_deadlines(c: Compiled, machine: list[int], start: list[int]) -> bool:
    for k, order in enumerate(c.inst.orders):
        if order.deadline is not None and c.order_ops[k]:  # noqa: SIM102
            if max(start[i] + c.duration(i, machine[i]) for i in c.order_ops[k]) > order.deadline:
                return False
    return True


class _Callback:
    """Reports each improving solution of a full solve as progress."""

    def __init__(self, t0: float, phase: str, fn: ProgressFn | None, bound_floor: int) -> None:
        cpm = cp_model_module()
        self.t0, self.phase, self.fn, self.floor = t0, phase, fn, bound_floor
        outer = self

        class Cb(cpm.CpSolverSolutionCallback):  # type: ignore[misc,name-defined]
            def on_solution_callback(self) -> None:
                if outer.fn is not None:
                    outer.fn(
                        Progress(
                            time.monotonic() - outer.t0,
                            int(self.objective_value),
                            max(outer.floor, int(self.best_objective_bound)),
                            outer.phase,
                        )
                    )

        self.cb = Cb()


def solve(
    inst: Instance,
    options: SolveOptions | None = None,
    frozen: Mapping[str, tuple[str, int]] | None = None,
    not_before: int = 0,
) -> Schedule:
    """Solve ``inst``; ``frozen`` maps operation ids to the (machine id, start) they must keep."""
    opts = options or SolveOptions()
    cpm = cp_model_module()  # imported before the clock starts: a one-time cost of the process
    # the compiled tabu searches apply to makespan solves from scratch: numba is imported (and
    # their kernels loaded, or compiled once) here, before the clock starts, and only when needed
    searchable = (
        opts.strategy == "gongyun" and opts.objective is Objective.makespan and not frozen and not_before == 0
    )
    ts_mod: ModuleType | None = None
    fj_mod: ModuleType | None = None
    if searchable and all(len(op.durations) == 1 for op in inst.operations):
        ts_mod = importlib.import_module("gongyun.apps.scheduling.domain.tabu")
    elif searchable and FLEX_TABU > 0:
        fj_mod = importlib.import_module("gongyun.apps.scheduling.domain.fjsp_tabu")
        fj_mod.warm_up()
    t0 = time.monotonic()
    deadline = t0 + opts.time_limit
    inst.check()
    c = compile_instance(inst)
    fz = {inst.op_index[o]: (inst.machine_index[m], s) for o, (m, s) in (frozen or {}).items()}
    objective, weights = opts.objective, opts.weights
    value_of = evaluator(c, objective, weights)
    history: list[dict[str, Any]] = []

    def report(p: Progress) -> None:
        history.append({"t": round(p.elapsed, 3), "value": p.value, "bound": p.bound, "phase": p.phase})
        if opts.on_progress is not None:
            opts.on_progress(p)

    floor = c.trivial_bound() if objective is Objective.makespan else 0
    reasons = deadline_reasons(c)
    if reasons:
        return Schedule(
            inst.name,
            [],
            objective,
            None,
            None,
            "infeasible",
            opts.strategy,
            time.monotonic() - t0,
            {"reasons": reasons},
        )

    if opts.strategy == "plain":
        return _plain(c, opts, t0, report)

    machine, start, rule = best_dispatch(c, value_of, frozen=fz, not_before=not_before)
    warm_ok = _meets_deadlines(c, machine, start)
    best_value = value_of(machine, start)
    stats: dict[str, Any] = {"warm_start": rule, "warm_value": best_value}
    report(Progress(time.monotonic() - t0, best_value if warm_ok else None, floor, "dispatch"))
    flexible = any(len(o) > 1 for o in c.opts)
    # With a choice of machines the warm start's value cuts the horizon (the LNS works inside it).
    # A pure job shop keeps the safe horizon: cut to the warm start, CP-SAT found its first
    # schedules later and ended worse on the larger shops (measured on a benchmark subset).
    upper = best_value if warm_ok and (flexible or opts.strategy == "cpsat") else None
    base = build(c, objective, weights, upper=upper, frozen=fz, not_before=not_before)
    bound = floor
    status_name = "feasible" if warm_ok else "unknown"

    def full_solve(
        limit: float, phase: str, m: list[int], s: list[int], hint: bool = True
    ) -> tuple[str, list[int], list[int], int]:
        nonlocal bound
        model = base.model.clone()
        if hint:
            add_hint(model, hint_values(c, base, m, s, objective, weights))
        solver = cpm.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, limit)
        solver.parameters.num_workers = max(1, opts.workers)
        solver.parameters.random_seed = opts.seed
        cb = _Callback(t0, phase, report, floor)
        st = solver.solve(model, cb.cb)
        if st in (cpm.OPTIMAL, cpm.FEASIBLE):
            bound = max(bound, int(solver.best_objective_bound))
            nm, ns = extract(c, base, solver)
            return ("optimal" if st == cpm.OPTIMAL else "feasible"), nm, ns, value_of(nm, ns)
        if st == cpm.INFEASIBLE:
            return "infeasible", m, s, -1
        return "unknown", m, s, -1

    tabu = ts_mod is not None and ts_mod.is_pure_job_shop(c, fz)
    if ts_mod is not None and tabu:
        t_tabu = time.monotonic()
        # a search that stalls (small shops, where CP-SAT proves the optimum) hands over early
        res = ts_mod.parallel_search(
            c,
            start,
            time.monotonic() + TABU * (deadline - time.monotonic()),
            workers=max(1, opts.workers),
            seed=opts.seed,
            floor=floor,
            give_up=GIVE_UP * c.n,
            on_improve=lambda v: report(Progress(time.monotonic() - t0, v, floor, "tabu")),
        )
        stats["tabu"] = {
            "iterations": res.iterations,
            "restarts": res.restarts,
            "relinks": res.stats.get("relinks", 0),
            "value": res.value,
            "seconds": round(time.monotonic() - t_tabu, 3),
        }
        if res.value < best_value and _meets_deadlines(c, machine, res.starts):
            start, best_value, warm_ok = res.starts, res.value, True
        report(Progress(time.monotonic() - t0, best_value if warm_ok else None, floor, "tabu"))
    flex_tabu = fj_mod is not None and flexible and fj_mod.applies(c, fz, not_before)
    if fj_mod is not None and flex_tabu:
        until = time.monotonic() + FLEX_TABU * (deadline - time.monotonic())
        fm, fs, fv, its = fj_mod.flexible_tabu(
            c, machine, start, until, opts.workers, seed=opts.seed, floor=floor
        )
        stats["flexible_tabu"] = {"iterations": its, "value": fv}
        if fv < best_value and _meets_deadlines(c, fm, fs):
            machine, start, best_value, warm_ok = fm, fs, fv, True
            base = build(c, objective, weights, upper=best_value, frozen=fz, not_before=not_before)
        report(Progress(time.monotonic() - t0, best_value if warm_ok else None, floor, "tabu"))
    remaining = deadline - time.monotonic()
    share = 1.0 if tabu else FIRST[flexible]
    first = remaining if opts.strategy == "cpsat" else max(min(remaining, 1.0), share * remaining)
    # no hint here: seeded with a dispatching schedule, CP-SAT stays near it (measured); the warm
    # start still bounds the horizon and seeds the LNS
    st, m2, s2, v2 = full_solve(first, "cp-sat", machine, start, hint=tabu or flex_tabu)
    if st == "infeasible":
        return _infeasible(c, base, opts, t0, machine, start)
    if st in ("optimal", "feasible") and (v2 <= best_value or not warm_ok):
        machine, start, best_value, status_name = m2, s2, v2, st
    if status_name == "optimal":
        bound = best_value

    if opts.strategy == "gongyun" and status_name in ("feasible",) and time.monotonic() < deadline - 0.2:
        inc = Incumbent(machine, start, best_value, bound)

        def lns_progress(phase: str) -> None:
            report(Progress(time.monotonic() - t0, inc.value, bound, phase))

        lns = Lns(
            c, base, inc, value_of, objective, weights, seed=opts.seed, progress=lns_progress, frozen=fz
        )
        final = FINAL[flexible] * opts.time_limit
        lns.run(deadline - final, max(1, opts.workers), stop=lambda: inc.value <= bound)
        machine, start, best_value = inc.machine, inc.start, inc.value
        stats["lns"] = {k: {"tries": t, "improved": i} for k, (t, i) in lns.stats.items()}
        stats["lns_iterations"] = inc.iterations
        if best_value > bound and time.monotonic() < deadline - 0.1:
            st, m2, s2, v2 = full_solve(deadline - time.monotonic(), "cp-sat", machine, start)
            if st in ("optimal", "feasible") and v2 <= best_value:
                machine, start, best_value = m2, s2, v2
                if st == "optimal":
                    bound = best_value
    if best_value <= bound:
        bound = best_value
        status_name = "optimal"
    stats["history"] = history
    if status_name == "unknown":
        stats["note"] = "no schedule meeting every deadline was found in the time limit; best effort shown"
    sched = c.to_schedule(
        machine,
        start,
        objective=objective,
        value=best_value,
        bound=bound,
        status=status_name,
        solver=opts.strategy,
        wall_s=time.monotonic() - t0,
        stats=stats,
    )
    report(Progress(time.monotonic() - t0, best_value, bound, "done"))
    return sched


def _infeasible(
    c: Compiled, base: Any, opts: SolveOptions, t0: float, machine: list[int], start: list[int]
) -> Schedule:
    """An infeasible instance: name the deadlines CP-SAT found cannot all be met."""
    cpm = cp_model_module()
    solver = cpm.CpSolver()
    solver.parameters.max_time_in_seconds = 5.0
    solver.parameters.num_workers = 1
    solver.solve(base.model)
    reasons = []
    for lit in solver.sufficient_assumptions_for_infeasibility():
        k = base.deadline_lits.get(lit)
        if k is not None:
            order = c.inst.orders[k]
            reasons.append(
                f"order {order.id}: deadline {order.deadline} cannot be met together with the others"
            )
    if not reasons:
        reasons.append("the constraints cannot all hold (calendars, frozen operations or deadlines)")
    return Schedule(
        c.inst.name,
        [],
        opts.objective,
        None,
        None,
        "infeasible",
        opts.strategy,
        time.monotonic() - t0,
        {"reasons": reasons},
    )


def _plain(c: Compiled, opts: SolveOptions, t0: float, report: ProgressFn) -> Schedule:
    """The textbook model: intervals, no-overlap, precedence, minimise makespan; no hint, no bounds."""
    cpm = cp_model_module()
    b = build(c, Objective.makespan, plain=True)
    solver = cpm.CpSolver()
    solver.parameters.max_time_in_seconds = opts.time_limit
    solver.parameters.num_workers = max(1, opts.workers)
    solver.parameters.random_seed = opts.seed
    cb = _Callback(t0, "plain", report, 0)
    st = solver.solve(b.model, cb.cb)
    if st not in (cpm.OPTIMAL, cpm.FEASIBLE):
        return Schedule(
            c.inst.name, [], Objective.makespan, None, None, "unknown", "plain", time.monotonic() - t0
        )
    machine, start = extract(c, b, solver)
    value = int(solver.objective_value)
    return c.to_schedule(
        machine,
        start,
        objective=Objective.makespan,
        value=value,
        bound=int(solver.best_objective_bound),
        status="optimal" if st == cpm.OPTIMAL else "feasible",
        solver="plain",
        wall_s=time.monotonic() - t0,
    )
