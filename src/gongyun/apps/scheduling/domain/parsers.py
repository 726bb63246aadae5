"""Readers and writers: OR-Library / Taillard job-shop files, Brandimarte ``.fjs``, CSV and JSON.

Every reader refuses a malformed file with ``InstanceFileInvalid`` naming the line, and every
instance it returns has passed ``Instance.check()``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gongyun.apps.scheduling.domain.model import Instance, Machine, Operation, Order, Schedule, Setup
from gongyun.apps.scheduling.errors import InstanceFileInvalid, InstanceInvalid


def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank, non-comment lines."""
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield no, line.split()


def _ints(no: int, tokens: list[str], what: str) -> list[int]:
    try:
        return [int(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise InstanceFileInvalid(f"line {no}: {what}: {bad!r} is not an integer", line=no) from None


def _jobshop(name: str, times: list[list[int]], machines: list[list[int]], n_machines: int) -> Instance:
    """A job shop from per-job lists of processing times and 0-based machines."""
    ms = [Machine(id=f"M{k}") for k in range(n_machines)]
    orders = [Order(id=f"J{j}") for j in range(len(times))]
    ops = []
    for j, (ts, mj) in enumerate(zip(times, machines, strict=True)):
        for k, (t, m) in enumerate(zip(ts, mj, strict=True)):
            ops.append(
                Operation(
                    id=f"J{j}.{k}",
                    order=f"J{j}",
                    durations={f"M{m}": t},
                    predecessors=(f"J{j}.{k - 1}",) if k else (),
                )
            )
    inst = Instance(name=name, machines=ms, orders=orders, operations=ops)
    inst.check()
    return inst


def parse_jobshop(text: str, name: str = "instance") -> Instance:
    """Read a job shop in OR-Library format (``n m`` then ``machine time`` pairs) or Taillard format."""
    lines = list(_lines(text))
    if not lines:
        raise InstanceFileInvalid("line 1: the file is empty", line=1)
    if any(tok[0].lower().startswith("times") for _, tok in lines):
        return _parse_taillard(lines, name)
    no, head = lines[0]
    dims = _ints(no, head, "header 'jobs machines'")
    if len(dims) != 2 or dims[0] <= 0 or dims[1] <= 0:
        raise InstanceFileInvalid(f"line {no}: header must be two positive integers 'jobs machines'", line=no)
    n, m = dims
    body = lines[1:]
    if len(body) < n:
        last = body[-1][0] + 1 if body else no + 1
        raise InstanceFileInvalid(f"line {last}: expected {n} job lines, found {len(body)}", line=last)
    if len(body) > n:
        extra = body[n][0]
        raise InstanceFileInvalid(
            f"line {extra}: more job lines than the {n} the header announces", line=extra
        )
    times, machines = [], []
    for no, tok in body:
        vals = _ints(no, tok, "job line")
        if len(vals) != 2 * m:
            raise InstanceFileInvalid(
                f"line {no}: a job line needs {m} 'machine time' pairs ({2 * m} integers), found {len(vals)}",
                line=no,
            )
        ms, ts = vals[0::2], vals[1::2]
        _check_job(no, ms, ts, m, base=0)
        times.append(ts)
        machines.append(ms)
    return _jobshop(name, times, machines, m)


def _check_job(no: int, ms: list[int], ts: list[int], m: int, base: int) -> None:
    for mach in ms:
        if not base <= mach < m + base:
            raise InstanceFileInvalid(
                f"line {no}: machine {mach} outside {base}..{m - 1 + base} (unknown machine)", line=no
            )
    for t in ts:
        if t <= 0:
            raise InstanceFileInvalid(f"line {no}: processing time {t} is not positive", line=no)


def _parse_taillard(lines: list[tuple[int, list[str]]], name: str) -> Instance:
    """Taillard's format: a header, ``Times`` (n lines of m), ``Machines`` (n lines of m, 1-based)."""
    dims: list[int] | None = None
    section: str | None = None
    times: list[tuple[int, list[int]]] = []
    machines: list[tuple[int, list[int]]] = []
    for no, tok in lines:
        word = tok[0].lower()
        if word.startswith("times"):
            section = "times"
            continue
        if word.startswith("machines"):
            section = "machines"
            continue
        if word.startswith("nb") or not tok[0].lstrip("-").isdigit():
            continue  # the "Nb of jobs, Nb of Machines, ..." caption
        vals = _ints(no, tok, "line")
        if section is None:
            if dims is None:
                dims = vals
            continue
        (times if section == "times" else machines).append((no, vals))
    if dims is None or len(dims) < 2:
        raise InstanceFileInvalid("line 1: no 'jobs machines' header before 'Times'", line=1)
    n, m = dims[0], dims[1]
    for label, rows in (("Times", times), ("Machines", machines)):
        if len(rows) != n:
            where = rows[-1][0] if rows else lines[-1][0]
            raise InstanceFileInvalid(
                f"line {where}: section {label} has {len(rows)} rows, expected {n}", line=where
            )
        for no, vals in rows:
            if len(vals) != m:
                raise InstanceFileInvalid(f"line {no}: expected {m} values, found {len(vals)}", line=no)
    for (no, ts), (no2, ms) in zip(times, machines, strict=True):
        _check_job(no, [1] * m, ts, m, base=1)
        _check_job(no2, ms, [1] * m, m, base=1)
    return _jobshop(name, [t for _, t in times], [[x - 1 for x in ms] for _, ms in machines], m)


def parse_fjs(text: str, name: str = "instance") -> Instance:
    """Read a Brandimarte ``.fjs`` flexible job shop (machines numbered from 1)."""
    lines = list(_lines(text))
    if not lines:
        raise InstanceFileInvalid("line 1: the file is empty", line=1)
    no, head = lines[0]
    try:
        n, m = int(head[0]), int(head[1])
    except (ValueError, IndexError):
        raise InstanceFileInvalid(f"line {no}: header must start with 'jobs machines'", line=no) from None
    if n <= 0 or m <= 0:
        raise InstanceFileInvalid(f"line {no}: jobs and machines must be positive", line=no)
    body = lines[1:]
    if len(body) != n:
        where = body[n][0] if len(body) > n else (body[-1][0] + 1 if body else no + 1)
        raise InstanceFileInvalid(f"line {where}: expected {n} job lines, found {len(body)}", line=where)
    machines = [Machine(id=f"M{k}") for k in range(1, m + 1)]
    orders, ops = [], []
    for j, (no, tok) in enumerate(body):
        vals = _ints(no, tok, "job line")
        pos = 0

        def take(what: str, no: int = no, vals: list[int] = vals) -> int:
            nonlocal pos
            if pos >= len(vals):
                raise InstanceFileInvalid(f"line {no}: the line ends where {what} was expected", line=no)
            pos += 1
            return vals[pos - 1]

        n_ops = take("the number of operations")
        if n_ops <= 0:
            raise InstanceFileInvalid(f"line {no}: a job needs at least one operation", line=no)
        orders.append(Order(id=f"J{j}"))
        for k in range(n_ops):
            n_alt = take(f"operation {k + 1}'s number of machines")
            if n_alt <= 0:
                raise InstanceFileInvalid(f"line {no}: operation {k + 1} has no eligible machine", line=no)
            durations: dict[str, int] = {}
            for _ in range(n_alt):
                mach = take("a machine number")
                t = take("a processing time")
                if not 1 <= mach <= m:
                    raise InstanceFileInvalid(
                        f"line {no}: unknown machine {mach} (machines are 1..{m})", line=no
                    )
                if t <= 0:
                    raise InstanceFileInvalid(f"line {no}: processing time {t} is not positive", line=no)
                durations[f"M{mach}"] = min(t, durations.get(f"M{mach}", t))
            ops.append(
                Operation(
                    id=f"J{j}.{k}",
                    order=f"J{j}",
                    durations=durations,
                    predecessors=(f"J{j}.{k - 1}",) if k else (),
                )
            )
        if pos != len(vals):
            raise InstanceFileInvalid(
                f"line {no}: {len(vals) - pos} values left after {n_ops} operations", line=no
            )
    inst = Instance(name=name, machines=machines, orders=orders, operations=ops)
    inst.check()
    return inst


def instance_from_json(data: Any, name: str = "instance") -> Instance:
    """Build an instance from the JSON document ``Instance.to_dict()`` writes."""
    if not isinstance(data, dict):
        raise InstanceFileInvalid("the JSON document must be an object with machines, orders, operations")
    try:
        machines = [
            Machine(
                id=str(m["id"]),
                name=str(m.get("name") or ""),
                asset_path=m.get("asset_path"),
                unavailable=tuple((int(a), int(b)) for a, b in m.get("unavailable") or ()),
            )
            for m in data.get("machines") or []
        ]
        orders = [
            Order(
                id=str(o["id"]),
                product=str(o.get("product") or ""),
                quantity=int(o.get("quantity", 1)),
                release=int(o.get("release") or 0),
                due=None if o.get("due") is None else int(o["due"]),
                deadline=None if o.get("deadline") is None else int(o["deadline"]),
                weight=int(o.get("weight", 1)),
                lot=o.get("lot"),
            )
            for o in data.get("orders") or []
        ]
        ops = [
            Operation(
                id=str(op["id"]),
                order=str(op["order"]),
                name=str(op.get("name") or ""),
                durations={str(k): v for k, v in (op.get("durations") or {}).items()},
                predecessors=tuple(str(p) for p in op.get("predecessors") or ()),
                family=op.get("family"),
            )
            for op in data.get("operations") or []
        ]
        setups = [
            Setup(
                machine=str(s["machine"]), before=str(s["before"]), after=str(s["after"]), time=int(s["time"])
            )
            for s in data.get("setups") or []
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise InstanceFileInvalid(f"the JSON document is not a scheduling instance: {exc!r}") from None
    inst = Instance(
        name=str(data.get("name") or name), machines=machines, orders=orders, operations=ops, setups=setups
    )
    inst.check()
    return inst


ORDER_COLUMNS = ("order", "operation", "machine", "time")


def instance_from_csv(text: str, name: str = "instance", machines: list[Machine] | None = None) -> Instance:
    """Read orders and routings from CSV, one row per (operation, eligible machine).

    Columns: ``order, operation, machine, time`` and optionally ``predecessors`` (space-separated
    operation ids; default: the order's previous operation), ``release``, ``due``, ``deadline``,
    ``weight``, ``product``, ``quantity``, ``lot``, ``family``. Machines not in ``machines`` are refused
    when ``machines`` is given (unknown machine); otherwise they are created.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ORDER_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InstanceFileInvalid(f"line 1: missing column(s) {', '.join(missing)}", line=1)
    known = {m.id for m in machines} if machines is not None else None
    order_rows: dict[str, dict[str, str]] = {}
    op_rows: dict[str, dict[str, Any]] = {}
    seq: dict[str, list[str]] = {}
    for row in reader:
        no = reader.line_num
        oid, opid, mid = (row.get(k, "").strip() for k in ("order", "operation", "machine"))
        if not oid or not opid:
            raise InstanceFileInvalid(f"line {no}: order and operation are required", line=no)
        if not mid:
            raise InstanceFileInvalid(f"line {no}: operation {opid} has no eligible machine", line=no)
        if known is not None and mid not in known:
            raise InstanceFileInvalid(f"line {no}: unknown machine {mid!r}", line=no)
        try:
            t = int(row["time"])
        except (TypeError, ValueError):
            raise InstanceFileInvalid(
                f"line {no}: time {row.get('time')!r} is not an integer", line=no
            ) from None
        if t <= 0:
            raise InstanceFileInvalid(f"line {no}: processing time {t} is not positive", line=no)
        order_rows.setdefault(oid, row)
        key = opid if "." in opid else f"{oid}.{opid}"
        if key not in op_rows:
            seq.setdefault(oid, []).append(key)
            op_rows[key] = {"order": oid, "durations": {}, "row": row, "line": no}
        op_rows[key]["durations"][mid] = t

    def num(row: dict[str, str], col: str, default: int | None) -> int | None:
        val = (row.get(col) or "").strip()
        if not val:
            return default
        try:
            return int(val)
        except ValueError:
            raise InstanceFileInvalid(f"{col} {val!r} of order {row['order']} is not an integer") from None

    orders = []
    for oid, row in order_rows.items():
        orders.append(
            Order(
                id=oid,
                product=(row.get("product") or "").strip(),
                quantity=num(row, "quantity", 1) or 1,
                release=num(row, "release", 0) or 0,
                due=num(row, "due", None),
                deadline=num(row, "deadline", None),
                weight=num(row, "weight", 1) or 0,
                lot=(row.get("lot") or "").strip() or None,
            )
        )
    ops = []
    for oid, keys in seq.items():
        for k, key in enumerate(keys):
            info = op_rows[key]
            preds_txt = (info["row"].get("predecessors") or "").strip()
            if preds_txt:
                preds = tuple(p if "." in p else f"{oid}.{p}" for p in preds_txt.replace(";", " ").split())
            else:
                preds = (keys[k - 1],) if k else ()
            ops.append(
                Operation(
                    id=key,
                    order=oid,
                    durations=info["durations"],
                    predecessors=preds,
                    family=(info["row"].get("family") or "").strip() or None,
                )
            )
    if machines is None:
        ids = sorted({m for op in ops for m in op.durations})
        machines = [Machine(id=m) for m in ids]
    inst = Instance(name=name, machines=machines, orders=orders, operations=ops)
    inst.check()
    return inst


def load_instance(path: Path) -> Instance:
    """Read an instance file, choosing the format by its suffix (.fjs, .json, .csv, else job shop)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InstanceFileInvalid(f"cannot read {path}: {exc}") from None
    name = path.stem
    suffix = path.suffix.lower()
    try:
        if suffix == ".fjs":
            return parse_fjs(text, name)
        if suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InstanceFileInvalid(
                    f"line {exc.lineno}: invalid JSON: {exc.msg}", line=exc.lineno
                ) from None
            return instance_from_json(data, name)
        if suffix == ".csv":
            return instance_from_csv(text, name)
        return parse_jobshop(text, name)
    except InstanceFileInvalid as exc:
        raise InstanceFileInvalid(f"{path.name}: {exc.message}", **exc.details) from None
    except InstanceInvalid as exc:
        raise InstanceInvalid(f"{path.name}: {exc.message}", **exc.details) from None


def schedule_to_json(schedule: Schedule) -> str:
    """The schedule as a JSON document."""
    return json.dumps(schedule.to_dict(), indent=2, ensure_ascii=False)


def schedule_to_csv(instance: Instance, schedule: Schedule) -> str:
    """The schedule as CSV: ``order, operation, machine, start, end``, sorted by machine then start."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["order", "operation", "machine", "start", "end"])
    for a in sorted(schedule.assignments, key=lambda a: (a.machine, a.start)):
        op = instance.operations[instance.op_index[a.op]]
        writer.writerow([op.order, a.op, a.machine, a.start, a.end])
    return out.getvalue()
