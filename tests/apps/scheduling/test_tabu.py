"""The tabu search of pure job shops: valid schedules, real improvement, used by the solver."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongyun.apps.scheduling.domain.benchmarks import jobshop_instance
from gongyun.apps.scheduling.domain.compiled import compile_instance
from gongyun.apps.scheduling.domain.dispatch import dispatch
from gongyun.apps.scheduling.domain.model import Instance, Machine, Operation, Order
from gongyun.apps.scheduling.domain.solve import SolveOptions, solve
from gongyun.apps.scheduling.domain.tabu import JobShopTabu, is_pure_job_shop, parallel_search
from gongyun.apps.scheduling.domain.validate import violations
from tests.apps.scheduling.helpers import factory

FAR = 1e18  # no time limit: the tests stop the search by its iteration count (load-independent)


@st.composite
def job_shops(draw: st.DrawFn) -> Instance:
    """Random pure job shops: one machine per operation, trees of precedence, release dates."""
    nm = draw(st.integers(1, 5))
    machines = [Machine(f"M{k}") for k in range(nm)]
    orders, ops = [], []
    for j in range(draw(st.integers(1, 6))):
        orders.append(Order(f"O{j}", release=draw(st.integers(0, 10))))
        for k in range(draw(st.integers(1, 5))):
            preds: tuple[str, ...] = ()
            if k:
                picked = sorted(set(draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=2))))
                preds = tuple(f"O{j}.{p}" for p in picked)
            m = draw(st.integers(0, nm - 1))
            ops.append(Operation(f"O{j}.{k}", f"O{j}", {f"M{m}": draw(st.integers(1, 9))}, preds))
    return Instance("random-js", machines, orders, ops)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(job_shops(), st.integers(0, 3))
def test_tabu_schedules_are_valid_and_never_worse(inst: Instance, seed: int) -> None:
    inst.check()
    c = compile_instance(inst)
    assert is_pure_job_shop(c)
    m, s = dispatch(c, "mwkr")
    ts = JobShopTabu(c, s, seed=seed)
    start_value = ts.cmax
    ts.run(FAR, max_iterations=200)
    starts = ts.best_starts()
    sched = c.to_schedule(m, starts)
    assert violations(inst, sched) == []
    assert sched.makespan == ts.best <= start_value
    assert ts.best >= c.trivial_bound()
    # the current sequences after the last move are acyclic too, with the makespan the search holds
    assert ts._evaluate(ts.mp, ts.ms)[0] == ts.cmax >= ts.best


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(job_shops(), st.integers(0, 3))
def test_parallel_searches_give_a_valid_schedule(inst: Instance, seed: int) -> None:
    c = compile_instance(inst)
    m, s = dispatch(c, "spt")
    res = parallel_search(c, s, time.monotonic() + 0.2, workers=2, seed=seed, give_up=500)
    sched = c.to_schedule(m, res.starts)
    assert violations(inst, sched) == []
    assert sched.makespan == res.value <= c.to_schedule(m, s).makespan


def test_parallel_searches_reach_the_optimum_of_ft06_and_la01() -> None:
    inst, _ = jobshop_instance("ft06")
    c = compile_instance(inst)
    JobShopTabu(c, dispatch(c, "spt")[1]).run(FAR, max_iterations=10)  # compiled before the clock
    for name in ("ft06", "la01"):
        inst, best = jobshop_instance(name)
        c = compile_instance(inst)
        m, s = dispatch(c, "spt")
        t0 = time.monotonic()
        res = parallel_search(c, s, t0 + 120, workers=2, floor=best)
        assert res.value == best, name  # the search stops at the floor as soon as it is reached
        assert time.monotonic() - t0 < 30 and res.iterations > 0
        assert violations(inst, c.to_schedule(m, res.starts)) == []


def test_the_search_refuses_a_cyclic_start() -> None:
    machines = [Machine("M0"), Machine("M1")]
    orders = [Order("J0"), Order("J1")]
    ops = [
        Operation("a", "J0", {"M0": 2}),
        Operation("b", "J0", {"M1": 2}, ("a",)),
        Operation("c", "J1", {"M1": 2}),
        Operation("d", "J1", {"M0": 2}, ("c",)),
    ]
    inst = Instance("cyclic", machines, orders, ops)
    inst.check()
    c = compile_instance(inst)
    # d before a on M0 and b before c on M1: d < a < b < c < d
    with pytest.raises(ValueError, match="cycle"):
        JobShopTabu(c, [1, 0, 1, 0])


def test_tabu_improves_ft10_far_beyond_the_dispatching_rule() -> None:
    inst, best = jobshop_instance("ft10")
    c = compile_instance(inst)
    m, s = dispatch(c, "mwkr")
    ts = JobShopTabu(c, s, seed=0)
    first = ts.cmax
    ts.run(FAR, max_iterations=3000)
    sched = c.to_schedule(m, ts.best_starts())
    assert violations(inst, sched) == []
    assert best <= ts.best <= min(first * 0.93, best * 1.08), (first, ts.best)


def test_only_pure_job_shops_take_the_tabu_search() -> None:
    assert not is_pure_job_shop(compile_instance(factory()))  # machine choice, setups, calendars
    inst, _ = jobshop_instance("la01")
    c = compile_instance(inst)
    assert is_pure_job_shop(c) and not is_pure_job_shop(c, {0: (0, 0)})


def test_solver_seeds_cp_sat_with_the_tabu_schedule() -> None:
    inst, best = jobshop_instance("ft10")
    t0 = time.monotonic()
    s = solve(inst, SolveOptions(time_limit=3, workers=2))
    assert time.monotonic() - t0 < 20
    assert violations(inst, s) == []
    assert s.stats["tabu"]["iterations"] > 0 and s.value is not None
    assert best <= s.value <= s.stats["tabu"]["value"]


def test_a_stalled_search_gives_up() -> None:
    inst, _ = jobshop_instance("la01")
    c = compile_instance(inst)
    m, s = dispatch(c, "spt")
    ts = JobShopTabu(c, s, seed=1)
    ts.run(FAR, max_iterations=100_000, give_up=300, floor=0)
    assert 300 <= ts.iterations < 100_000
    assert violations(inst, c.to_schedule(m, ts.best_starts())) == []
