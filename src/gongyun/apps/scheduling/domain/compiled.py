"""An instance as index arrays, the form the dispatcher, the CP-SAT models and the search share."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

from gongyun.apps.scheduling.domain.model import Assignment, Instance, Schedule


@dataclass
class Compiled:
    """Operations, machines and orders by index, with heads, tails and calendars."""

    inst: Instance
    n: int
    nm: int
    opts: list[list[tuple[int, int]]]  # per operation: (machine, duration)
    preds: list[list[int]]
    succs: list[list[int]]
    order_of: list[int]
    release: list[int]  # per operation: its order's release date
    family: list[int]  # per operation: setup family index, -1 for none
    setup: dict[tuple[int, int, int], int]  # (machine, family before, family after) -> time
    down: list[list[tuple[int, int]]]  # per machine: sorted, merged unavailable windows
    head: list[int]  # lower bound of each operation's start
    tail: list[int]  # lower bound of the time from an operation's end to the end of the schedule
    topo: list[int]
    min_dur: list[int]
    sinks: list[int]  # operations with no successor
    order_ops: list[list[int]] = field(default_factory=list)

    @property
    def has_setups(self) -> bool:
        """True when some setup time is positive."""
        return any(t > 0 for t in self.setup.values())

    def setup_time(self, m: int, a: int, b: int) -> int:
        """Setup on machine ``m`` when operation ``b`` follows operation ``a``."""
        fa, fb = self.family[a], self.family[b]
        if fa < 0 or fb < 0:
            return 0
        return self.setup.get((m, fa, fb), 0)

    def fit(self, m: int, t: int, p: int) -> int:
        """The earliest start >= ``t`` of a ``p``-long run on machine ``m`` that avoids its downtime."""
        wins = self.down[m]
        if not wins:
            return t
        i = max(0, bisect.bisect_right(wins, (t, 1 << 62)) - 1)
        while i < len(wins):
            w0, w1 = wins[i]
            if t + p <= w0:
                return t
            t = max(t, w1)
            i += 1
        return t

    def trivial_bound(self) -> int:
        """A makespan lower bound: the longest head + duration + tail, and each machine's fixed load."""
        lb = max((self.head[i] + self.min_dur[i] + self.tail[i] for i in range(self.n)), default=0)
        load = [0] * self.nm
        first = [1 << 62] * self.nm
        for i in range(self.n):
            if len(self.opts[i]) == 1:
                m, p = self.opts[i][0]
                load[m] += p
                first[m] = min(first[m], self.head[i])
        for m in range(self.nm):
            if load[m]:
                lb = max(lb, first[m] + load[m])
        return lb

    def to_schedule(self, machine: list[int], start: list[int], **kw: object) -> Schedule:
        """A ``Schedule`` from per-operation machine indices and starts."""
        ops, ms = self.inst.operations, self.inst.machines
        assignments = []
        for i in range(self.n):
            m = machine[i]
            p = next(d for mm, d in self.opts[i] if mm == m)
            assignments.append(Assignment(ops[i].id, ms[m].id, start[i], start[i] + p))
        return Schedule(instance=self.inst.name, assignments=assignments, **kw)  # type: ignore[arg-type]

    def from_schedule(self, schedule: Schedule) -> tuple[list[int], list[int]]:
        """Per-operation machine indices and starts of ``schedule``."""
        machine = [0] * self.n
        start = [0] * self.n
        for a in schedule.assignments:
            i = self.inst.op_index[a.op]
            machine[i] = self.inst.machine_index[a.machine]
            start[i] = a.start
        return machine, start

    def duration(self, i: int, m: int) -> int:
        """Processing time of operation ``i`` on machine ``m``."""
        for mm, d in self.opts[i]:
            if mm == m:
                return d
        raise KeyError(m)


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def compile_instance(inst: Instance) -> Compiled:
    """Index ``inst`` (which must have passed ``check()``)."""
    mi, oi = inst.machine_index, inst.op_index
    orders = {o.id: k for k, o in enumerate(inst.orders)}
    fams: dict[str, int] = {}
    for op in inst.operations:
        if op.family is not None:
            fams.setdefault(op.family, len(fams))
    for s in inst.setups:
        fams.setdefault(s.before, len(fams))
        fams.setdefault(s.after, len(fams))
    n = len(inst.operations)
    opts = [sorted((mi[m], p) for m, p in op.durations.items()) for op in inst.operations]
    preds = [[oi[p] for p in op.predecessors] for op in inst.operations]
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(preds):
        for p in ps:
            succs[p].append(i)
    order_of = [orders[op.order] for op in inst.operations]
    release = [inst.orders[order_of[i]].release for i in range(n)]
    family = [fams[op.family] if op.family is not None else -1 for op in inst.operations]
    setup = {(mi[s.machine], fams[s.before], fams[s.after]): s.time for s in inst.setups if s.time > 0}
    down = [_merge(list(m.unavailable)) for m in inst.machines]
    topo = [oi[x] for x in inst.topological_order()]
    min_dur = [min(p for _, p in o) for o in opts]
    head = [0] * n
    for i in topo:
        h = release[i]
        for p in preds[i]:
            h = max(h, head[p] + min_dur[p])
        head[i] = h
    tail = [0] * n
    for i in reversed(topo):
        tail[i] = max((tail[s] + min_dur[s] for s in succs[i]), default=0)
    order_ops: list[list[int]] = [[] for _ in inst.orders]
    for i in range(n):
        order_ops[order_of[i]].append(i)
    return Compiled(
        inst=inst,
        n=n,
        nm=len(inst.machines),
        opts=opts,
        preds=preds,
        succs=succs,
        order_of=order_of,
        release=release,
        family=family,
        setup=setup,
        down=down,
        head=head,
        tail=tail,
        topo=topo,
        min_dur=min_dur,
        sinks=[i for i in range(n) if not succs[i]],
        order_ops=order_ops,
    )


def machine_sequences(c: Compiled, machine: list[int], start: list[int]) -> list[list[int]]:
    """Per machine, its operations in start order."""
    seqs: list[list[int]] = [[] for _ in range(c.nm)]
    for i in range(c.n):
        seqs[machine[i]].append(i)
    for s in seqs:
        s.sort(key=lambda i: start[i])
    return seqs


def critical_path(c: Compiled, machine: list[int], start: list[int]) -> list[int]:
    """Operations on one longest path of the schedule (ending at its last operation), first to last."""
    if c.n == 0:
        return []
    end = [start[i] + c.duration(i, machine[i]) for i in range(c.n)]
    seqs = machine_sequences(c, machine, start)
    prev_on_machine = [-1] * c.n
    for seq in seqs:
        for a, b in itertools.pairwise(seq):
            prev_on_machine[b] = a
    cur = max(range(c.n), key=lambda i: end[i])
    path = [cur]
    while True:
        nxt = -1
        pm = prev_on_machine[cur]
        if pm >= 0 and end[pm] + c.setup_time(machine[cur], pm, cur) == start[cur]:
            nxt = pm
        else:
            for p in c.preds[cur]:
                if end[p] == start[cur]:
                    nxt = p
                    break
        if nxt < 0:
            break
        path.append(nxt)
        cur = nxt
    path.reverse()
    return path


def left_shift(c: Compiled, machine: list[int], start: list[int]) -> list[int]:
    """Starts of the semi-active schedule with the same machine sequences (each op as early as allowed)."""
    seqs = machine_sequences(c, machine, start)
    prev_on_machine = [-1] * c.n
    for seq in seqs:
        for a, b in itertools.pairwise(seq):
            prev_on_machine[b] = a
    new = [0] * c.n
    order = sorted(range(c.n), key=lambda i: start[i])
    for i in order:
        t = c.release[i]
        for p in c.preds[i]:
            t = max(t, new[p] + c.duration(p, machine[p]))
        pm = prev_on_machine[i]
        if pm >= 0:
            t = max(t, new[pm] + c.duration(pm, machine[pm]) + c.setup_time(machine[i], pm, i))
        new[i] = c.fit(machine[i], t, c.duration(i, machine[i]))
    return new
