"""Tabu search for pure job shops (makespan), compiled with numba; parallel searches share a best.

A pure job shop here has one machine per operation, no setups, no machine downtime and no frozen
operations (precedence may be any DAG, release dates are heads). The schedule is the machine
sequences; its semi-active starts are the heads of the disjunctive graph. The search itself (N7
moves, Balas-Vazacopoulos estimates, a tabu matrix, aspiration, restarts from the best schedule)
is in ``tabu_kernels``; this module holds its state between calls of the kernel, and
``parallel_search`` runs one search per worker in threads (the kernels release the GIL) that
publish their best schedules to a shared one and restart from it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from gongyun.apps.scheduling.domain import tabu_kernels as K
from gongyun.apps.scheduling.domain.compiled import Compiled

# Iterations without a new best of the episode before a search restarts (elite pool), per operation
# (at least MIN_STALL), and the random swaps that perturb it. Chosen on abz7, abz8, swv01, yn1 and
# ta41 (outside the benchmark).
STALL = int(os.environ.get("GY_TS_STALL", "10"))
MIN_STALL = int(os.environ.get("GY_TS_MIN_STALL", "2000"))
KICK = int(os.environ.get("GY_TS_KICK", "4"))
POOL = int(os.environ.get("GY_TS_POOL", "8"))  # elite schedules kept for restarts
RELINK = float(os.environ.get("GY_TS_RELINK", "0.7"))  # restarts by path relinking (else best + kick)
CHUNK_S = 0.05  # seconds per kernel call: how often the time limit is checked and bests are shared
MAX_OPS = 4000  # the tabu matrix has a cell per pair of operations (64 MB per search at 4000)


def is_pure_job_shop(c: Compiled, frozen: Mapping[int, tuple[int, int]] | None = None) -> bool:
    """True when the tabu search applies to ``c``."""
    return (
        0 < c.n <= MAX_OPS
        and not frozen
        and all(len(o) == 1 for o in c.opts)
        and not c.has_setups
        and not any(c.down)
    )


def _csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(lists) + 1, np.int64)
    for i, xs in enumerate(lists):
        ptr[i + 1] = ptr[i] + len(xs)
    idx = np.array([x for xs in lists for x in xs], np.int64)
    return ptr, idx


class JobShopTabu:
    """One tabu search over the machine sequences of a pure job shop (see the module docstring)."""

    def __init__(self, c: Compiled, start: list[int], seed: int = 0) -> None:
        self.c = c
        n = self.n = c.n
        self.dur = np.array([o[0][1] for o in c.opts], np.int64)
        self.mach = [o[0][0] for o in c.opts]
        self.rel = np.array(c.release, np.int64)
        self.jp_ptr, self.jp_idx = _csr(c.preds)
        self.js_ptr, self.js_idx = _csr(c.succs)
        self.rng = random.Random(seed)
        self.mp = np.full(n, -1, np.int64)
        self.ms = np.full(n, -1, np.int64)
        last = [-1] * c.nm
        for i in sorted(range(n), key=lambda i: (start[i], i)):
            m = self.mach[i]
            if last[m] >= 0:
                self.mp[i], self.ms[last[m]] = last[m], i
            last[m] = i
        self.best_mp, self.best_ms = self.mp.copy(), self.ms.copy()
        self.ep_mp, self.ep_ms = self.mp.copy(), self.ms.copy()
        self.tabu = np.zeros((n, n), np.int32)
        value = self._evaluate(self.mp, self.ms)[0]
        if value < 0:
            raise ValueError("the start schedule's machine sequences make a cycle")
        self.state = np.array([0, value, value, 0, 0, 0, 0, value], np.int64)
        jobs = max(1, len(c.inst.orders))
        low = 10 + jobs // max(1, c.nm)
        self.params = np.array(
            [0, 0, max(MIN_STALL, STALL * n), low, max(low, (low * 7) // 5), 0, KICK, 0], np.int64
        )

    def _evaluate(self, mp: np.ndarray, ms: np.ndarray) -> tuple[int, np.ndarray]:
        n = self.n
        r, q, order, indeg, stack = (np.empty(n, np.int64) for _ in range(5))
        v = K.evaluate(
            n, self.dur, self.rel, self.jp_ptr, self.js_ptr, self.js_idx, mp, ms, r, q, order, indeg, stack
        )
        return int(v), r

    @property
    def cmax(self) -> int:
        """Makespan of the current schedule."""
        return int(self.state[1])

    @property
    def best(self) -> int:
        """Makespan of the best schedule found."""
        return int(self.state[2])

    @property
    def iterations(self) -> int:
        """Iterations made so far."""
        return int(self.state[0])

    @property
    def since_best(self) -> int:
        """Iterations since the last new best."""
        return int(self.state[3])

    def step(self, iterations: int, floor: int = 0) -> int:
        """Run ``iterations`` iterations (fewer if the makespan reaches ``floor``); those made."""
        self.params[0] = iterations
        self.params[1] = floor
        self.params[5] = self.rng.randrange(1 << 31)
        return int(
            K.run_chunk(
                self.n,
                self.dur,
                self.rel,
                self.jp_ptr,
                self.jp_idx,
                self.js_ptr,
                self.js_idx,
                self.mp,
                self.ms,
                self.best_mp,
                self.best_ms,
                self.ep_mp,
                self.ep_ms,
                self.tabu,
                self.state,
                self.params,
            )
        )

    @property
    def restart_due(self) -> bool:
        """True when the episode stalled and the caller restarts it (``external`` mode)."""
        return bool(self.params[7]) and self.state[4] >= self.params[2]

    def episode_best(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The best schedule of the current episode (since the last restart)."""
        return int(self.state[7]), self.ep_mp.copy(), self.ep_ms.copy()

    def restart(self, mp: np.ndarray, ms: np.ndarray) -> None:
        """Start a new episode from the schedule ``mp``/``ms`` with an empty tabu list."""
        value = self._evaluate(mp, ms)[0]
        if value < 0:
            raise ValueError("a restart schedule makes a cycle")
        self.mp[:] = mp
        self.ms[:] = ms
        self.ep_mp[:] = mp
        self.ep_ms[:] = ms
        self.tabu[:, :] = 0
        self.state[1] = self.state[7] = value
        self.state[4] = 0
        self.state[5] += 1
        if value < self.state[2]:
            self.adopt(mp, ms, value)

    def relinked(self, a: Elite, b: Elite, share: float) -> tuple[np.ndarray, np.ndarray]:
        """A schedule ``share`` of the way from ``a`` to ``b`` (adjacent swaps, no cycles)."""
        mp, ms = a.mp.copy(), a.ms.copy()
        steps = int(share * K.distance(self.n, a.mp, a.ms, b.pos))
        K.relink(
            self.n,
            self.dur,
            self.rel,
            self.jp_ptr,
            self.js_ptr,
            self.js_idx,
            mp,
            ms,
            b.pos,
            steps,
            self.rng.randrange(1 << 31),
        )
        return mp, ms

    def kicked(self, mp: np.ndarray, ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mp``/``ms`` perturbed by a few random critical swaps."""
        mp, ms = mp.copy(), ms.copy()
        np_seed = self.rng.randrange(1 << 31)
        K.seed(np_seed)
        K.kick(
            self.n,
            self.dur,
            self.rel,
            self.jp_ptr,
            self.jp_idx,
            self.js_ptr,
            self.js_idx,
            mp,
            ms,
            int(self.params[6]),
        )
        return mp, ms

    def adopt(self, mp: np.ndarray, ms: np.ndarray, value: int) -> None:
        """Take a better schedule found elsewhere as the best (the next restart starts from it)."""
        self.best_mp[:] = mp
        self.best_ms[:] = ms
        self.state[2] = value

    def run(self, until: float, floor: int = 0, max_iterations: int = 0, give_up: int = 0) -> None:
        """Search until the time ``until``, ``max_iterations``, the makespan ``floor`` or ``give_up``.

        ``give_up`` (0: never) ends the search after that many iterations without a new best.
        """
        chunk = 64
        end = self.iterations + max_iterations if max_iterations else 0
        while self.best > floor and not (give_up and self.since_best >= give_up):
            if time.monotonic() >= until or (end and self.iterations >= end):
                break
            k = min(chunk, end - self.iterations) if end else chunk
            if give_up:
                k = min(k, max(1, give_up - self.since_best))
            t = time.monotonic()
            if self.step(k, floor) == 0:
                break
            chunk = _next_chunk(chunk, time.monotonic() - t)

    def best_starts(self) -> list[int]:
        """Semi-active starts of the best schedule found."""
        _, r = self._evaluate(self.best_mp, self.best_ms)
        return [int(x) for x in r]


def _next_chunk(chunk: int, took: float) -> int:
    if took <= 0:
        return min(1 << 20, chunk * 2)
    return max(16, min(1 << 20, chunk * 4, int(chunk * CHUNK_S / took)))


@dataclass
class Elite:
    """A schedule of the elite pool: its makespan, machine links and positions."""

    value: int
    mp: np.ndarray
    ms: np.ndarray
    pos: np.ndarray


class Pool:
    """The elite schedules: the best ``size`` distinct episode results."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size
        self.items: list[Elite] = []

    def offer(self, value: int, mp: np.ndarray, ms: np.ndarray) -> None:
        """Keep the schedule if it is new and better than the worst (or the pool is not full)."""
        pos = np.empty(self.n, np.int64)
        K.positions(self.n, mp, ms, pos)
        for e in self.items:
            if e.value == value and K.distance(self.n, mp, ms, e.pos) == 0:
                return
        if len(self.items) >= self.size:
            worst = max(range(len(self.items)), key=lambda k: self.items[k].value)
            if self.items[worst].value < value:
                return
            self.items.pop(worst)
        self.items.append(Elite(value, mp, ms, pos))


@dataclass
class SearchResult:
    """The best schedule of a parallel search, with counts."""

    value: int
    starts: list[int]
    iterations: int
    restarts: int
    stats: dict[str, int] = field(default_factory=dict)


def parallel_search(
    c: Compiled,
    start: list[int],
    until: float,
    workers: int = 2,
    seed: int = 0,
    floor: int = 0,
    give_up: int = 0,
    on_improve: Callable[[int], None] | None = None,
) -> SearchResult:
    """``workers`` tabu searches in threads sharing their best schedule; see the module docstring.

    The search ends at the time ``until``, at the makespan ``floor``, or after ``give_up``
    iterations (summed over the searches, 0: never) without a new shared best.
    """
    searches = [JobShopTabu(c, start, seed=seed * 7919 + k) for k in range(max(1, workers))]
    for ts in searches:
        ts.params[7] = 1  # restarts from the elite pool, below
    lock = threading.Lock()
    pool = Pool(c.n, POOL)
    best = {"value": searches[0].best, "mp": searches[0].best_mp.copy(), "ms": searches[0].best_ms.copy()}
    since = [0]
    stop = [False]
    relinks = [0]

    def restart(ts: JobShopTabu) -> None:
        value, mp, ms = ts.episode_best()
        with lock:
            pool.offer(value, mp, ms)
            items = list(pool.items)
        if len(items) >= 2 and ts.rng.random() < RELINK:
            a, b = ts.rng.sample(items, 2)
            mp, ms = ts.relinked(a, b, ts.rng.uniform(0.25, 0.5))
            relinks[0] += 1
        else:
            mp, ms = ts.kicked(ts.best_mp, ts.best_ms)
        ts.restart(mp, ms)

    def work(ts: JobShopTabu) -> None:
        chunk = 64
        while not stop[0] and time.monotonic() < until and best["value"] > floor:  # type: ignore[operator]
            t = time.monotonic()
            done = ts.step(chunk, floor)
            chunk = _next_chunk(chunk, time.monotonic() - t)
            with lock:
                if ts.best < best["value"]:  # type: ignore[operator]
                    best.update(value=ts.best, mp=ts.best_mp.copy(), ms=ts.best_ms.copy())
                    since[0] = ts.since_best
                    if on_improve is not None:
                        on_improve(ts.best)
                else:
                    since[0] += done
                    if best["value"] < ts.best:  # type: ignore[operator]
                        ts.adopt(best["mp"], best["ms"], best["value"])  # type: ignore[arg-type]
                if give_up and since[0] >= give_up:
                    stop[0] = True
            if ts.restart_due:
                restart(ts)
            elif done == 0:
                stop[0] = True

    threads = [threading.Thread(target=work, args=(ts,), daemon=True) for ts in searches[1:]]
    for th in threads:
        th.start()
    work(searches[0])
    for th in threads:
        th.join()
    final = searches[0]
    final.adopt(best["mp"], best["ms"], best["value"])  # type: ignore[arg-type]
    return SearchResult(
        value=int(best["value"]),  # type: ignore[call-overload]
        starts=final.best_starts(),
        iterations=sum(ts.iterations for ts in searches),
        restarts=sum(int(ts.state[5]) for ts in searches),
        stats={"cycles_undone": sum(int(ts.state[6]) for ts in searches), "relinks": relinks[0]},
    )
