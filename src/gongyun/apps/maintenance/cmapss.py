"""Reader of run-to-failure histories in the NASA C-MAPSS text format.

A file has one line per engine cycle, whitespace separated: ``unit cycle setting_1 setting_2
setting_3 s1 ... s21`` (26 columns). An optional first line that is not numeric names the columns
instead (``unit cycle setting_1 setting_2 setting_3`` and then any sensor names), so that histories
exported from stored telemetry, with other sensors, use the same reader. Every problem is reported
with its line and column (1-based) or its unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gongyun.apps.maintenance.errors import DataInvalid

SETTINGS = ("setting_1", "setting_2", "setting_3")
DEFAULT_SENSORS = tuple(f"s{i}" for i in range(1, 22))
DEFAULT_COLUMNS = ("unit", "cycle", *SETTINGS, *DEFAULT_SENSORS)
MAX_PROBLEMS = 10

Array = npt.NDArray[np.float64]


@dataclass
class Histories:
    """Engine histories: one row per cycle, rows of a unit consecutive and ordered by cycle."""

    units: npt.NDArray[np.int64]
    cycles: npt.NDArray[np.int64]
    settings: Array
    sensors: Array
    sensor_names: tuple[str, ...]
    source: str = ""
    first_line: dict[int, int] = field(default_factory=dict)

    def unit_ids(self) -> list[int]:
        """The unit numbers in file order."""
        seen: dict[int, None] = {}
        for u in self.units.tolist():
            seen.setdefault(int(u), None)
        return list(seen)

    def unit_slices(self) -> dict[int, slice]:
        """Row range of each unit."""
        out: dict[int, slice] = {}
        start = 0
        units = self.units
        for i in range(1, len(units) + 1):
            if i == len(units) or units[i] != units[start]:
                out[int(units[start])] = slice(start, i)
                start = i
        return out

    def subset(self, units: set[int]) -> Histories:
        """Only the rows of ``units``."""
        mask = np.isin(self.units, np.array(sorted(units), dtype=np.int64))
        return Histories(
            self.units[mask],
            self.cycles[mask],
            self.settings[mask],
            self.sensors[mask],
            self.sensor_names,
            self.source,
            {u: ln for u, ln in self.first_line.items() if u in units},
        )

    def rul(self) -> npt.NDArray[np.int64]:
        """Remaining cycles to the last recorded cycle of each row's unit (run-to-failure data)."""
        out = np.empty(len(self.units), dtype=np.int64)
        for sl in self.unit_slices().values():
            out[sl] = self.cycles[sl][-1] - self.cycles[sl]
        return out


def _fail(problems: list[str], source: str) -> DataInvalid:
    more = f" (and more; first {MAX_PROBLEMS} shown)" if len(problems) > MAX_PROBLEMS else ""
    return DataInvalid(f"{source}: " + "; ".join(problems[:MAX_PROBLEMS]) + more, problems=problems[:50])


def _header(tokens: list[str], source: str) -> tuple[str, ...]:
    names = tuple(tokens)
    if names[:5] != ("unit", "cycle", *SETTINGS) or len(names) < 6:
        raise DataInvalid(
            f"{source}: line 1: a header must start with 'unit cycle setting_1 setting_2 setting_3' "
            f"and name at least one sensor, got {' '.join(names[:6])!r}"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataInvalid(f"{source}: line 1: column name(s) repeated: {', '.join(dupes)}")
    return names


def parse_text(text: str, source: str = "data") -> Histories:
    """Parse C-MAPSS text; raise ``DataInvalid`` naming every bad line and column (first ten)."""
    lines = text.splitlines()
    columns = DEFAULT_COLUMNS
    first_data = 0
    for i, raw in enumerate(lines):
        tokens = raw.split()
        if not tokens:
            continue
        try:
            float(tokens[0])
        except ValueError:
            columns = _header(tokens, source)
            first_data = i + 1
        break
    width = len(columns)
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    problems: list[str] = []
    for i in range(first_data, len(lines)):
        tokens = lines[i].split()
        if not tokens:
            continue
        n = i + 1
        if len(tokens) != width:
            kind = "missing" if len(tokens) < width else "extra"
            problems.append(f"line {n}: {len(tokens)} columns, expected {width} ({kind} columns)")
            continue
        values: list[float] = []
        for j, tok in enumerate(tokens):
            try:
                v = float(tok)
            except ValueError:
                problems.append(f"line {n}, column {j + 1} ({columns[j]}): {tok[:20]!r} is not a number")
                v = math.nan
            else:
                if not math.isfinite(v):
                    problems.append(
                        f"line {n}, column {j + 1} ({columns[j]}): {tok[:20]} (not a finite number)"
                    )
            values.append(v)
        if len(problems) > MAX_PROBLEMS:
            break
        for j in (0, 1):
            v = values[j]
            if math.isfinite(v) and (v != int(v) or v < 1):
                problems.append(
                    f"line {n}, column {j + 1} ({columns[j]}): {tokens[j]!r} is not a positive integer"
                )
        rows.append(values)
        line_numbers.append(n)
    if problems:
        raise _fail(problems, source)
    if not rows:
        raise DataInvalid(f"{source}: no data lines")
    data = np.asarray(rows, dtype=np.float64)
    units = data[:, 0].astype(np.int64)
    cycles = data[:, 1].astype(np.int64)
    first_line: dict[int, int] = {}
    done: set[int] = set()
    for k in range(len(units)):
        u = int(units[k])
        if k > 0 and units[k - 1] == u:
            if cycles[k] <= cycles[k - 1]:
                problems.append(
                    f"line {line_numbers[k]}, column 2 (cycle): unit {u} cycle {cycles[k]} "
                    f"does not follow cycle {cycles[k - 1]}"
                )
            continue
        if u in done:
            problems.append(
                f"line {line_numbers[k]}, column 1 (unit): unit {u} appears again after other units"
            )
        done.add(u)
        first_line[u] = line_numbers[k]
        if len(problems) > MAX_PROBLEMS:
            break
    if problems:
        raise _fail(problems, source)
    return Histories(units, cycles, data[:, 2:5], data[:, 5:], tuple(columns[5:]), source, first_line)


def read_histories(path: str | Path) -> Histories:
    """Read a C-MAPSS file (see ``parse_text``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataInvalid(f"{p}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataInvalid(f"{p}: not a text file ({exc.reason} at byte {exc.start})") from None
    return parse_text(text, str(p))


def check_training(h: Histories, window: int, min_units: int = 2) -> None:
    """Refuse histories that cannot train a model: too few units, or a unit shorter than ``window``."""
    slices = h.unit_slices()
    if len(slices) < min_units:
        raise DataInvalid(
            f"{h.source}: only {len(slices)} unit(s) ({', '.join(map(str, slices))}); training needs "
            f"run-to-failure histories of at least {min_units} units"
        )
    short = [(u, sl.stop - sl.start) for u, sl in slices.items() if sl.stop - sl.start < window]
    if short:
        listed = ", ".join(f"unit {u} (line {h.first_line.get(u, '?')}): {n} cycles" for u, n in short[:10])
        raise DataInvalid(f"{h.source}: unit(s) with fewer cycles than the window of {window}: {listed}")


def constant_columns(values: Array, names: tuple[str, ...], rel_tol: float = 1e-6) -> list[str]:
    """Names of columns whose values do not vary (spread below ``rel_tol`` of their magnitude)."""
    out = []
    for j, name in enumerate(names):
        col = values[:, j]
        spread = float(col.max() - col.min())
        if spread <= rel_tol * max(1.0, float(np.abs(col).max())):
            out.append(name)
    return out
