"""Tabu search for flexible job shops (makespan), compiled with numba: the warm start of CP-SAT.

It applies to shops whose operations form chains (one predecessor and one successor at most), with
a choice of machines, no setups, no machine downtime and no frozen operations; release dates are
heads. A schedule is a machine and a place in that machine's sequence for each operation; its
semi-active starts are the heads of the disjunctive graph.

Neighbourhood (Mastrolilli and Gambardella; Dauzere-Peres and Paulli): take an operation ``v`` on a
critical path out of the graph and put it back on any of its eligible machines, at any place that
cannot close a cycle. With the heads ``r`` and tails ``q`` of the graph without ``v``, the makespan
after inserting ``v`` between ``u`` and ``w`` is exactly ``max(Cmax without v, max(r[PJ] + p[PJ],
r[u] + p[u]) + p_k(v) + max(q[SJ] + p[SJ], q[w] + p[w]))``: every move is evaluated exactly at the
cost of one pass over the graph per critical operation. The best move that is not tabu is made (a
tabu one only when it beats the best makespan); putting ``v`` back on the machine it left (or, on
the same machine, back after the operation it followed) is tabu for a random tenure. After a
stall the search restarts from the best schedule with a few random moves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import njit

from gongyun.apps.scheduling.domain.compiled import Compiled

_I = np.int64
# tabu tenure (a + n // b, plus up to c + n // d) and the stall (iterations per operation without a
# new best) before a restart from the best schedule
TENURE = tuple(int(x) for x in os.environ.get("GY_FT_TENURE", "2,40,3,20").split(","))
STALL = int(os.environ.get("GY_FT_STALL", "8"))
TIE = os.environ.get("GY_FT_TIE", "0") == "1"  # among equal makespans prefer the shortest path through v


def applies(c: Compiled, frozen: Mapping[int, tuple[int, int]] | None = None, not_before: int = 0) -> bool:
    """True when the flexible tabu search applies to ``c`` (see the module docstring)."""
    return (
        c.n > 1
        and not frozen
        and not_before == 0
        and not c.has_setups
        and not any(c.down)
        and all(len(p) <= 1 for p in c.preds)
        and all(len(s) <= 1 for s in c.succs)
    )


@njit(cache=True, nogil=True)
def _neighbours(
    i: int, excl: int, mach: Any, pos: Any, seq: Any, cnt: Any
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Machine predecessor and successor of ``i`` with ``excl`` taken out of its sequence."""
    m = mach[i]
    k = pos[i] - 1
    if k >= 0 and seq[m, k] == excl:
        k -= 1
    a = seq[m, k] if k >= 0 else -1
    k = pos[i] + 1
    if k < cnt[m] and seq[m, k] == excl:
        k += 1
    b = seq[m, k] if k < cnt[m] else -1
    return a, b


@njit(cache=True, nogil=True)
def _heads_tails(
    n: int,
    excl: int,
    jp: Any,
    js: Any,
    rel: Any,
    p: Any,
    mach: Any,
    pos: Any,
    seq: Any,
    cnt: Any,
    r: Any,
    q: Any,
    indeg: Any,
    order: Any,
    mpv: Any,
    msv: Any,
) -> int:  # pragma: no cover - compiled
    """Heads ``r`` and tails ``q`` of the graph without ``excl`` (-1: none); its makespan, -1 on a cycle."""
    top = 0
    for i in range(n):
        if i == excl:
            continue
        a, b = _neighbours(i, excl, mach, pos, seq, cnt)
        mpv[i] = a
        msv[i] = b
        d = 0
        if jp[i] >= 0 and jp[i] != excl:
            d += 1
        if a >= 0:
            d += 1
        indeg[i] = d
        r[i] = rel[i]
        q[i] = 0
        if d == 0:
            order[top] = i
            top += 1
    head = 0
    while head < top:
        i = order[head]
        head += 1
        e = r[i] + p[i]
        s = js[i]
        if s >= 0 and s != excl:
            r[s] = max(r[s], e)
            indeg[s] -= 1
            if indeg[s] == 0:
                order[top] = s
                top += 1
        s = msv[i]
        if s >= 0:
            r[s] = max(r[s], e)
            indeg[s] -= 1
            if indeg[s] == 0:
                order[top] = s
                top += 1
    if top < n - (1 if excl >= 0 else 0):
        return -1
    cmax = 0
    for k in range(top - 1, -1, -1):
        i = order[k]
        t = 0
        s = js[i]
        if s >= 0 and s != excl:
            t = q[s] + p[s]
        s = msv[i]
        if s >= 0 and q[s] + p[s] > t:
            t = q[s] + p[s]
        q[i] = t
        cmax = max(cmax, r[i] + p[i] + t)
    return cmax


@njit(cache=True, nogil=True)
def _move(
    v: int, k: int, t: int, pk: int, mach: Any, pos: Any, seq: Any, cnt: Any, p: Any
) -> None:  # pragma: no cover
    """Take ``v`` off its machine and insert it on machine ``k`` before place ``t`` (counted without v)."""
    m = mach[v]
    for x in range(pos[v], cnt[m] - 1):
        seq[m, x] = seq[m, x + 1]
        pos[seq[m, x]] = x
    cnt[m] -= 1
    for x in range(cnt[k], t, -1):
        seq[k, x] = seq[k, x - 1]
        pos[seq[k, x]] = x
    seq[k, t] = v
    pos[v] = t
    cnt[k] += 1
    mach[v] = k
    p[v] = pk


@njit(cache=True, nogil=True)
def _search(
    n: int,
    iters: int,
    seed: int,
    jp: Any,
    js: Any,
    rel: Any,
    ostart: Any,
    om: Any,
    op: Any,
    mach: Any,
    pos: Any,
    seq: Any,
    cnt: Any,
    p: Any,
    tabu_until: Any,
    tabu_after: Any,
    best_mach: Any,
    best_start: Any,
    state: Any,
    tenure_lo: int,
    tenure_span: int,
    stall: int,
    tie_through: bool,
) -> None:  # pragma: no cover - compiled
    """``iters`` tabu iterations from the schedule in (mach, pos, seq, cnt, p); the best is kept.

    ``state`` = [iteration, best makespan, iteration of the last improvement, current makespan,
    seed flag, makespan the last move was evaluated at (-1 after random moves)]: it carries the
    search across calls.
    """
    if state[4] == 0:
        np.random.seed(seed)
        state[4] = 1
    r = np.zeros(n, _I)
    q = np.zeros(n, _I)
    r2 = np.zeros(n, _I)
    q2 = np.zeros(n, _I)
    indeg = np.zeros(n, _I)
    order = np.zeros(n, _I)
    mpv = np.zeros(n, _I)
    msv = np.zeros(n, _I)
    crit = np.zeros(n, _I)
    nm = cnt.shape[0]
    for _ in range(iters):
        it = state[0]
        state[0] = it + 1
        cmax = _heads_tails(n, -1, jp, js, rel, p, mach, pos, seq, cnt, r, q, indeg, order, mpv, msv)
        state[3] = cmax
        if cmax < state[1]:
            state[1] = cmax
            state[2] = it
            for i in range(n):
                best_mach[i] = mach[i]
                best_start[i] = r[i]
        if it - state[2] > stall:
            _restore(n, best_mach, best_start, mach, pos, seq, cnt, p, ostart, om, op, nm)
            for i in range(n):
                for x in range(ostart[i], ostart[i + 1]):
                    tabu_until[x] = 0
            state[2] = it
            state[5] = -1
            _kick(n, jp, js, rel, ostart, om, op, mach, pos, seq, cnt, p, r, q, indeg, order, mpv, msv)
            continue
        nc = 0
        for i in range(n):
            if r[i] + p[i] + q[i] == cmax:
                crit[nc] = i
                nc += 1
        best_val = 1 << 62
        best_v, best_k, best_t, best_pk, ties = -1, -1, -1, 0, 0
        for ci in range(nc):
            v = crit[ci]
            cm = _heads_tails(n, v, jp, js, rel, p, mach, pos, seq, cnt, r2, q2, indeg, order, mpv, msv)
            pj, sj = jp[v], js[v]
            hd = rel[v]
            if pj >= 0 and r2[pj] + p[pj] > hd:
                hd = r2[pj] + p[pj]
            tl = 0
            if sj >= 0:
                tl = q2[sj] + p[sj]
            mv = mach[v]
            a0, b0 = _neighbours(v, -1, mach, pos, seq, cnt)
            for x in range(ostart[v], ostart[v + 1]):
                k = om[x]
                pk = op[x]
                # the sequence of machine k without v: places t = 0 .. len
                ln = cnt[k] - (1 if k == mv else 0)
                idx = 0
                u = -1
                for t in range(ln + 1):
                    if t < ln:
                        w = seq[k, idx]
                        if w == v:
                            idx += 1
                            w = seq[k, idx]
                        idx += 1
                    else:
                        w = -1
                    if sj >= 0 and u >= 0 and (u == sj or r2[u] >= r2[sj] + p[sj]):
                        break  # a path sj -> u may exist, and further along the heads only grow
                    if pj >= 0 and w >= 0 and (w == pj or q2[w] >= q2[pj] + p[pj]):
                        u = w
                        continue  # a path w -> pj may exist
                    if k == mv and u == a0 and w == b0:
                        u = w
                        continue
                    h = hd
                    if u >= 0 and r2[u] + p[u] > h:
                        h = r2[u] + p[u]
                    tt = tl
                    if w >= 0 and q2[w] + p[w] > tt:
                        tt = q2[w] + p[w]
                    through = h + pk + tt
                    val = through if through > cm else cm
                    tabu = tabu_until[x] > it and (k != mv or tabu_after[x] == u)
                    if tabu and val >= state[1]:
                        u = w
                        continue
                    if tie_through:
                        val = val * (1 << 24) + through
                    if val < best_val:
                        best_val, best_v, best_k, best_t, best_pk, ties = val, v, k, t, pk, 1
                    elif val == best_val:
                        ties += 1
                        if np.random.randint(0, ties) == 0:
                            best_v, best_k, best_t, best_pk = v, k, t, pk
                    u = w
        state[5] = -1
        if best_v < 0:
            _kick(n, jp, js, rel, ostart, om, op, mach, pos, seq, cnt, p, r, q, indeg, order, mpv, msv)
            continue
        # tabu: putting the operation back where it was
        v = best_v
        a0, b0 = _neighbours(v, -1, mach, pos, seq, cnt)
        for x in range(ostart[v], ostart[v + 1]):
            if om[x] == mach[v]:
                tabu_until[x] = it + tenure_lo + np.random.randint(0, tenure_span + 1)
                tabu_after[x] = a0
        _move(v, best_k, best_t, best_pk, mach, pos, seq, cnt, p)
        state[5] = best_val >> 24 if tie_through else best_val


@njit(cache=True, nogil=True)
def _restore(
    n: int,
    best_mach: Any,
    best_start: Any,
    mach: Any,
    pos: Any,
    seq: Any,
    cnt: Any,
    p: Any,
    ostart: Any,
    om: Any,
    op: Any,
    nm: int,
) -> None:  # pragma: no cover - compiled
    """Set the current schedule to (best_mach, best_start)."""
    for m in range(nm):
        cnt[m] = 0
    idx = np.argsort(best_start, kind="mergesort")
    for j in range(n):
        i = idx[j]
        m = best_mach[i]
        seq[m, cnt[m]] = i
        pos[i] = cnt[m]
        cnt[m] += 1
        mach[i] = m
        for x in range(ostart[i], ostart[i + 1]):
            if om[x] == m:
                p[i] = op[x]


@njit(cache=True, nogil=True)
def _kick(
    n: int,
    jp: Any,
    js: Any,
    rel: Any,
    ostart: Any,
    om: Any,
    op: Any,
    mach: Any,
    pos: Any,
    seq: Any,
    cnt: Any,
    p: Any,
    r: Any,
    q: Any,
    indeg: Any,
    order: Any,
    mpv: Any,
    msv: Any,
) -> None:  # pragma: no cover - compiled
    """A few random moves that keep the graph acyclic (checked with the heads of the graph)."""
    moves = 2 + np.random.randint(0, 3)
    for _ in range(moves):
        for _try in range(20):
            v = np.random.randint(0, n)
            x = ostart[v] + np.random.randint(0, ostart[v + 1] - ostart[v])
            k = om[x]
            ln = cnt[k] - (1 if k == mach[v] else 0)
            t = np.random.randint(0, ln + 1)
            pm, pp, pv = mach[v], pos[v], p[v]
            _move(v, k, t, op[x], mach, pos, seq, cnt, p)
            if _heads_tails(n, -1, jp, js, rel, p, mach, pos, seq, cnt, r, q, indeg, order, mpv, msv) >= 0:
                break
            _move(v, pm, pp, pv, mach, pos, seq, cnt, p)  # undo: a cycle


class FlexibleTabu:
    """One tabu search over a flexible shop, run in slices of iterations (see the module docstring)."""

    def __init__(self, c: Compiled, machine: list[int], start: list[int], seed: int = 0) -> None:
        n = c.n
        self.c, self.n, self.seed = c, n, seed
        self.jp = np.array([ps[0] if ps else -1 for ps in c.preds], _I)
        self.js = np.array([ss[0] if ss else -1 for ss in c.succs], _I)
        self.rel = np.array(c.release, _I)
        self.ostart = np.zeros(n + 1, _I)
        om, op = [], []
        for i in range(n):
            for m, d in c.opts[i]:
                om.append(m)
                op.append(d)
            self.ostart[i + 1] = len(om)
        self.om, self.op = np.array(om, _I), np.array(op, _I)
        self.mach = np.array(machine, _I)
        self.p = np.array([c.duration(i, machine[i]) for i in range(n)], _I)
        self.seq = np.full((c.nm, n), -1, _I)
        self.cnt = np.zeros(c.nm, _I)
        self.pos = np.zeros(n, _I)
        for i in sorted(range(n), key=lambda i: (start[i], i)):
            m = machine[i]
            self.seq[m, self.cnt[m]] = i
            self.pos[i] = self.cnt[m]
            self.cnt[m] += 1
        self.tabu_until = np.zeros(len(om), _I)
        self.tabu_after = np.full(len(om), -1, _I)
        self.best_mach = self.mach.copy()
        self.best_start = np.array(start, _I)
        self.state = np.array([0, 1 << 62, 0, 0, 0, -1], _I)
        self.tenure = (TENURE[0] + n // TENURE[1], TENURE[2] + n // TENURE[3])
        self.stall = max(300, STALL * n)

    @property
    def iterations(self) -> int:
        """Iterations made so far."""
        return int(self.state[0])

    @property
    def best(self) -> int:
        """The best makespan found."""
        return int(self.state[1])

    @property
    def current(self) -> int:
        """Makespan of the current schedule (as of the start of the last iteration)."""
        return int(self.state[3])

    @property
    def predicted(self) -> int:
        """Makespan the last move was evaluated at, -1 when the last iteration made random moves."""
        return int(self.state[5])

    def step(self, iters: int) -> None:
        """Run ``iters`` iterations."""
        _search(
            self.n,
            iters,
            self.seed,
            self.jp,
            self.js,
            self.rel,
            self.ostart,
            self.om,
            self.op,
            self.mach,
            self.pos,
            self.seq,
            self.cnt,
            self.p,
            self.tabu_until,
            self.tabu_after,
            self.best_mach,
            self.best_start,
            self.state,
            self.tenure[0],
            self.tenure[1],
            self.stall,
            TIE,
        )

    def run(
        self, until: float, floor: int = 0, chunk: int = 200, done: threading.Event | None = None
    ) -> None:
        """Iterate until the monotonic time ``until``, a makespan of ``floor`` or ``done`` is set."""
        done = done or threading.Event()
        while time.monotonic() < until and self.best > floor and not done.is_set():
            t = time.monotonic()
            self.step(chunk)
            dt = time.monotonic() - t
            # slices of about 50 ms: the clock is read between them
            chunk = max(10, min(100_000, int(chunk * 0.05 / dt))) if dt > 0 else chunk * 2
        if self.best <= floor:
            done.set()

    def result(self) -> tuple[list[int], list[int], int]:
        """The best schedule as (machine, start) per operation, and its makespan."""
        return [int(x) for x in self.best_mach], [int(x) for x in self.best_start], self.best


def flexible_tabu(
    c: Compiled,
    machine: list[int],
    start: list[int],
    until: float,
    threads: int,
    seed: int = 0,
    floor: int = 0,
) -> tuple[list[int], list[int], int, int]:
    """``threads`` independent searches until ``until``: the best (machine, start, makespan), iterations."""
    searches = [FlexibleTabu(c, machine, start, seed=seed * 7919 + k + 1) for k in range(max(1, threads))]
    searches[0].step(1)  # compiles (or loads the cache) once, before the threads start
    done = threading.Event()
    workers = [
        threading.Thread(target=s.run, args=(until, floor, 200, done), daemon=True) for s in searches[1:]
    ]
    for w in workers:
        w.start()
    searches[0].run(until, floor, 200, done)
    for w in workers:
        w.join()
    best = min(searches, key=lambda s: s.best)
    m, s, v = best.result()
    return m, s, v, sum(x.iterations for x in searches)


_warm = threading.Lock()
_warmed: list[bool] = []


def warm_up() -> None:
    """Compile the search (or load it from numba's cache) once per process, on a tiny shop."""
    with _warm:
        if _warmed:
            return
        n = 3
        z = np.zeros(n, _I)
        jp, js = np.array([-1, 0, -1], _I), np.array([1, -1, -1], _I)
        ostart, om, op = (
            np.array([0, 2, 3, 5], _I),
            np.array([0, 1, 0, 0, 1], _I),
            np.array([2, 3, 1, 2, 2], _I),
        )
        mach, p = np.array([0, 0, 1], _I), np.array([2, 1, 2], _I)
        seq, cnt, pos = np.array([[0, 1, -1], [2, -1, -1]], _I), np.array([2, 1], _I), np.array([0, 1, 0], _I)
        state = np.array([0, 1 << 62, 0, 0, 0, -1], _I)
        _search(
            n,
            5,
            1,
            jp,
            js,
            z,
            ostart,
            om,
            op,
            mach,
            pos,
            seq,
            cnt,
            p,
            np.zeros(5, _I),
            np.full(5, -1, _I),
            mach.copy(),
            z.copy(),
            state,
            1,
            1,
            300,
            TIE,
        )
        _warmed.append(True)
