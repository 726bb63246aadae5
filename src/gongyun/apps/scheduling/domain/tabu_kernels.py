"""Compiled kernels of the job-shop tabu search (numba): evaluation, critical blocks, N7 moves.

Everything works on int64 numpy arrays. An operation ``i`` has a duration ``dur[i]``, a release
``rel[i]`` and routing predecessors and successors in CSR form (``jp_ptr/jp_idx``,
``js_ptr/js_idx``); a schedule is the machine sequences as doubly linked lists (``mp[i]``,
``ms[i]``: the previous and next operation on ``i``'s machine, -1 at the ends). Heads ``r`` and
tails ``q`` are the longest paths of the disjunctive graph to and from each operation.

The search (``run_chunk``) is the tabu search of Zhang, Li, Guan and Rao (2007) in a plain form:
the N7 neighbourhood of one critical path (move an operation of a critical block to the front or
the end of the block, or the block's first or last operation into its interior), each move ranked
by the Balas-Vazacopoulos estimate (heads along the new block order from the machine predecessor,
tails back from the machine successor), the best move not tabu or better than the best makespan
(aspiration) is made, and the order pairs it reversed are tabu for a random tenure (a matrix of
iteration numbers). A move whose real evaluation finds a cycle is undone and the next best is
made. After ``max_stall`` iterations without a new best the search starts again from its best
schedule perturbed by a few random moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

BIG = 1 << 60


def _jit(fn: Callable[..., Any]) -> Any:
    """Compile without the GIL, cached on disk when some cache folder is writable."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location (a read-only install without a home)
        return njit(cache=False, nogil=True)(fn)


@_jit
def evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack):  # type: ignore[no-untyped-def]
    """Heads, tails and the makespan; -1 when the sequences make a cycle."""
    top = 0
    for i in range(n):
        indeg[i] = jp_ptr[i + 1] - jp_ptr[i] + (1 if mp[i] >= 0 else 0)
        r[i] = rel[i]
        if indeg[i] == 0:
            stack[top] = i
            top += 1
    cnt = 0
    while top > 0:
        top -= 1
        i = stack[top]
        order[cnt] = i
        cnt += 1
        e = r[i] + dur[i]
        for k in range(js_ptr[i], js_ptr[i + 1]):
            s = js_idx[k]
            r[s] = max(r[s], e)
            indeg[s] -= 1
            if indeg[s] == 0:
                stack[top] = s
                top += 1
        s = ms[i]
        if s >= 0:
            r[s] = max(r[s], e)
            indeg[s] -= 1
            if indeg[s] == 0:
                stack[top] = s
                top += 1
    if cnt < n:
        return -1
    cmax = 0
    for t in range(n - 1, -1, -1):
        i = order[t]
        tt = 0
        for k in range(js_ptr[i], js_ptr[i + 1]):
            s = js_idx[k]
            v = q[s] + dur[s]
            tt = max(tt, v)
        s = ms[i]
        if s >= 0:
            v = q[s] + dur[s]
            tt = max(tt, v)
        q[i] = tt
        v = r[i] + dur[i] + tt
        cmax = max(cmax, v)
    return cmax


@_jit
def critical_path(n, dur, jp_ptr, jp_idx, mp, r, q, cmax, path):  # type: ignore[no-untyped-def]
    """One critical path into ``path`` (first to last); its length."""
    # the last operation: a random one ending at the makespan
    cnt = 0
    end = -1
    for i in range(n):
        if q[i] == 0 and r[i] + dur[i] == cmax:
            cnt += 1
            if np.random.randint(0, cnt) == 0:
                end = i
    length = 0
    cur = end
    while cur >= 0:
        path[length] = cur
        length += 1
        nxt = -1
        a = mp[cur]
        if a >= 0 and r[a] + dur[a] == r[cur]:
            nxt = a
        else:
            for k in range(jp_ptr[cur], jp_ptr[cur + 1]):
                p = jp_idx[k]
                if r[p] + dur[p] == r[cur]:
                    nxt = p
                    break
        cur = nxt
    for k in range(length // 2):
        t = path[k]
        path[k] = path[length - 1 - k]
        path[length - 1 - k] = t
    return length


@_jit
def _reordered(path, b0, blen, i, j, seg):  # type: ignore[no-untyped-def]
    """The block ``path[b0:b0+blen]`` with its ``i``-th operation moved to position ``j``, in ``seg``."""
    x = path[b0 + i]
    t = 0
    for k in range(blen):
        if k == i:
            continue
        if t == j and i > j:
            seg[t] = x
            t += 1
        seg[t] = path[b0 + k]
        t += 1
        if t == j and i < j:
            seg[t] = x
            t += 1
    if t < blen:
        seg[t] = x


@_jit
def _relink(mp, ms, a, b, seg, blen):  # type: ignore[no-untyped-def]
    """Put ``seg[:blen]`` between ``a`` and ``b`` on their machine."""
    for t in range(blen):
        x = seg[t]
        mp[x] = a if t == 0 else seg[t - 1]
        ms[x] = b if t == blen - 1 else seg[t + 1]
    if a >= 0:
        ms[a] = seg[0]
    if b >= 0:
        mp[b] = seg[blen - 1]


@_jit
def _swap(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack, seg, u):  # type: ignore[no-untyped-def]
    """Swap ``u`` with its machine successor and evaluate; a swap that makes a cycle is undone (-1)."""
    v = ms[u]
    a = mp[u]
    b = ms[v]
    seg[0] = v
    seg[1] = u
    _relink(mp, ms, a, b, seg, 2)
    cm = evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)
    if cm < 0:
        seg[0] = u
        seg[1] = v
        _relink(mp, ms, a, b, seg, 2)
    return cm


@_jit
def _estimate(dur, a, b, r, q, jh, jt, seg, blen):  # type: ignore[no-untyped-def]
    """Balas-Vazacopoulos estimate of the longest path through a block reordered as ``seg``.

    ``a`` and ``b`` are the block's machine predecessor and successor (-1: none).
    """
    prev = r[a] + dur[a] if a >= 0 else 0
    heads = np.empty(blen, np.int64)
    for t in range(blen):
        x = seg[t]
        h = jh[x] if jh[x] > prev else prev
        heads[t] = h
        prev = h + dur[x]
    nxt = q[b] + dur[b] if b >= 0 else 0
    est = 0
    for t in range(blen - 1, -1, -1):
        x = seg[t]
        tl = jt[x] if jt[x] > nxt else nxt
        v = heads[t] + dur[x] + tl
        est = max(est, v)
        nxt = tl + dur[x]
    return est


@_jit
def run_chunk(  # type: ignore[no-untyped-def]
    n, dur, rel, jp_ptr, jp_idx, js_ptr, js_idx, mp, ms, best_mp, best_ms, ep_mp, ep_ms, tabu, state, params
):
    """Run the tabu search for ``params[0]`` iterations; ``state`` carries it across calls.

    ``state``: [iteration, current makespan, best makespan, iterations since the best, iterations
    since the best of this episode (since the last restart), restarts, cycles undone, best makespan
    of this episode]. ``params``: [iterations, floor, max stall, minimum tenure, maximum tenure,
    seed, perturbation swaps, 1 to return when a restart is due instead of restarting from the
    best]. Returns the iterations made.
    """
    np.random.seed(params[5])
    r = np.empty(n, np.int64)
    q = np.empty(n, np.int64)
    order = np.empty(n, np.int64)
    indeg = np.empty(n, np.int64)
    stack = np.empty(n, np.int64)
    path = np.empty(n, np.int64)
    jh = np.empty(n, np.int64)
    jt = np.empty(n, np.int64)
    seg = np.empty(n, np.int64)
    orig = np.empty(n, np.int64)
    cap = 4 * n + 8
    mv_b = np.empty(cap, np.int64)
    mv_len = np.empty(cap, np.int64)
    mv_i = np.empty(cap, np.int64)
    mv_j = np.empty(cap, np.int64)
    mv_est = np.empty(cap, np.int64)
    mv_tabu = np.empty(cap, np.bool_)
    mv_dead = np.empty(cap, np.bool_)
    blk_b = np.empty(n, np.int64)
    blk_len = np.empty(n, np.int64)

    cmax = evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)
    state[1] = cmax
    floor = params[1]
    done = 0
    it = state[0]
    while done < params[0] and state[2] > floor and not (params[7] and state[4] >= params[2]):
        it += 1
        done += 1
        # critical blocks of one critical path
        plen = critical_path(n, dur, jp_ptr, jp_idx, mp, r, q, cmax, path)
        nb = 0
        k = 0
        while k < plen:
            s = k
            while k + 1 < plen and mp[path[k + 1]] == path[k]:
                k += 1
            blk_b[nb] = s
            blk_len[nb] = k - s + 1
            nb += 1
            k += 1
        for k in range(plen):
            x = path[k]
            h = rel[x]
            for e in range(jp_ptr[x], jp_ptr[x + 1]):
                p = jp_idx[e]
                h = max(h, r[p] + dur[p])
            jh[x] = h
            tl = 0
            for e in range(js_ptr[x], js_ptr[x + 1]):
                s2 = js_idx[e]
                tl = max(tl, q[s2] + dur[s2])
            jt[x] = tl
        # the N7 moves with their estimates and tabu status
        nmv = 0
        for bk in range(nb):
            blen = blk_len[bk]
            if blen < 2:
                continue
            b0 = blk_b[bk]
            last = blen - 1
            for c in range(4 * blen):
                kind = c // blen
                pos = c % blen
                if kind == 0:  # the first operation moved after another
                    i, j = 0, pos
                    if pos == 0:
                        continue
                elif kind == 1:  # the last operation moved before another
                    i, j = last, pos
                    if pos == last or blen == 2:
                        continue  # of two, the same as moving the first after the last
                elif kind == 2:  # an inner operation to the front
                    i, j = pos, 0
                    if pos < 2 or pos == last:
                        continue
                else:  # an inner operation to the end
                    i, j = pos, last
                    if pos == 0 or pos > last - 2:
                        continue
                if nb > 1 and (
                    (bk == 0 and r[path[0]] == 0 and i < last and j < last)
                    or (bk == nb - 1 and i > 0 and j > 0)
                ):
                    # a first block starting at 0 that keeps its last operation, or a last block
                    # that keeps its first one, is no shorter (the N5 argument)
                    continue
                _reordered(path, b0, blen, i, j, seg)
                est = _estimate(dur, mp[path[b0]], ms[path[b0 + last]], r, q, jh, jt, seg, blen)
                tb = False
                x = path[b0 + i]
                if i < j:
                    for w in range(i + 1, j + 1):
                        if tabu[path[b0 + w], x] > it:
                            tb = True
                            break
                else:
                    for w in range(j, i):
                        if tabu[x, path[b0 + w]] > it:
                            tb = True
                            break
                mv_b[nmv] = b0
                mv_len[nmv] = blen
                mv_i[nmv] = i
                mv_j[nmv] = j
                mv_est[nmv] = est
                mv_tabu[nmv] = tb
                mv_dead[nmv] = False
                nmv += 1
        if nmv == 0:
            # no block of two: the makespan is a routing chain, nothing can shorten it
            state[2] = min(state[2], cmax)
            break
        while True:
            pick = -1
            pick_est = BIG
            live = 0
            for m in range(nmv):
                if mv_dead[m]:
                    continue
                live += 1
                if mv_tabu[m] and mv_est[m] >= state[2]:
                    continue
                if mv_est[m] < pick_est or (mv_est[m] == pick_est and np.random.random() < 0.5):
                    pick = m
                    pick_est = mv_est[m]
            if live == 0:
                break
            if pick < 0:  # every move tabu: a random one
                c = np.random.randint(0, live)
                for m in range(nmv):
                    if not mv_dead[m]:
                        if c == 0:
                            pick = m
                            break
                        c -= 1
            b0 = mv_b[pick]
            blen = mv_len[pick]
            i = mv_i[pick]
            j = mv_j[pick]
            for t in range(blen):
                orig[t] = path[b0 + t]
            a = mp[orig[0]]
            b = ms[orig[blen - 1]]
            _reordered(path, b0, blen, i, j, seg)
            _relink(mp, ms, a, b, seg, blen)
            cm = evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)
            if cm < 0:
                _relink(mp, ms, a, b, orig, blen)
                mv_dead[pick] = True
                state[6] += 1
                continue
            cmax = cm
            tenure = params[3] + np.random.randint(0, params[4] - params[3] + 1)
            x = orig[i]
            if i < j:
                for w in range(i + 1, j + 1):
                    tabu[x, orig[w]] = it + tenure
            else:
                for w in range(j, i):
                    tabu[orig[w], x] = it + tenure
            break
        if live == 0:
            cmax = evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)
            state[4] = params[2]  # stuck: restart below
        state[1] = cmax
        if cmax < state[7]:
            state[7] = cmax
            ep_mp[:] = mp
            ep_ms[:] = ms
            state[4] = 0
        else:
            state[4] += 1
        if cmax < state[2]:
            state[2] = cmax
            best_mp[:] = mp
            best_ms[:] = ms
            state[3] = 0
        else:
            state[3] += 1
        if state[4] >= params[2]:
            if params[7]:
                break  # the caller restarts the search (from its elite schedules)
            # restart: the best schedule, perturbed by random critical swaps
            state[5] += 1
            state[4] = 0
            mp[:] = best_mp
            ms[:] = best_ms
            tabu[:, :] = 0
            kick(n, dur, rel, jp_ptr, jp_idx, js_ptr, js_idx, mp, ms, params[6])
            cmax = evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)
            state[1] = cmax
            state[7] = cmax
            ep_mp[:] = mp
            ep_ms[:] = ms
    state[0] = it
    return done


@_jit
def kick(n, dur, rel, jp_ptr, jp_idx, js_ptr, js_idx, mp, ms, swaps):  # type: ignore[no-untyped-def]
    """Swap ``swaps`` random adjacent pairs of critical blocks (none that makes a cycle); the makespan."""
    r = np.empty(n, np.int64)
    q = np.empty(n, np.int64)
    order = np.empty(n, np.int64)
    indeg = np.empty(n, np.int64)
    stack = np.empty(n, np.int64)
    path = np.empty(n, np.int64)
    seg = np.empty(2, np.int64)
    cmax = evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)
    for _ in range(swaps):
        plen = critical_path(n, dur, jp_ptr, jp_idx, mp, r, q, cmax, path)
        cand = 0
        pick = -1
        for k in range(plen - 1):
            if mp[path[k + 1]] == path[k]:
                cand += 1
                if np.random.randint(0, cand) == 0:
                    pick = k
        if pick < 0:
            break
        cm = _swap(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack, seg, path[pick])
        if cm < 0:  # undone: the restored sequence is evaluated again (its heads were overwritten)
            cm = evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)
        cmax = cm
    return cmax


@_jit
def positions(n, mp, ms, pos):  # type: ignore[no-untyped-def]
    """Each operation's position on its machine, into ``pos``."""
    for i in range(n):
        if mp[i] < 0:
            k = 0
            x = i
            while x >= 0:
                pos[x] = k
                k += 1
                x = ms[x]


@_jit
def distance(n, mp, ms, pos_other):  # type: ignore[no-untyped-def]
    """Pairs of operations on a machine in the other order in another schedule (its positions)."""
    seq = np.empty(n, np.int64)
    d = 0
    for i in range(n):
        if mp[i] < 0:
            k = 0
            x = i
            while x >= 0:
                seq[k] = pos_other[x]
                k += 1
                x = ms[x]
            for a in range(k):
                for b in range(a + 1, k):
                    if seq[a] > seq[b]:
                        d += 1
    return d


@_jit
def relink(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, pos_guide, steps, seed):  # type: ignore[no-untyped-def]
    """Path relinking: ``steps`` swaps of adjacent pairs the guide orders the other way; the makespan.

    Each swap is of a random such pair whose swap makes no cycle; it stops early when none is left.
    """
    np.random.seed(seed)
    r = np.empty(n, np.int64)
    q = np.empty(n, np.int64)
    order = np.empty(n, np.int64)
    indeg = np.empty(n, np.int64)
    stack = np.empty(n, np.int64)
    cand = np.empty(n, np.int64)
    bad = np.zeros(n, np.bool_)
    seg = np.empty(2, np.int64)
    done = 0
    while done < steps:
        nc = 0
        for i in range(n):
            j = ms[i]
            if j >= 0 and pos_guide[i] > pos_guide[j] and not bad[i]:
                cand[nc] = i
                nc += 1
        if nc == 0:
            break
        u = cand[np.random.randint(0, nc)]
        cm = _swap(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack, seg, u)
        if cm < 0:
            bad[u] = True
            continue
        bad[:] = False
        done += 1
    return evaluate(n, dur, rel, jp_ptr, js_ptr, js_idx, mp, ms, r, q, order, indeg, stack)


@_jit
def seed(value):  # type: ignore[no-untyped-def]
    """Seed the compiled code's random numbers (of the calling thread)."""
    np.random.seed(value)
