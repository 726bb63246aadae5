"""``gongyun app trace ...``: mint identifiers and print QR labels from a template, without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gongyun.apps.trace.domain.ids import mint, parse_template
from gongyun.apps.trace.domain.labels import label_uri, qr
from gongyun.errors import GongyunError

app = typer.Typer(help="Traceability: identifiers and GS1 Digital Link QR labels.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Traceability: identifiers and GS1 Digital Link QR labels."""


@app.command("labels")
def labels(
    template: Annotated[
        Path, typer.Argument(help="Template JSON: {name, kind, scheme, gtin, pattern, ...}.")
    ],
    count: Annotated[int, typer.Option("--count", "-n", help="How many identifiers.")] = 100,
    start: Annotated[int, typer.Option("--start", help="First sequence number.")] = 1,
    resolver: Annotated[
        str, typer.Option("--resolver", help="Digital Link resolver base URL.")
    ] = "https://id.gs1.org",
    out: Annotated[Path, typer.Option("--out", help="Directory for the labels and index.csv.")] = Path(
        "labels"
    ),
    fmt: Annotated[str, typer.Option("--format", help="svg | pdf | png")] = "svg",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Mint COUNT identifiers from TEMPLATE and write one QR label each, with a progress bar."""
    err = Console(stderr=True)
    if fmt not in {"svg", "pdf", "png"} or not 1 <= count <= 1_000_000:
        err.print("[red]error:[/red] --format is svg, pdf or png; --count is 1..1000000")
        raise typer.Exit(2)
    try:
        tpl = parse_template(json.loads(template.read_text()))
    except (OSError, ValueError) as exc:
        err.print("[red]error:[/red]", f"cannot read {template}: {exc}".replace("[", r"\["))
        raise typer.Exit(2) from None
    except GongyunError as exc:
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in exc.details.get("errors", []))
        err.print("[red]error:[/red]", f"{exc.message}: {problems}".replace("[", r"\["), highlight=False)
        raise typer.Exit(2) from None
    out.mkdir(parents=True, exist_ok=True)
    items = mint(tpl, start, count)
    lines = ["n,key,uri,file"]
    columns = (TextColumn("labels"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=quiet) as bar:
        task = bar.add_task("labels", total=count)
        for n, m in enumerate(items, start):
            uri = label_uri(resolver, m.key)
            name = f"{tpl.name}-{n:07d}.{fmt}"
            (out / name).write_bytes(qr(uri, fmt))  # type: ignore[arg-type]
            lines.append(f"{n},{m.key},{uri},{name}")
            bar.advance(task)
    (out / "index.csv").write_text("\n".join(lines) + "\n")
    Console().print(f"{count} labels of template {tpl.name} in {out} (index.csv)", highlight=False)
