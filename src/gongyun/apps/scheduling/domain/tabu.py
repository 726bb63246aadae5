"""Tabu search for pure job shops: a fast warm start for CP-SAT.

A pure job shop here has one machine per operation, no setups, no machine downtime and no frozen
operations (precedence may be any DAG, release dates are heads). The schedule is the machine
sequences; its semi-active starts are the heads of the disjunctive graph. The neighbourhood is
N5 (Nowicki and Smutnicki): swap the first two or the last two operations of a block of the
critical path. Moves are ranked by Taillard's estimate of the new longest path through the two
operations; the best non-tabu move is made (a tabu one only if its estimate beats the best
makespan), the reverse swap is tabu for a random tenure, and after a long stall the search goes
back to the best schedule with a few random moves.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from gongyun.apps.scheduling.domain.compiled import Compiled


def is_pure_job_shop(c: Compiled, frozen: Mapping[int, tuple[int, int]] | None = None) -> bool:
    """True when the tabu search applies to ``c``."""
    return (
        c.n > 0 and not frozen and all(len(o) == 1 for o in c.opts) and not c.has_setups and not any(c.down)
    )


class JobShopTabu:
    """Tabu search state over the machine sequences of a pure job shop (see the module docstring)."""

    def __init__(self, c: Compiled, start: list[int], seed: int = 0) -> None:
        self.c = c
        self.n = c.n
        self.dur = [o[0][1] for o in c.opts]
        self.mach = [o[0][0] for o in c.opts]
        self.rng = random.Random(seed)
        seqs: list[list[int]] = [[] for _ in range(c.nm)]
        for i in sorted(range(self.n), key=lambda i: (start[i], i)):
            seqs[self.mach[i]].append(i)
        self.seqs = seqs
        self.mp = [-1] * self.n
        self.ms = [-1] * self.n
        self._link()
        self.r = [0] * self.n
        self.q = [0] * self.n
        self.cmax = self._evaluate()
        self.best = self.cmax
        self.best_seqs = [list(s) for s in seqs]
        self.iterations = 0

    def _link(self) -> None:
        for seq in self.seqs:
            prev = -1
            for i in seq:
                self.mp[i] = prev
                if prev >= 0:
                    self.ms[prev] = i
                prev = i
            if prev >= 0:
                self.ms[prev] = -1

    def _evaluate(self) -> int:
        """Heads and tails of the disjunctive graph (Kahn's order); the makespan."""
        # the hot loop of the search: plain comparisons, not max() calls (about twice as fast)
        c, n, d, mp, ms = self.c, self.n, self.dur, self.mp, self.ms
        indeg = [len(c.preds[i]) + (mp[i] >= 0) for i in range(n)]
        stack = [i for i in range(n) if indeg[i] == 0]
        order = []
        r = self.r
        for i in range(n):
            r[i] = c.release[i]
        while stack:
            i = stack.pop()
            order.append(i)
            e = r[i] + d[i]
            for s in c.succs[i]:
                if e > r[s]:  # noqa: PLR1730
                    r[s] = e
                indeg[s] -= 1
                if indeg[s] == 0:
                    stack.append(s)
            s = ms[i]
            if s >= 0:
                if e > r[s]:  # noqa: PLR1730
                    r[s] = e
                indeg[s] -= 1
                if indeg[s] == 0:
                    stack.append(s)
        if len(order) != n:  # a cycle: cannot happen for N5 moves; refuse loudly
            raise RuntimeError("tabu search produced a cyclic sequence")
        q = self.q
        cmax = 0
        for i in reversed(order):
            t = 0
            for s in c.succs[i]:
                v = q[s] + d[s]
                if v > t:  # noqa: PLR1730
                    t = v
            s = ms[i]
            if s >= 0 and q[s] + d[s] > t:
                t = q[s] + d[s]
            q[i] = t
            if r[i] + d[i] + t > cmax:  # noqa: PLR1730
                cmax = r[i] + d[i] + t
        return cmax

    def _critical_blocks(self) -> list[list[int]]:
        """The blocks (maximal same-machine runs) of one critical path, first to last."""
        c, d, r, q, mp = self.c, self.dur, self.r, self.q, self.mp
        cmax = self.cmax
        ends = [i for i in range(self.n) if r[i] + d[i] + q[i] == cmax and r[i] == c.release[i]]
        cur = self.rng.choice(ends) if ends else 0
        path = [cur]
        while True:
            nxt = -1
            e = r[cur] + d[cur] + q[cur]
            s = self.ms[cur]
            if s >= 0 and r[s] == r[cur] + d[cur] and r[s] + d[s] + q[s] == e:
                nxt = s
            else:
                for s in c.succs[cur]:
                    if r[s] == r[cur] + d[cur] and r[s] + d[s] + q[s] == e:
                        nxt = s
                        break
            if nxt < 0:
                break
            path.append(nxt)
            cur = nxt
        blocks: list[list[int]] = []
        for i in path:
            if blocks and mp[i] == blocks[-1][-1]:
                blocks[-1].append(i)
            else:
                blocks.append([i])
        return blocks

    def _moves(self) -> list[tuple[int, int]]:
        """N5 moves as (u, v): u directly before v on a machine, to be swapped.

        A pair that is also a precedence of the routing (two operations of one order on one
        machine) is never swapped: that would make the sequence cyclic.
        """
        blocks = self._critical_blocks()
        out: list[tuple[int, int]] = []
        last = len(blocks) - 1
        for k, b in enumerate(blocks):
            if len(b) < 2:
                continue
            if k > 0:
                out.append((b[0], b[1]))
            if k < last and (len(b) > 2 or k == 0):
                out.append((b[-2], b[-1]))
        succs = self.c.succs
        return [(u, v) for u, v in out if v not in succs[u]]

    def _estimate(self, u: int, v: int) -> int:
        """Taillard's estimate of the makespan after swapping u (before) and v on their machine."""
        c, d, r, q = self.c, self.dur, self.r, self.q
        a, b = self.mp[u], self.ms[v]
        rv = c.release[v]
        for p in c.preds[v]:
            rv = max(rv, r[p] + d[p])
        if a >= 0:
            rv = max(rv, r[a] + d[a])
        ru = c.release[u]
        for p in c.preds[u]:
            ru = max(ru, r[p] + d[p])
        ru = max(ru, rv + d[v])
        qu = 0
        for s in c.succs[u]:
            qu = max(qu, q[s] + d[s])
        if b >= 0:
            qu = max(qu, q[b] + d[b])
        qv = 0
        for s in c.succs[v]:
            qv = max(qv, q[s] + d[s])
        qv = max(qv, qu + d[u])
        return max(rv + d[v] + qv, ru + d[u] + qu)

    def _swap(self, u: int, v: int) -> None:
        seq = self.seqs[self.mach[u]]
        k = seq.index(u)
        seq[k], seq[k + 1] = v, u
        a, b = self.mp[u], self.ms[v]
        self.mp[v], self.ms[v] = a, u
        self.mp[u], self.ms[u] = v, b
        if a >= 0:
            self.ms[a] = v
        if b >= 0:
            self.mp[b] = u

    def run(
        self, until: float, floor: int = 0, max_stall: int = 0, max_iterations: int = 0, give_up: int = 0
    ) -> None:
        """Search until the time ``until``, ``max_iterations``, the makespan ``floor`` or ``give_up``.

        ``give_up`` (0: never) ends the search after that many iterations without a new best.
        """
        tabu: dict[tuple[int, int], int] = {}
        base_tenure = 8 + self.n // (2 * max(1, self.c.nm))
        stall = 0
        max_stall = max_stall or max(1000, 10 * self.n)
        it = 0
        since_best = 0
        while self.best > floor and not (give_up and since_best >= give_up):
            if (it % 16 == 0 and time.monotonic() >= until) or it == max_iterations > 0:
                break
            it += 1
            moves = self._moves()
            if not moves:
                break
            choice: tuple[int, int] | None = None
            best_est = 1 << 62
            for u, v in moves:
                est = self._estimate(u, v)
                if tabu.get((u, v), 0) > it and est >= self.best:
                    continue
                if est < best_est or (est == best_est and self.rng.random() < 0.5):
                    best_est, choice = est, (u, v)
            if choice is None:
                choice = self.rng.choice(moves)
            u, v = choice
            self._swap(u, v)
            tabu[(v, u)] = it + base_tenure + self.rng.randrange(base_tenure)
            self.cmax = self._evaluate()
            if self.cmax < self.best:
                self.best = self.cmax
                self.best_seqs = [list(s) for s in self.seqs]
                stall = since_best = 0
            else:
                stall += 1
                since_best += 1
            if stall >= max_stall:
                self._restart(tabu)
                stall = 0
        self.iterations += it

    def _restart(self, tabu: dict[tuple[int, int], int]) -> None:
        """Back to the best schedule, perturbed by a few random critical swaps."""
        self.seqs = [list(s) for s in self.best_seqs]
        self._link()
        self.cmax = self._evaluate()
        tabu.clear()
        for _ in range(2 + self.rng.randrange(4)):
            moves = self._moves()
            if not moves:
                break
            self._swap(*self.rng.choice(moves))
            self.cmax = self._evaluate()

    def best_starts(self) -> list[int]:
        """Semi-active starts of the best schedule found."""
        self.seqs = [list(s) for s in self.best_seqs]
        self._link()
        self.cmax = self._evaluate()
        return list(self.r)
