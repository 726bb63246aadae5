"""C-MAPSS reader: bad input is refused naming the line and column, or the unit."""

from __future__ import annotations

import pytest

from gongyun.apps.maintenance import cmapss
from gongyun.apps.maintenance.errors import DataInvalid
from tests.apps.maintenance.data import cmapss_rows, cmapss_text, shared


def _text(**edits: str) -> str:
    lines = cmapss_text(cmapss_rows(units=3)).splitlines()
    for k, v in edits.items():
        lines[int(k.removeprefix("line")) - 1] = v
    return "\n".join(lines) + "\n"


def test_parses_fd001() -> None:
    h = cmapss.read_histories(shared("cmapss/train_FD001.txt"))
    assert len(h.units) == 20631 and len(h.unit_ids()) == 100
    assert h.sensor_names == cmapss.DEFAULT_SENSORS
    assert h.rul()[h.unit_slices()[1].stop - 1] == 0


def test_missing_and_extra_columns_name_the_line() -> None:
    good = _text().splitlines()
    short = good[4].rsplit(" ", 1)[0]
    with pytest.raises(DataInvalid, match=r"line 5: 25 columns, expected 26 \(missing columns\)"):
        cmapss.parse_text(_text(line5=short))
    with pytest.raises(DataInvalid, match=r"line 7: 27 columns, expected 26 \(extra columns\)"):
        cmapss.parse_text(_text(line7=good[6] + " 1.0"))


def test_non_numeric_and_nan_name_line_and_column() -> None:
    good = _text().splitlines()
    cells = good[9].split()
    cells[8] = "abc"
    with pytest.raises(DataInvalid, match=r"line 10, column 9 \(s4\): 'abc' is not a number") as exc:
        cmapss.parse_text(_text(line10=" ".join(cells)))
    assert exc.value.code == "maintenance_data_invalid" and exc.value.status == 400
    cells[8] = "NaN"
    with pytest.raises(DataInvalid, match=r"line 10, column 9 \(s4\): NaN \(not a finite number\)"):
        cmapss.parse_text(_text(line10=" ".join(cells)))
    cells = good[2].split()
    cells[1] = "2.5"
    with pytest.raises(DataInvalid, match=r"line 3, column 2 \(cycle\): '2.5' is not a positive integer"):
        cmapss.parse_text(_text(line3=" ".join(cells)))


def test_cycles_out_of_order_and_unit_split() -> None:
    rows = cmapss_rows(units=3)
    rows[5][1] = 3
    with pytest.raises(
        DataInvalid, match=r"line 6, column 2 \(cycle\): unit 1 cycle 3 does not follow cycle 5"
    ):
        cmapss.parse_text(cmapss_text(rows))
    rows = cmapss_rows(units=3)
    rows.append([1, 500, 0, 0, 100, *rows[0][5:]])
    with pytest.raises(DataInvalid, match=r"unit 1 appears again after other units"):
        cmapss.parse_text(cmapss_text(rows))


def test_training_checks_units() -> None:
    h = cmapss.parse_text(cmapss_text(cmapss_rows(units=1)), "one.txt")
    with pytest.raises(DataInvalid, match=r"one.txt: only 1 unit\(s\) \(1\); training needs"):
        cmapss.check_training(h, 30)
    rows = [r for r in cmapss_rows(units=3) if not (r[0] == 2 and r[1] > 12)]
    h = cmapss.parse_text(cmapss_text(rows), "short.txt")
    with pytest.raises(
        DataInvalid, match=r"fewer cycles than the window of 30: unit 2 \(line \d+\): 12 cycles"
    ):
        cmapss.check_training(h, 30)


def test_header_names_other_sensors() -> None:
    rows = cmapss_rows(units=2)
    text = "unit cycle setting_1 setting_2 setting_3 " + " ".join(f"t{i}" for i in range(21)) + "\n"
    h = cmapss.parse_text(text + cmapss_text(rows))
    assert h.sensor_names[0] == "t0"
    with pytest.raises(DataInvalid, match=r"line 1: a header must start with"):
        cmapss.parse_text("unit cyc a b c d\n1 1 0 0 0 1\n")
