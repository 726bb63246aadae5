"""Solving: every schedule passes the independent validator; objectives, deadlines, time limits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongyun.apps.scheduling.domain.compiled import compile_instance, critical_path, left_shift
from gongyun.apps.scheduling.domain.dispatch import RULES, dispatch
from gongyun.apps.scheduling.domain.model import (
    Assignment,
    Instance,
    Machine,
    Objective,
    Operation,
    Order,
    Schedule,
    Setup,
    tardiness,
)
from gongyun.apps.scheduling.domain.parsers import parse_jobshop
from gongyun.apps.scheduling.domain.solve import SolveOptions, solve
from gongyun.apps.scheduling.domain.validate import violations
from tests.apps.scheduling.helpers import FT06, factory


def test_ft06_optimal() -> None:
    inst = parse_jobshop(FT06, "ft06")
    seen = []
    s = solve(inst, SolveOptions(time_limit=10, workers=2, on_progress=seen.append))
    assert violations(inst, s) == []
    assert s.value == s.makespan == 55 and s.bound == 55 and s.status == "optimal" and s.gap == 0
    assert seen and seen[-1].value == 55
    plain = solve(inst, SolveOptions(time_limit=10, strategy="plain"))
    assert violations(inst, plain) == [] and plain.value == 55


@pytest.mark.parametrize("objective", list(Objective))
def test_factory_objectives(objective: Objective) -> None:
    inst = factory()
    s = solve(inst, SolveOptions(objective=objective, time_limit=3, workers=2))
    assert violations(inst, s) == [], violations(inst, s)
    if objective is Objective.tardiness:
        assert s.value == tardiness(inst, s)
    if objective is Objective.makespan:
        assert s.value == s.makespan


def test_validator_catches_each_rule() -> None:
    inst = factory()
    c = compile_instance(inst)
    m, st_ = dispatch(c)
    good = c.to_schedule(m, st_)
    assert violations(inst, good) == []
    by = good.by_op()

    def mutate(op: str, **kw: object) -> list[str]:
        a = replace(by[op], **kw)  # type: ignore[arg-type]
        return violations(inst, Schedule("factory", [a if x.op == op else x for x in good.assignments]))

    a4 = by["A.4"]
    assert any("before its predecessor" in v for v in mutate("A.4", start=0, end=a4.end - a4.start))
    assert any("not eligible" in v for v in mutate("A.3", machine="CNC1"))
    assert any("needs" in v for v in mutate("A.3", end=by["A.3"].end + 1))
    b1 = by["B.1"]
    assert any("before its order's release" in v for v in mutate("B.1", start=0, end=b1.end - b1.start))
    c1 = by["C.1"]
    assert any("downtime" in v for v in mutate("C.1", machine="CNC1", start=18, end=25))
    assert any("not scheduled" in v for v in violations(inst, Schedule("f", good.assignments[1:])))
    # two operations at the same time on one machine
    x = by["A.1"]
    clash = [a for a in good.assignments if a.op != "C.1"]
    clash.append(Assignment("C.1", x.machine, x.start, x.start + inst.operations[7].durations[x.machine]))
    assert any("before" in v for v in violations(inst, Schedule("f", clash)))
    # a setup ignored: paint red then blue back to back
    paint = Instance(
        "p",
        [Machine("PAINT")],
        [Order("A"), Order("B")],
        [Operation("a", "A", {"PAINT": 2}, family="red"), Operation("b", "B", {"PAINT": 2}, family="blue")],
        [Setup("PAINT", "red", "blue", 3)],
    )
    tight = Schedule("p", [Assignment("a", "PAINT", 0, 2), Assignment("b", "PAINT", 2, 4)])
    assert any("plus setup 3" in v for v in violations(paint, tight))
    assert violations(paint, solve(paint, SolveOptions(time_limit=2))) == []
    assert c1 is not None


def test_every_rule_and_left_shift_give_valid_schedules() -> None:
    inst = factory()
    c = compile_instance(inst)
    for rule in RULES:
        m, s = dispatch(c, rule)
        assert violations(inst, c.to_schedule(m, s)) == [], rule
        s2 = left_shift(c, m, s)
        assert violations(inst, c.to_schedule(m, s2)) == [], rule
        path = critical_path(c, m, s2)
        assert path and max(s2[i] + c.duration(i, m[i]) for i in path) == c.to_schedule(m, s2).makespan


def test_deadline_infeasible_names_the_order() -> None:
    inst = factory()
    inst.orders[0] = replace(inst.orders[0], deadline=10)  # A needs at least 6 + 4 + 7 after release 0
    s = solve(inst, SolveOptions(time_limit=2))
    assert s.status == "infeasible" and s.assignments == []
    assert any("order A" in r for r in s.stats["reasons"])
    # each deadline alone can be met, together they cannot: CP-SAT names the deadlines involved
    two = Instance(
        "two",
        [Machine("M")],
        [Order("X", deadline=5), Order("Y", deadline=5)],
        [Operation("x", "X", {"M": 4}), Operation("y", "Y", {"M": 4})],
    )
    s2 = solve(two, SolveOptions(time_limit=2))
    assert s2.status == "infeasible"
    assert any("deadline 5 cannot be met" in r for r in s2.stats["reasons"])


def test_time_limit_too_short_still_returns_a_schedule_with_its_gap() -> None:
    inst = parse_jobshop(FT06, "ft06")
    big = Instance(
        "big",
        inst.machines,
        [Order(f"J{k}") for k in range(30)],
        [
            replace(
                op,
                id=f"{k}:{op.id}",
                order=f"J{k * 6 + int(op.order[1:])}",
                predecessors=tuple(f"{k}:{p}" for p in op.predecessors),
            )
            for k in range(5)
            for op in inst.operations
        ],
    )
    big.check()
    s = solve(big, SolveOptions(time_limit=0.3, workers=1))
    assert s.assignments and violations(big, s) == []
    assert s.value is not None and s.bound is not None and s.gap is not None


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    """Random small flexible shops with trees, setups, calendars, releases and due dates."""
    nm = draw(st.integers(1, 4))
    machines = []
    for k in range(nm):
        wins = draw(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 8)), max_size=2))
        machines.append(Machine(f"M{k}", unavailable=tuple((a, a + d) for a, d in wins)))
    n_orders = draw(st.integers(1, 4))
    orders, ops = [], []
    fams = ["f0", "f1", "f2"]
    for j in range(n_orders):
        release = draw(st.integers(0, 10))
        due = draw(st.one_of(st.none(), st.integers(release, release + 40)))
        orders.append(Order(f"O{j}", release=release, due=due, weight=draw(st.integers(0, 3))))
        n_ops = draw(st.integers(1, 4))
        for k in range(n_ops):
            elig = draw(st.lists(st.integers(0, nm - 1), min_size=1, max_size=nm, unique=True))
            durations = {f"M{m}": draw(st.integers(1, 9)) for m in elig}
            preds: tuple[str, ...] = ()
            if k:
                preds = tuple(sorted(set(draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=2)))))
                preds = tuple(f"O{j}.{p}" for p in preds)
            ops.append(Operation(f"O{j}.{k}", f"O{j}", durations, preds, family=draw(st.sampled_from(fams))))
    setups = [
        Setup(f"M{m}", a, b, draw(st.integers(0, 4)))
        for m in range(nm)
        for a in fams
        for b in fams
        if a != b and draw(st.booleans())
    ]
    return Instance("random", machines, orders, ops, setups)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from(list(Objective)))
def test_random_instances_valid(inst: Instance, objective: Objective) -> None:
    inst.check()
    c = compile_instance(inst)
    m, s = dispatch(c, "mwkr", seed=1)
    assert violations(inst, c.to_schedule(m, s)) == []
    sched = solve(inst, SolveOptions(objective=objective, time_limit=0.6, workers=1))
    assert sched.assignments
    assert violations(inst, sched) == [], violations(inst, sched)
    if sched.status == "optimal" and objective is Objective.makespan:
        assert sched.value == sched.makespan
