"""The scheduling instance and schedule: orders, operations, machines, setups, calendars.

Times are integers in the instance's time unit (minutes in the app, abstract units in the
benchmark files), counted from the instance's time zero. An instance is checked once, by
``Instance.check()``, which raises ``InstanceInvalid`` naming every problem it finds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from gongyun.apps.scheduling.errors import InstanceInvalid


class Objective(StrEnum):
    """What a solve minimises."""

    makespan = "makespan"
    tardiness = "tardiness"  # total weighted tardiness
    weighted = "weighted"  # makespan_weight * makespan + tardiness_weight * weighted tardiness


@dataclass(frozen=True)
class Machine:
    """A machine (equipment of the asset model in the app) with its calendar of unavailable windows."""

    id: str
    name: str = ""
    asset_path: str | None = None
    # [start, end) windows where the machine cannot work: off shifts, planned maintenance, breakdowns
    unavailable: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Order:
    """A production order: a lot of a product with its release, due date and weight."""

    id: str
    product: str = ""
    quantity: int = 1
    release: int = 0
    due: int | None = None
    deadline: int | None = None  # hard limit: the order must be finished by then
    weight: int = 1
    lot: str | None = None  # lot identifier, so traceability can follow the order


@dataclass(frozen=True)
class Operation:
    """One step of an order's routing: the machines that can run it and how long on each."""

    id: str
    order: str
    durations: Mapping[str, int]  # machine id -> processing time on that machine
    predecessors: tuple[str, ...] = ()  # operation ids that must finish first (chains and trees)
    family: str | None = None  # setup family for sequence-dependent setups
    name: str = ""


@dataclass(frozen=True)
class Setup:
    """Setup time on ``machine`` between an operation of ``before`` family and one of ``after``."""

    machine: str
    before: str
    after: str
    time: int


@dataclass
class Instance:
    """A scheduling problem: machines, orders and their operations, setups."""

    name: str
    machines: list[Machine]
    orders: list[Order]
    operations: list[Operation]
    setups: list[Setup] = field(default_factory=list)

    @cached_property
    def machine_index(self) -> dict[str, int]:
        """Machine id -> position."""
        return {m.id: i for i, m in enumerate(self.machines)}

    @cached_property
    def op_index(self) -> dict[str, int]:
        """Operation id -> position."""
        return {o.id: i for i, o in enumerate(self.operations)}

    @cached_property
    def order_by_id(self) -> dict[str, Order]:
        """Order id -> order."""
        return {o.id: o for o in self.orders}

    @cached_property
    def setup_table(self) -> dict[tuple[str, str, str], int]:
        """(machine, before family, after family) -> setup time."""
        return {(s.machine, s.before, s.after): s.time for s in self.setups}

    @cached_property
    def successors(self) -> dict[str, list[str]]:
        """Operation id -> the operations that directly follow it."""
        succ: dict[str, list[str]] = {o.id: [] for o in self.operations}
        for op in self.operations:
            for p in op.predecessors:
                if p in succ:
                    succ[p].append(op.id)
        return succ

    def setup_time(self, machine: str, before: Operation, after: Operation) -> int:
        """The setup between two operations run one after the other on ``machine``."""
        if before.family is None or after.family is None:
            return 0
        return self.setup_table.get((machine, before.family, after.family), 0)

    @property
    def is_flexible(self) -> bool:
        """True when some operation has a choice of machines."""
        return any(len(o.durations) > 1 for o in self.operations)

    @property
    def has_setups(self) -> bool:
        """True when some setup time is positive."""
        return any(s.time > 0 for s in self.setups)

    def size(self) -> str:
        """``orders x machines (operations)`` for display."""
        return f"{len(self.orders)}x{len(self.machines)} ({len(self.operations)} ops)"

    def topological_order(self) -> list[str]:
        """Operation ids with every predecessor before its successors (``check()`` first)."""
        indeg = {o.id: len(o.predecessors) for o in self.operations}
        ready = [o.id for o in self.operations if indeg[o.id] == 0]
        out: list[str] = []
        while ready:
            oid = ready.pop()
            out.append(oid)
            for s in self.successors[oid]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    ready.append(s)
        return out

    def check(self) -> None:
        """Raise ``InstanceInvalid`` listing every problem of the instance (nothing when it is sound)."""
        problems = self.problems()
        if problems:
            shown = "; ".join(problems[:20]) + (
                f"; ... ({len(problems)} problems)" if len(problems) > 20 else ""
            )
            raise InstanceInvalid(f"instance {self.name!r}: {shown}", problems=problems)

    def problems(self) -> list[str]:
        """Every problem of the instance, as sentences."""
        out: list[str] = []
        out += _duplicates("machine", (m.id for m in self.machines))
        out += _duplicates("order", (o.id for o in self.orders))
        out += _duplicates("operation", (o.id for o in self.operations))
        if not self.machines:
            out.append("no machines")
        for m in self.machines:
            for a, b in m.unavailable:
                if b <= a:
                    out.append(f"machine {m.id}: unavailable window [{a}, {b}) is empty or reversed")
        for order in self.orders:
            if order.release < 0:
                out.append(f"order {order.id}: release date {order.release} is negative")
            if order.due is not None and order.due < order.release:
                out.append(
                    f"order {order.id}: due date {order.due} is before the release date {order.release}"
                )
            if order.deadline is not None and order.deadline < order.release:
                out.append(
                    f"order {order.id}: deadline {order.deadline} is before the release date {order.release}"
                )
            if order.weight < 0:
                out.append(f"order {order.id}: weight {order.weight} is negative")
            if order.quantity <= 0:
                out.append(f"order {order.id}: quantity {order.quantity} is not positive")
        ids = set(self.op_index)
        for op in self.operations:
            if op.order not in self.order_by_id:
                out.append(f"operation {op.id}: unknown order {op.order!r}")
            if not op.durations:
                out.append(f"operation {op.id}: no eligible machine")
            for mid, p in op.durations.items():
                if mid not in self.machine_index:
                    out.append(f"operation {op.id}: unknown machine {mid!r}")
                if not isinstance(p, int) or p <= 0:
                    out.append(f"operation {op.id}: processing time {p!r} on {mid} is not a positive integer")
            for pred in op.predecessors:
                if pred not in ids:
                    out.append(f"operation {op.id}: unknown predecessor {pred!r}")
                elif pred == op.id:
                    out.append(f"operation {op.id}: precedes itself")
        for s in self.setups:
            if s.machine not in self.machine_index:
                out.append(f"setup {s.before}->{s.after}: unknown machine {s.machine!r}")
            if s.time < 0:
                out.append(f"setup {s.before}->{s.after} on {s.machine}: negative time {s.time}")
        if not out:
            cycle = self._cycle()
            if cycle:
                out.append("cycle in the precedence: " + " -> ".join(cycle))
        return out

    def _cycle(self) -> list[str]:
        """One precedence cycle as a list of operation ids (empty when there is none)."""
        color: dict[str, int] = {}
        preds = {o.id: o.predecessors for o in self.operations}
        for root in preds:
            if root in color:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            path: list[str] = []
            while stack:
                node, i = stack.pop()
                if i == 0:
                    color[node] = 1
                    path.append(node)
                if i < len(preds[node]):
                    stack.append((node, i + 1))
                    nxt = preds[node][i]
                    if color.get(nxt) == 1:
                        cyc = [*path[path.index(nxt) :], nxt]
                        return list(reversed(cyc))
                    if nxt not in color:
                        stack.append((nxt, 0))
                else:
                    color[node] = 2
                    path.pop()
        return []

    def to_dict(self) -> dict[str, Any]:
        """The instance as the JSON document ``parsers.instance_from_json`` reads."""
        return {
            "name": self.name,
            "machines": [
                {
                    "id": m.id,
                    "name": m.name,
                    "asset_path": m.asset_path,
                    "unavailable": [list(w) for w in m.unavailable],
                }
                for m in self.machines
            ],
            "orders": [
                {
                    "id": o.id,
                    "product": o.product,
                    "quantity": o.quantity,
                    "release": o.release,
                    "due": o.due,
                    "deadline": o.deadline,
                    "weight": o.weight,
                    "lot": o.lot,
                }
                for o in self.orders
            ],
            "operations": [
                {
                    "id": op.id,
                    "order": op.order,
                    "name": op.name,
                    "durations": dict(op.durations),
                    "predecessors": list(op.predecessors),
                    "family": op.family,
                }
                for op in self.operations
            ],
            "setups": [
                {"machine": s.machine, "before": s.before, "after": s.after, "time": s.time}
                for s in self.setups
            ],
        }


def _duplicates(kind: str, ids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in ids:
        if i in seen:
            out.append(f"duplicate {kind} id {i!r}")
        seen.add(i)
    return out


@dataclass(frozen=True)
class Assignment:
    """Where and when one operation runs."""

    op: str
    machine: str
    start: int
    end: int


@dataclass
class Schedule:
    """A schedule of an instance with what the solver knows about it."""

    instance: str
    assignments: list[Assignment]
    objective: Objective = Objective.makespan
    value: int | None = None  # objective value
    bound: int | None = None  # best proven lower bound of the objective
    status: str = "feasible"  # optimal | feasible | infeasible | unknown
    solver: str = ""
    wall_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def makespan(self) -> int:
        """The end of the last operation."""
        return max((a.end for a in self.assignments), default=0)

    @property
    def gap(self) -> float | None:
        """(value - bound) / value, or None when either is unknown."""
        if self.value is None or self.bound is None:
            return None
        if self.value == 0:
            return 0.0
        return max(0.0, (self.value - self.bound) / self.value)

    def by_op(self) -> dict[str, Assignment]:
        """Operation id -> assignment."""
        return {a.op: a for a in self.assignments}

    def to_dict(self) -> dict[str, Any]:
        """The schedule as JSON-ready data."""
        return {
            "instance": self.instance,
            "objective": self.objective.value,
            "value": self.value,
            "bound": self.bound,
            "gap": self.gap,
            "status": self.status,
            "makespan": self.makespan,
            "solver": self.solver,
            "wall_s": round(self.wall_s, 3),
            "stats": self.stats,
            "assignments": [
                {"op": a.op, "machine": a.machine, "start": a.start, "end": a.end}
                for a in sorted(self.assignments, key=lambda a: (a.start, a.machine))
            ],
        }


def tardiness(instance: Instance, schedule: Schedule) -> int:
    """Total weighted tardiness of ``schedule``."""
    ends: dict[str, int] = {}
    for a in schedule.assignments:
        oid = instance.operations[instance.op_index[a.op]].order
        ends[oid] = max(ends.get(oid, 0), a.end)
    total = 0
    for order in instance.orders:
        if order.due is not None and order.id in ends:
            total += order.weight * max(0, ends[order.id] - order.due)
    return total


def objective_value(
    instance: Instance,
    schedule: Schedule,
    objective: Objective,
    makespan_weight: int = 1,
    tardiness_weight: int = 1,
) -> int:
    """The value of ``objective`` for ``schedule``."""
    if objective is Objective.makespan:
        return schedule.makespan
    if objective is Objective.tardiness:
        return tardiness(instance, schedule)
    return makespan_weight * schedule.makespan + tardiness_weight * tardiness(instance, schedule)
