"""The CP-SAT models: Gongyun's full model and the plain textbook one it is measured against.

Full model: one start/end per operation with domains tightened by heads and tails and the
incumbent's objective, one optional interval per eligible machine (exactly one present),
no-overlap per machine with the calendar's downtime as fixed intervals, sequence-dependent
setups by a circuit per machine, precedence, release dates, deadlines as assumption literals
(so an infeasible instance names the deadlines that cannot all be met), and the objective.
Plain model: interval variables, no-overlap per machine, precedence, minimise makespan, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gongyun.apps.scheduling.domain.compiled import Compiled
from gongyun.apps.scheduling.domain.model import Objective

if TYPE_CHECKING:
    from ortools.sat.python import cp_model


def cp_model_module() -> Any:
    """``ortools.sat.python.cp_model`` (imported on first use: it is heavy)."""
    try:
        from ortools.sat.python import cp_model
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            "OR-Tools is not installed: "
            "pip install --no-deps -r src/gongyun/apps/scheduling/ortools-requirements.txt"
        ) from exc
    return cp_model


@dataclass
class Weights:
    """Weights of the combined objective."""

    makespan: int = 1
    tardiness: int = 1


@dataclass
class Built:
    """A built model with the variables' proto indices (valid in clones too)."""

    model: cp_model.CpModel
    start: list[int]
    end: list[int]
    alts: list[list[tuple[int, int, int]]]  # per op: (machine, duration, presence literal index or -1)
    makespan: int
    order_end: list[int]
    order_tard: list[int]
    objective: int  # index of the objective variable
    deadline_lits: dict[int, int] = field(default_factory=dict)  # literal index -> order index
    horizon: int = 0


def safe_horizon(c: Compiled) -> int:
    """An upper bound of the makespan of any semi-active schedule."""
    total = sum(max(p for _, p in o) for o in c.opts)
    setup = max(c.setup.values(), default=0) * c.n
    last_down = max((ws[-1][1] for ws in c.down if ws), default=0)  # after it every machine is free
    return max(max(c.release, default=0), last_down) + total + setup


def build(
    c: Compiled,
    objective: Objective = Objective.makespan,
    weights: Weights | None = None,
    upper: int | None = None,
    horizon: int | None = None,
    frozen: Mapping[int, tuple[int, int]] | None = None,
    not_before: int = 0,
    plain: bool = False,
) -> Built:
    """Build the CP-SAT model of ``c``; ``upper`` bounds the objective; ``frozen`` ops are fixed."""
    cpm = cp_model_module()
    weights = weights or Weights()
    frozen = frozen or {}
    model = cpm.CpModel()
    h = horizon if horizon is not None else safe_horizon(c)
    if objective is Objective.makespan and upper is not None and not plain:
        h = min(h, upper)
    lb = 0 if plain else c.trivial_bound()
    starts, ends, alts = [], [], []
    per_machine: list[list[Any]] = [[] for _ in range(c.nm)]
    per_machine_ops: list[list[tuple[int, Any]]] = [[] for _ in range(c.nm)]
    for i in range(c.n):
        if i in frozen:
            m, s = frozen[i]
            p = c.duration(i, m)
            st = model.new_constant(s)
            en = model.new_constant(s + p)
            iv = model.new_fixed_size_interval_var(st, p, f"iv{i}")
            per_machine[m].append(iv)
            per_machine_ops[m].append((i, None))
            starts.append(st)
            ends.append(en)
            alts.append([(m, p, -1)])
            continue
        if plain:
            lo, hi_s, hi_e = 0, h, h
        else:
            lo = max(c.head[i], not_before)
            hi_e = max(lo + c.min_dur[i], h - c.tail[i])
            hi_s = hi_e - c.min_dur[i]
        st = model.new_int_var(lo, hi_s, f"s{i}")
        en = model.new_int_var(lo + c.min_dur[i], hi_e, f"e{i}")
        starts.append(st)
        ends.append(en)
        if len(c.opts[i]) == 1:
            m, p = c.opts[i][0]
            iv = model.new_interval_var(st, p, en, f"iv{i}")
            per_machine[m].append(iv)
            per_machine_ops[m].append((i, None))
            alts.append([(m, p, -1)])
            continue
        lits = []
        row = []
        for m, p in c.opts[i]:
            lit = model.new_bool_var(f"x{i}_{m}")
            iv = model.new_optional_fixed_size_interval_var(st, p, lit, f"iv{i}_{m}")
            model.add(en == st + p).only_enforce_if(lit)
            per_machine[m].append(iv)
            per_machine_ops[m].append((i, lit))
            lits.append(lit)
            row.append((m, p, lit.index))
        model.add_exactly_one(lits)
        alts.append(row)
    for i in range(c.n):
        for p in c.preds[i]:
            model.add(starts[i] >= ends[p])
    for m in range(c.nm):
        ivs = list(per_machine[m])
        for k, (a, b) in enumerate(c.down[m]):
            if a < h + 1 and b > 0:
                ivs.append(model.new_fixed_size_interval_var(a, b - a, f"down{m}_{k}"))
        if len(ivs) > 1:
            model.add_no_overlap(ivs)
        if not plain and c.has_setups and len(per_machine_ops[m]) > 1:
            _setup_circuit(model, c, m, per_machine_ops[m], starts, ends)
    ms = model.new_int_var(lb, max(lb, h), "makespan")
    for i in c.sinks:
        model.add(ms >= ends[i])
    order_end, order_tard, deadline_lits = [], [], {}
    tard_terms = []
    if not plain:
        for k, order in enumerate(c.inst.orders):
            ops = c.order_ops[k]
            if not ops or (order.due is None and order.deadline is None):
                continue
            oe = model.new_int_var(0, h, f"C{k}")
            model.add_max_equality(oe, [ends[i] for i in ops if not c.succs[i]] or [ends[i] for i in ops])
            order_end.append(oe.index)
            if order.due is not None:
                t = model.new_int_var(0, h, f"T{k}")
                model.add(t >= oe - order.due)
                order_tard.append(t.index)
                tard_terms.append(order.weight * t)
            if order.deadline is not None:
                lit = model.new_bool_var(f"deadline{k}")
                model.add(oe <= order.deadline).only_enforce_if(lit)
                model.add_assumption(lit)
                deadline_lits[lit.index] = k
    if objective is Objective.makespan:
        obj = ms
    else:
        bound = weights.makespan * h + weights.tardiness * h * max(1, sum(o.weight for o in c.inst.orders))
        obj = model.new_int_var(0, bound, "objective")
        total = sum(tard_terms) if tard_terms else 0
        if objective is Objective.tardiness:
            model.add(obj == total)
        else:
            model.add(obj == weights.makespan * ms + weights.tardiness * total)
    if upper is not None and not plain:
        model.add(obj <= upper)
    model.minimize(obj)
    return Built(
        model=model,
        start=[v.index for v in starts],
        end=[v.index for v in ends],
        alts=alts,
        makespan=ms.index,
        order_end=order_end,
        order_tard=order_tard,
        objective=obj.index,
        deadline_lits=deadline_lits,
        horizon=h,
    )


def _setup_circuit(
    model: cp_model.CpModel,
    c: Compiled,
    m: int,
    ops: list[tuple[int, Any]],
    starts: list[Any],
    ends: list[Any],
) -> None:
    """Sequence-dependent setups on machine ``m``: a circuit through the operations present on it."""
    arcs: list[tuple[int, int, Any]] = []
    node = {i: k + 1 for k, (i, _) in enumerate(ops)}
    for i, lit in ops:
        arcs.append((0, node[i], model.new_bool_var("")))
        arcs.append((node[i], 0, model.new_bool_var("")))
        if lit is not None:  # an optional operation skips this machine through its self-loop
            arcs.append((node[i], node[i], ~lit))
    arcs.append((0, 0, model.new_bool_var("")))
    for i, _ in ops:
        for j, _ in ops:
            if i == j:
                continue
            arc = model.new_bool_var("")
            arcs.append((node[i], node[j], arc))
            model.add(starts[j] >= ends[i] + c.setup_time(m, i, j)).only_enforce_if(arc)
    model.add_circuit(arcs)


def hint_values(
    c: Compiled, b: Built, machine: list[int], start: list[int], objective: Objective, weights: Weights
) -> dict[int, int]:
    """Variable index -> value for the schedule (machine, start): a complete hint."""
    vals: dict[int, int] = {}
    end = [start[i] + c.duration(i, machine[i]) for i in range(c.n)]
    for i in range(c.n):
        vals[b.start[i]] = start[i]
        vals[b.end[i]] = end[i]
        for m, _, lit in b.alts[i]:
            if lit >= 0:
                vals[lit] = int(m == machine[i])
    ms = max(end, default=0)
    vals[b.makespan] = ms
    tard = 0
    k_end = 0
    k_t = 0
    for k, order in enumerate(c.inst.orders):
        ops = c.order_ops[k]
        if not ops or k_end >= len(b.order_end) or (order.due is None and order.deadline is None):
            continue
        oe = max(end[i] for i in ops)
        vals[b.order_end[k_end]] = oe
        k_end += 1
        if order.due is not None and k_t < len(b.order_tard):
            t = max(0, oe - order.due)
            vals[b.order_tard[k_t]] = t
            k_t += 1
            tard += order.weight * t
    if objective is Objective.tardiness:
        vals[b.objective] = tard
    elif objective is Objective.weighted:
        vals[b.objective] = weights.makespan * ms + weights.tardiness * tard
    for lit in b.deadline_lits:
        vals[lit] = 1
    return vals


def add_hint(model: cp_model.CpModel, vals: Mapping[int, int]) -> None:
    """Add ``vals`` (variable index -> value) as the model's solution hint."""
    proto = model.proto
    proto.solution_hint.vars.clear()
    proto.solution_hint.values.clear()
    proto.solution_hint.vars.extend(vals.keys())
    proto.solution_hint.values.extend(vals.values())


def extract(c: Compiled, b: Built, solver: cp_model.CpSolver) -> tuple[list[int], list[int]]:
    """(machine, start) per operation from a solver's solution."""
    resp = solver.response_proto
    sol = resp.solution
    machine, start = [0] * c.n, [0] * c.n
    for i in range(c.n):
        start[i] = sol[b.start[i]]
        if len(b.alts[i]) == 1:
            machine[i] = b.alts[i][0][0]
        else:
            machine[i] = next(m for m, _, lit in b.alts[i] if sol[lit])
    return machine, start
