"""Gongyun's search: dispatching warm start, a short full CP-SAT solve, then large-neighbourhood search.

The LNS keeps an incumbent schedule and, in as many threads as there are workers, repeatedly
frees part of it and re-optimises that part with a one-worker CP-SAT sub-solve on a clone of the
full model, the rest held by its machine and its order on the machine (and, before a time window,
by its start). Neighbourhoods: machines around the critical path, time windows, critical-path
blocks, whole orders. Each kind adapts its size: a sub-solve that finishes (proved) grows it, one
that times out shrinks it. Equal-valued moves are accepted, so the search walks plateaus. When it
stalls, a full solve seeded with the incumbent tightens the bound (and may prove optimality).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gongyun.apps.scheduling.domain.compiled import Compiled, critical_path, machine_sequences
from gongyun.apps.scheduling.domain.cpsat import (
    Built,
    Weights,
    add_hint,
    cp_model_module,
    extract,
    hint_values,
)

KINDS = ("machines", "window", "critical", "orders")


@dataclass
class Progress:
    """One point of the solve's progress: best objective and bound at ``elapsed`` seconds."""

    elapsed: float
    value: int | None
    bound: int | None
    phase: str


ProgressFn = Callable[[Progress], None]


@dataclass
class Incumbent:
    """The best schedule so far, shared by the LNS threads."""

    machine: list[int]
    start: list[int]
    value: int
    bound: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    improvements: int = 0
    iterations: int = 0


class Lns:
    """Large-neighbourhood search over a built full model (see the module docstring)."""

    def __init__(
        self,
        c: Compiled,
        base: Built,
        inc: Incumbent,
        evaluate: Callable[[list[int], list[int]], int],
        objective: Any,
        weights: Weights,
        seed: int = 0,
        progress: Callable[[str], None] | None = None,
        frozen: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        self.c, self.base, self.inc = c, base, inc
        self.evaluate = evaluate
        self.objective, self.weights = objective, weights
        self.rng = random.Random(seed)
        self.size = dict.fromkeys(KINDS, min(0.5, max(0.06, 40 / max(1, c.n))))
        self.progress = progress
        self.frozen = frozen or {}
        self.movable = [i for i in range(c.n) if i not in self.frozen]
        self.stats = {k: [0, 0] for k in KINDS}  # tries, improvements
        self.sub_time = float(os.environ.get("GY_SUB_TIME", "0.3"))

    def neighbourhood(
        self, kind: str, machine: list[int], start: list[int], rng: random.Random
    ) -> tuple[set[int], int]:
        """Operations to free and a time before which the rest keep their start (-1: none)."""
        c = self.c
        k = max(2, int(self.size[kind] * len(self.movable)))
        free: set[int] = set()
        fix_before = -1
        if kind == "window":
            order = sorted(self.movable, key=lambda i: start[i])
            a = rng.randrange(max(1, len(order) - k + 1))
            free = set(order[a : a + k])
            fix_before = start[order[a]]
        elif kind == "machines":
            path = critical_path(c, machine, start)
            seqs = machine_sequences(c, machine, start)
            ms = [machine[rng.choice(path)]] if path else []
            others = list(range(c.nm))
            rng.shuffle(others)
            ms += [m for m in others if m not in ms]
            for m in ms:
                if len(free) >= k:
                    break
                free.update(i for i in seqs[m] if i not in self.frozen)
        elif kind == "critical":
            path = [i for i in critical_path(c, machine, start) if i not in self.frozen]
            seqs = machine_sequences(c, machine, start)
            pos = {i: (m, x) for m, seq in enumerate(seqs) for x, i in enumerate(seq)}
            rng.shuffle(path)
            radius = 1
            while len(free) < k and radius < c.n:
                for i in path:
                    m, x = pos[i]
                    seq = seqs[m]
                    free.update(j for j in seq[max(0, x - radius) : x + radius + 1] if j not in self.frozen)
                    free.update(j for j in c.preds[i] + c.succs[i] if j not in self.frozen)
                    if len(free) >= k:
                        break
                radius += 1
        else:
            orders = list(range(len(c.order_ops)))
            rng.shuffle(orders)
            for o in orders:
                if len(free) >= k:
                    break
                free.update(i for i in c.order_ops[o] if i not in self.frozen)
        return free, fix_before

    def sub_solve(self, kind: str, rng: random.Random, time_limit: float) -> tuple[bool | None, bool]:
        """One LNS move; returns (finished, improved), finished None when no solution came back at all."""
        cpm = cp_model_module()
        c, b = self.c, self.base
        with self.inc.lock:
            machine, start, best = list(self.inc.machine), list(self.inc.start), self.inc.value
        free, fix_before = self.neighbourhood(kind, machine, start, rng)
        model = b.model.clone()
        iv = model.get_int_var_from_proto_index
        bv = model.get_bool_var_from_proto_index
        for i in range(c.n):
            if i in free or i in self.frozen:
                continue
            for m, _, lit in b.alts[i]:
                if lit >= 0 and m == machine[i]:
                    model.add_bool_and([bv(lit)])
            end_i = start[i] + c.duration(i, machine[i])
            if end_i <= fix_before:
                model.add(iv(b.start[i]) == start[i])
        for m, seq in enumerate(machine_sequences(c, machine, start)):
            prev = -1
            for i in seq:
                if i in free:
                    continue
                if prev >= 0:
                    model.add(iv(b.start[i]) >= iv(b.end[prev]) + c.setup_time(m, prev, i))
                prev = i
        model.add(iv(b.objective) <= best)
        add_hint(model, hint_values(c, b, machine, start, self.objective, self.weights))
        solver = cpm.CpSolver()
        solver.parameters.max_time_in_seconds = time_limit
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = rng.randrange(1 << 30)
        status = solver.solve(model)
        finished = status in (cpm.OPTIMAL, cpm.INFEASIBLE)
        improved = False
        if status in (cpm.OPTIMAL, cpm.FEASIBLE):
            nm, ns = extract(c, b, solver)
            value = self.evaluate(nm, ns)
        else:
            return (finished if status == cpm.INFEASIBLE else None), False
        with self.inc.lock:
            self.inc.iterations += 1
            if value <= self.inc.value:
                improved = value < self.inc.value
                self.inc.machine, self.inc.start, self.inc.value = nm, ns, value
                if improved:
                    self.inc.improvements += 1
        if improved and self.progress:
            self.progress("lns")
        return finished, improved

    def run(self, until: float, threads: int, stop: Callable[[], bool]) -> None:
        """Run LNS moves in ``threads`` threads until the monotonic time ``until`` or ``stop()``."""

        def loop(seed: int) -> None:
            rng = random.Random(seed)
            k = seed
            while time.monotonic() < until - 0.05 and not stop():
                kind = KINDS[k % len(KINDS)]
                k += 1
                limit = min(self.sub_time, max(0.05, until - time.monotonic()))
                finished, improved = self.sub_solve(kind, rng, limit)
                self.stats[kind][0] += 1
                self.stats[kind][1] += int(improved)
                if finished is None:  # the sub-solve did not even load: give the next ones more time
                    self.sub_time = min(5.0, self.sub_time * 1.5)
                    continue
                s = self.size[kind]
                self.size[kind] = min(0.9, s * 1.12) if finished else max(0.02, s * 0.88)

        seeds = [self.rng.randrange(1 << 30) for _ in range(threads)]
        workers = [threading.Thread(target=loop, args=(s,), daemon=True) for s in seeds[1:]]
        for w in workers:
            w.start()
        loop(seeds[0])
        for w in workers:
            w.join()
