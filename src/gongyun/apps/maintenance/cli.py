"""``gongyun app maintenance ...``: RUL training and prediction, anomaly scoring of files (no server)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gongyun.errors import GongyunError

app = typer.Typer(
    help="Equipment maintenance: remaining useful life and anomaly scoring.", no_args_is_help=True
)
rul_app = typer.Typer(
    help="Remaining useful life from run-to-failure histories (C-MAPSS format).", no_args_is_help=True
)
app.add_typer(rul_app, name="rul")
out = Console()
err = Console(stderr=True)


def _fail(exc: GongyunError) -> typer.Exit:
    err.print(f"[red]error[/] ({exc.code}): {exc.message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@rul_app.command("train")
def rul_train(
    data: Annotated[Path, typer.Option("--data", help="Run-to-failure histories (C-MAPSS text format).")],
    model: Annotated[Path, typer.Option("--model", help="Model directory to write (replaced atomically).")],
    folds: Annotated[int, typer.Option(help="Cross-validation folds by unit for the metrics (0: none).")] = 5,
    sensors: Annotated[
        str | None, typer.Option(help="Comma-separated sensors (default: all that vary).")
    ] = None,
    window: Annotated[int, typer.Option(help="Feature window in cycles.")] = 30,
    cap: Annotated[int, typer.Option(help="RUL cap (piecewise-linear target).")] = 125,
    algorithm: Annotated[str, typer.Option(help="lightgbm or ridge.")] = "lightgbm",
    threads: Annotated[int, typer.Option(help="Threads for LightGBM (1 is best on a busy machine).")] = 1,
) -> None:
    """Train a RUL model; print its cross-validated metrics."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from gongyun.apps.maintenance import cmapss, rul
    from gongyun.apps.maintenance.features import FeatureSpec

    try:
        h = cmapss.read_histories(data)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=not sys.stderr.isatty(),
        ) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = int(bar.add_task(stage, total=total))
                bar.update(tasks[stage], completed=done)  # type: ignore[arg-type]

            m = rul.train_to_directory(
                h,
                model,
                data_path=data,
                folds=folds,
                progress=progress,
                sensors=sensors.split(",") if sensors else None,
                spec=FeatureSpec(window=window),
                cap=cap,
                algorithm=algorithm,
                threads=threads,
            )
    except GongyunError as exc:
        raise _fail(exc) from None
    metrics = m.meta.get("metrics")
    out.print(f"model written to {model} ({m.algorithm}, sensors {', '.join(m.sensors)})", highlight=False)
    if metrics:
        out.print(
            f"{metrics['folds']}-fold CV by unit: RMSE {metrics['rmse']:.2f}  MAE {metrics['mae']:.2f}  "
            f"NASA score {metrics['score']:.0f} over {metrics['rows']} rows of {metrics['units']} units",
            highlight=False,
        )
    out.print(f"training took {m.meta['training_seconds']} s", highlight=False)


@rul_app.command("predict")
def rul_predict(
    model: Annotated[Path, typer.Option("--model", help="Model directory written by `rul train`.")],
    data: Annotated[Path, typer.Option("--data", help="Histories cut short (C-MAPSS text format).")],
    out_path: Annotated[Path, typer.Option("--out", help="CSV to write: unit,rul (one line per unit).")],
    interval: Annotated[
        bool, typer.Option(help="Also write rul_low,rul_high (10 %/90 % quantiles).")
    ] = False,
) -> None:
    """Predict each unit's RUL at its last cycle."""
    from gongyun.apps.maintenance import cmapss, rul

    try:
        m = rul.load(model)
        h = cmapss.read_histories(data)
        rows = m.predict_last(h)
        rul.write_predictions(rows, out_path, interval=interval)
    except GongyunError as exc:
        raise _fail(exc) from None
    out.print(f"{len(rows)} units predicted, written to {out_path}", highlight=False)


@app.command("anomalies")
def anomalies(
    data: Annotated[Path, typer.Option("--data", help="';'-separated CSV with a datetime column.")],
    out_path: Annotated[Path, typer.Option("--out", help="CSV to write: datetime,score,anomaly.")],
    train_rows: Annotated[int, typer.Option("--train-rows", help="Learn from the first N rows only.")] = 400,
    detector: Annotated[str, typer.Option(help="adaptive (default) or pca (T²+Q baseline).")] = "adaptive",
    contributions: Annotated[
        bool, typer.Option(help="Add a column naming the top contributing signals.")
    ] = False,
) -> None:
    """Score every row after the first N of a signal file."""
    from gongyun.apps.maintenance.scoring import score_file

    try:
        n = score_file(data, out_path, train_rows=train_rows, detector=detector, contributions=contributions)
    except GongyunError as exc:
        raise _fail(exc) from None
    out.print(f"{n} rows scored, written to {out_path}", highlight=False)


if __name__ == "__main__":  # python -m gongyun.apps.maintenance.cli (before `gongyun app maintenance`)
    app()
