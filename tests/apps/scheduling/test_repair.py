"""Rescheduling: a breakdown mid-schedule is repaired in under 10 s, keeping the past, moving little."""

from __future__ import annotations

import random
import time

from gongyun.apps.scheduling.domain.model import Assignment, Instance, Machine, Operation, Order
from gongyun.apps.scheduling.domain.repair import Disruption, fixed_ok, repair
from gongyun.apps.scheduling.domain.solve import SolveOptions, solve
from gongyun.apps.scheduling.domain.validate import violations


def random_jobshop(jobs: int, machines: int, seed: int) -> Instance:
    """A Taillard-like random job shop: each job visits every machine once, times 1..99."""
    rng = random.Random(seed)
    ops = []
    for j in range(jobs):
        route = list(range(machines))
        rng.shuffle(route)
        for k, m in enumerate(route):
            ops.append(
                Operation(
                    f"J{j}.{k}", f"J{j}", {f"M{m}": rng.randint(1, 99)}, (f"J{j}.{k - 1}",) if k else ()
                )
            )
    return Instance(
        f"rand{jobs}x{machines}",
        [Machine(f"M{m}") for m in range(machines)],
        [Order(f"J{j}") for j in range(jobs)],
        ops,
    )


def test_breakdown_repair_20x10() -> None:
    inst = random_jobshop(20, 10, seed=7)
    old = solve(inst, SolveOptions(time_limit=2, workers=2))
    assert violations(inst, old) == []
    now = old.makespan // 2
    running = [a for a in old.assignments if a.start < now < a.end]
    broken = running[0].machine if running else "M0"
    event = Disruption(now=now, down={broken: now + 150})
    t0 = time.monotonic()
    result = repair(inst, old, event, SolveOptions(time_limit=2.5, workers=2), compare_scratch=True)
    assert result.schedule.wall_s < 10 and time.monotonic() - t0 < 20
    sched = result.schedule
    frozen = {o: Assignment(o, m, s, 0) for o, (m, s) in result.frozen.items()}
    assert violations(result.instance, sched, frozen=frozen) == []
    assert fixed_ok(result)
    # every finished and running operation is in place, nothing new starts before now on the broken machine
    finished_or_running = {a.op for a in old.assignments if a.start < now}
    assert finished_or_running == set(result.frozen)
    for a in sched.assignments:
        if a.op not in result.frozen:
            assert a.start >= now
            if a.machine == broken:
                assert a.start >= now + 150
    # a from-scratch solve of the same situation (same frozen operations and downtime) moves more
    assert result.scratch is not None and result.scratch_stability is not None
    assert violations(result.instance, result.scratch, frozen=frozen) == []
    stab, other = result.stability, result.scratch_stability
    assert stab.total_shift < other.total_shift
    assert stab.moved <= other.moved
    assert sched.stats["stability"]["total_shift"] == stab.total_shift


def test_late_operation_and_rush_order() -> None:
    inst = random_jobshop(6, 4, seed=3)
    old = solve(inst, SolveOptions(time_limit=2, workers=2))
    now = old.makespan // 3
    running = [a for a in old.assignments if a.start < now < a.end]
    late = {running[0].op: running[0].end + 20} if running else {}
    rush_ops = [Operation("R.0", "R", {"M0": 5, "M1": 7}), Operation("R.1", "R", {"M2": 4}, ("R.0",))]
    bigger = Instance(
        inst.name,
        inst.machines,
        [*inst.orders, Order("R", release=now, due=now + 30)],
        inst.operations + rush_ops,
    )
    result = repair(bigger, old, Disruption(now=now, late=late), SolveOptions(time_limit=2, workers=2))
    assert violations(result.instance, result.schedule) == []
    assert fixed_ok(result)
    by = result.schedule.by_op()
    assert by["R.0"].start >= now
    for op, end in late.items():
        assert by[op].end == end
    assert any(ch["op"] == "R.0" and ch["old_start"] is None for ch in result.changes)
