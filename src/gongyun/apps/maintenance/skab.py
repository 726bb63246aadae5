"""Reader of ``;``-separated signal files with a ``datetime`` column (the SKAB layout).

Numeric signal columns are read; the label columns ``anomaly`` and ``changepoint`` (and any other
column named in ``LABELS``) are kept apart and never used to learn.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gongyun.apps.maintenance.errors import DataInvalid

LABELS = ("anomaly", "changepoint")
Array = npt.NDArray[np.float64]


@dataclass
class Signals:
    """Rows of a signal file: timestamps as text, signal values, labels when present."""

    datetimes: list[str]
    values: Array
    names: list[str]
    labels: dict[str, Array] = field(default_factory=dict)
    source: str = ""


def parse_rows(rows: list[list[str]], source: str = "data") -> Signals:
    """Parse rows (header first) of a ``;``-separated file."""
    if not rows:
        raise DataInvalid(f"{source}: empty file")
    header = [c.strip() for c in rows[0]]
    if "datetime" not in header:
        raise DataInvalid(f"{source}: line 1: no 'datetime' column (columns: {', '.join(header)[:200]})")
    t_col = header.index("datetime")
    sig_cols = [j for j, c in enumerate(header) if j != t_col and c not in LABELS and c]
    lab_cols = [j for j, c in enumerate(header) if c in LABELS]
    if not sig_cols:
        raise DataInvalid(f"{source}: line 1: no signal columns besides datetime and labels")
    problems: list[str] = []
    times: list[str] = []
    vals: list[list[float]] = []
    labs: list[list[float]] = []
    for i, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            problems.append(f"line {i}: {len(row)} columns, expected {len(header)}")
            continue
        line: list[float] = []
        for j in sig_cols:
            cell = row[j].strip()
            try:
                v = float(cell)
            except ValueError:
                problems.append(f"line {i}, column {j + 1} ({header[j]}): {cell[:20]!r} is not a number")
                v = math.nan
            else:
                if not math.isfinite(v):
                    problems.append(f"line {i}, column {j + 1} ({header[j]}): {cell} (not a finite number)")
            line.append(v)
        if len(problems) >= 10:
            break
        times.append(row[t_col].strip())
        vals.append(line)
        labs.append([float(row[j]) if row[j].strip() else math.nan for j in lab_cols])
    if problems:
        raise DataInvalid(f"{source}: " + "; ".join(problems[:10]), problems=problems)
    if not vals:
        raise DataInvalid(f"{source}: no data rows")
    lab_arr = np.asarray(labs, dtype=np.float64).reshape(len(labs), len(lab_cols))
    return Signals(
        times,
        np.asarray(vals, dtype=np.float64),
        [header[j] for j in sig_cols],
        {header[j]: lab_arr[:, k] for k, j in enumerate(lab_cols)},
        source,
    )


def read_signals(path: str | Path) -> Signals:
    """Read a ``;``-separated signal file."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
    except FileNotFoundError:
        raise DataInvalid(f"{p}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataInvalid(f"{p}: not a text file ({exc.reason} at byte {exc.start})") from None
    return parse_rows(rows, str(p))
