"""The flexible tabu search: exact move evaluation, valid schedules, where it applies, used by the solver."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongyun.apps.scheduling.domain.compiled import compile_instance
from gongyun.apps.scheduling.domain.cpsat import Weights
from gongyun.apps.scheduling.domain.dispatch import dispatch
from gongyun.apps.scheduling.domain.fjsp_tabu import FlexibleTabu, applies, flexible_tabu
from gongyun.apps.scheduling.domain.model import Instance, Machine, Objective, Operation, Order
from gongyun.apps.scheduling.domain.solve import SolveOptions, evaluator, solve
from gongyun.apps.scheduling.domain.validate import violations
from tests.apps.scheduling.helpers import factory

FAR = 1e18


@st.composite
def flexible_shops(draw: st.DrawFn) -> Instance:
    """Random flexible shops of job chains: 1-3 eligible machines per operation, release dates."""
    nm = draw(st.integers(2, 5))
    machines = [Machine(f"M{k}") for k in range(nm)]
    orders, ops = [], []
    for j in range(draw(st.integers(2, 6))):
        orders.append(Order(f"O{j}", release=draw(st.integers(0, 8))))
        for k in range(draw(st.integers(1, 5))):
            ms = sorted(set(draw(st.lists(st.integers(0, nm - 1), min_size=1, max_size=3))))
            durations = {f"M{m}": draw(st.integers(1, 9)) for m in ms}
            preds = (f"O{j}.{k - 1}",) if k else ()
            ops.append(Operation(f"O{j}.{k}", f"O{j}", durations, preds))
    return Instance("random-fjs", machines, orders, ops)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flexible_shops(), st.integers(0, 3))
def test_moves_are_evaluated_exactly_and_schedules_are_valid(inst: Instance, seed: int) -> None:
    inst.check()
    c = compile_instance(inst)
    if not applies(c):
        return
    m, s = dispatch(c, "mwkr")
    value = evaluator(c, Objective.makespan, Weights())
    ts = FlexibleTabu(c, m, s, seed=seed)
    for _ in range(60):
        ts.step(1)
        predicted = ts.predicted
        ts.step(1)  # its first act is to evaluate the schedule the previous move made
        if predicted >= 0:
            assert ts.current == predicted
    bm, bs, best = ts.result()
    sched = c.to_schedule(bm, bs)
    assert violations(inst, sched) == []
    assert value(bm, bs) == best <= value(m, s)
    assert best >= c.trivial_bound()


def test_applies_only_to_chains_without_setups_calendars_or_frozen_operations() -> None:
    c = compile_instance(factory())  # setups, a calendar and an assembly tree
    assert not applies(c)
    chain = Instance(
        "chain",
        [Machine("A"), Machine("B")],
        [Order("J")],
        [Operation("J.1", "J", {"A": 2, "B": 3}), Operation("J.2", "J", {"A": 1}, ("J.1",))],
    )
    cc = compile_instance(chain)
    assert applies(cc)
    assert not applies(cc, frozen={0: (0, 0)})
    assert not applies(cc, not_before=5)


def _flexible_variant(seed: int) -> Instance:
    """A 10-job, 5-machine flexible shop with 1-3 machines per operation (deterministic)."""
    import random

    rng = random.Random(seed)
    machines = [Machine(f"M{k}") for k in range(5)]
    orders, ops = [], []
    for j in range(10):
        orders.append(Order(f"J{j}"))
        for k in range(5):
            ms = rng.sample(range(5), rng.randint(1, 3))
            ops.append(
                Operation(
                    f"J{j}.{k}",
                    f"J{j}",
                    {f"M{m}": rng.randint(1, 20) for m in ms},
                    (f"J{j}.{k - 1}",) if k else (),
                )
            )
    return Instance("flex10x5", machines, orders, ops)


def test_search_improves_far_beyond_the_dispatching_rule() -> None:
    inst = _flexible_variant(7)
    c = compile_instance(inst)
    m, s = dispatch(c, "spt")
    start = evaluator(c, Objective.makespan, Weights())(m, s)
    ts = FlexibleTabu(c, m, s, seed=1)
    ts.step(3000)
    assert ts.best <= 0.9 * start
    assert violations(inst, c.to_schedule(*ts.result()[:2])) == []


def test_threads_return_the_best_of_their_searches() -> None:
    import time

    inst = _flexible_variant(3)
    c = compile_instance(inst)
    m, s = dispatch(c, "mwkr")
    bm, bs, best, iterations = flexible_tabu(c, m, s, time.monotonic() + 0.5, threads=2, seed=0)
    assert iterations > 0
    assert evaluator(c, Objective.makespan, Weights())(bm, bs) == best
    assert violations(inst, c.to_schedule(bm, bs)) == []


def test_solver_uses_the_flexible_tabu_search_and_stays_valid() -> None:
    inst = _flexible_variant(11)
    sched = solve(inst, SolveOptions(time_limit=3.0, workers=2))
    assert violations(inst, sched) == []
    assert sched.stats["flexible_tabu"]["iterations"] > 0
    assert sched.makespan <= sched.stats["flexible_tabu"]["value"]
