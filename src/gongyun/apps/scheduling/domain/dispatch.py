"""Dispatching rules: a quick feasible schedule, the warm start of the CP-SAT search.

Giffler-Thompson active schedule generation: among the ready operations take the one that can
finish first; every ready operation that could start on that machine before then competes, and
the priority rule picks one. Machine choice (flexible job shop) is the option that finishes first.
Calendars, setups, release dates and frozen (already started) operations are respected.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from gongyun.apps.scheduling.domain.compiled import Compiled

RULES = ("mwkr", "mor", "spt", "edd", "fifo", "lpt")


def _priority(c: Compiled, rule: str) -> Callable[[int, int, int], float]:
    """Smaller is better: a key of (operation, machine, duration)."""
    inst = c.inst
    work = [c.tail[i] + c.min_dur[i] for i in range(c.n)]
    remaining_ops = [0] * c.n
    for i in reversed(c.topo):
        remaining_ops[i] = 1 + max((remaining_ops[s] for s in c.succs[i]), default=0)
    due = [inst.orders[c.order_of[i]].due for i in range(c.n)]
    big = 1 << 40
    due_key = [float(d) if d is not None else float(big) for d in due]
    if rule == "mwkr":
        return lambda i, m, p: -work[i]
    if rule == "mor":
        return lambda i, m, p: -remaining_ops[i] * 1e6 - work[i]
    if rule == "spt":
        return lambda i, m, p: p
    if rule == "lpt":
        return lambda i, m, p: -p
    if rule == "edd":
        return lambda i, m, p: due_key[i] - work[i] * 1e-6
    return lambda i, m, p: c.head[i]  # fifo


def dispatch(
    c: Compiled,
    rule: str = "mwkr",
    seed: int | None = None,
    frozen: Mapping[int, tuple[int, int]] | None = None,
    not_before: int = 0,
) -> tuple[list[int], list[int]]:
    """A schedule by ``rule`` as (machine, start) per operation; ``frozen`` ops keep (machine, start)."""
    rng = random.Random(seed) if seed is not None else None
    prio = _priority(c, rule)
    machine = [-1] * c.n
    start = [0] * c.n
    end = [0] * c.n
    free = [0] * c.nm
    last: list[int] = [-1] * c.nm
    done = [False] * c.n
    frozen = frozen or {}
    for i, (m, s) in sorted(frozen.items(), key=lambda kv: kv[1][1]):
        machine[i], start[i] = m, s
        end[i] = s + c.duration(i, m)
        done[i] = True
        if end[i] >= free[m]:
            free[m], last[m] = end[i], i
    for m in range(c.nm):
        free[m] = max(free[m], not_before)
    missing = [sum(1 for p in c.preds[i] if not done[p]) for i in range(c.n)]
    est = [max(c.release[i], not_before) for i in range(c.n)]
    for i in range(c.n):
        if done[i]:
            for s in c.succs[i]:
                est[s] = max(est[s], end[i])
    ready = {i for i in range(c.n) if not done[i] and missing[i] == 0}
    remaining = c.n - len(frozen)

    def earliest(i: int, m: int, p: int) -> int:
        t = max(est[i], free[m])
        if last[m] >= 0:
            t = max(t, end[last[m]] + c.setup_time(m, last[m], i))
        return c.fit(m, t, p)

    while remaining:
        best_c, best_m = 1 << 62, -1
        for i in ready:
            for m, p in c.opts[i]:
                fin = earliest(i, m, p) + p
                if fin < best_c:
                    best_c, best_m = fin, m
        conflict = []
        for i in ready:
            for m, p in c.opts[i]:
                if m == best_m:
                    s = earliest(i, m, p)
                    if s < best_c:
                        conflict.append((prio(i, m, p), rng.random() if rng else 0.0, i, p, s))
        pick = rng.choice(conflict) if rng is not None and rng.random() < 0.15 else min(conflict)
        _, _, i, p, s = pick
        machine[i], start[i], end[i] = best_m, s, s + p
        free[best_m], last[best_m] = s + p, i
        done[i] = True
        ready.discard(i)
        remaining -= 1
        for sc in c.succs[i]:
            est[sc] = max(est[sc], end[i])
            missing[sc] -= 1
            if missing[sc] == 0:
                ready.add(sc)
    return machine, start


def best_dispatch(
    c: Compiled,
    score: Callable[[list[int], list[int]], int],
    tries: int = 12,
    frozen: Mapping[int, tuple[int, int]] | None = None,
    not_before: int = 0,
) -> tuple[list[int], list[int], str]:
    """The best of the deterministic rules and a few randomised MWKR runs, by ``score``."""
    best: tuple[int, list[int], list[int], str] | None = None
    plans = [(r, None) for r in RULES] + [("mwkr", k) for k in range(max(0, tries - len(RULES)))]
    for rule, seed in plans:
        m, s = dispatch(c, rule, seed, frozen, not_before)
        v = score(m, s)
        if best is None or v < best[0]:
            best = (v, m, s, rule if seed is None else f"{rule}~{seed}")
    assert best is not None
    return best[1], best[2], best[3]
