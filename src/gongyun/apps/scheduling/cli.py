"""``gongyun app scheduling ...``: solve and check schedules from files, without a server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gongyun.apps.scheduling.domain.cpsat import Weights
from gongyun.apps.scheduling.domain.model import Objective, Schedule
from gongyun.apps.scheduling.domain.parsers import load_instance, schedule_to_csv, schedule_to_json
from gongyun.apps.scheduling.domain.search import Progress as SolveProgress
from gongyun.apps.scheduling.domain.solve import STRATEGIES, SolveOptions, solve
from gongyun.apps.scheduling.domain.validate import violations
from gongyun.apps.scheduling.errors import InstanceFileInvalid, InstanceInvalid

app = typer.Typer(help="Job shop and flexible job shop scheduling (OR-Tools CP-SAT).", no_args_is_help=True)


def _gap(s: Schedule) -> str:
    return "-" if s.gap is None else f"{100 * s.gap:.2f}%"


@app.command("solve")
def solve_cmd(
    file: Annotated[
        Path, typer.Argument(help="Instance: .fjs (Brandimarte), .json, .csv or a job-shop file.")
    ],
    time_limit: Annotated[float, typer.Option("--time-limit", help="Seconds.")] = 10.0,
    workers: Annotated[int, typer.Option("--workers", help="CP-SAT workers / LNS threads.")] = 2,
    out: Annotated[Path | None, typer.Option("--out", help="Write the schedule as JSON here.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the schedule as CSV here.")] = None,
    objective: Annotated[Objective, typer.Option("--objective")] = Objective.makespan,
    makespan_weight: Annotated[int, typer.Option("--makespan-weight")] = 1,
    tardiness_weight: Annotated[int, typer.Option("--tardiness-weight")] = 1,
    strategy: Annotated[str, typer.Option("--strategy", help="gongyun | cpsat | plain")] = "gongyun",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Solve FILE and print the makespan, the bound and the gap."""
    console = Console()
    err = Console(stderr=True)
    if strategy not in STRATEGIES:
        err.print(f"[red]error:[/red] --strategy must be one of {', '.join(STRATEGIES)}")
        raise typer.Exit(2)
    if time_limit <= 0 or workers <= 0:
        err.print("[red]error:[/red] --time-limit and --workers must be positive")
        raise typer.Exit(2)
    try:
        inst = load_instance(file)
    except (InstanceFileInvalid, InstanceInvalid) as exc:
        err.print(f"[red]error:[/red] {exc.message}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    console.print(f"instance {inst.name}: {inst.size()}", highlight=False)
    result: dict[str, Schedule] = {}

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task("solving", total=time_limit)

        def on_progress(p: SolveProgress) -> None:
            gap = (
                ""
                if not p.value or p.bound is None
                else f"  gap {100 * max(0, p.value - p.bound) / p.value:.2f}%"
            )
            bar.update(task, description=f"{p.phase:8} best {p.value}  bound {p.bound}{gap}")

        options = SolveOptions(
            objective=objective,
            weights=Weights(makespan_weight, tardiness_weight),
            time_limit=time_limit,
            workers=workers,
            seed=seed,
            strategy=strategy,
            on_progress=on_progress,
        )
        t0 = time.monotonic()
        worker = threading.Thread(target=lambda: result.setdefault("s", solve(inst, options)), daemon=True)
        worker.start()
        while worker.is_alive():
            bar.update(task, completed=min(time_limit, time.monotonic() - t0))
            worker.join(0.1)
    if "s" not in result:
        err.print("[red]error:[/red] the solver failed")
        raise typer.Exit(1)
    sched = result["s"]
    if sched.status == "infeasible":
        console.print("status   infeasible")
        for reason in sched.stats.get("reasons", []):
            console.print(f"  - {reason}", markup=False, highlight=False)
        raise typer.Exit(1)
    bad = violations(inst, sched)
    console.print(f"status   {sched.status}")
    if objective is not Objective.makespan:
        console.print(f"objective {objective.value} {sched.value}")
    console.print(f"makespan {sched.makespan}")
    console.print(f"bound    {sched.bound}")
    console.print(f"gap      {_gap(sched)}")
    console.print(f"time     {sched.wall_s:.1f} s")
    if bad:
        err.print("[red]the schedule breaks rules:[/red] " + "; ".join(bad[:5]), markup=False)
        raise typer.Exit(1)
    if out is not None:
        out.write_text(schedule_to_json(sched) + "\n", encoding="utf-8")
        console.print(f"wrote {out}")
    if csv_out is not None:
        csv_out.write_text(schedule_to_csv(inst, sched), encoding="utf-8")
        console.print(f"wrote {csv_out}")


@app.command("check")
def check_cmd(
    file: Annotated[Path, typer.Argument(help="The instance file.")],
    schedule: Annotated[Path, typer.Argument(help="A schedule JSON written by `solve --out`.")],
) -> None:
    """Check a schedule against its instance with the independent validator."""
    import json

    from gongyun.apps.scheduling.domain.model import Assignment

    try:
        inst = load_instance(file)
        data = json.loads(schedule.read_text("utf-8"))
        sched = Schedule(
            inst.name,
            [Assignment(a["op"], a["machine"], int(a["start"]), int(a["end"])) for a in data["assignments"]],
        )
    except (InstanceFileInvalid, InstanceInvalid) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        typer.echo(f"error: cannot read the schedule: {exc}", err=True)
        raise typer.Exit(2) from None
    bad = violations(inst, sched, limit=1000)
    if bad:
        for line in bad:
            typer.echo(line)
        raise typer.Exit(1)
    typer.echo(f"valid: {len(sched.assignments)} operations, makespan {sched.makespan}")
