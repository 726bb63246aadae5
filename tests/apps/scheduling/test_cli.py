"""``gongyun app scheduling solve``: prints makespan, bound and gap, writes JSON/CSV, refuses bad files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gongyun.apps.scheduling.cli import app
from tests.apps.scheduling.helpers import FT06

runner = CliRunner()


def test_solve_prints_makespan_bound_gap_and_writes_json(tmp_path: Path) -> None:
    src = tmp_path / "ft06.txt"
    src.write_text(FT06)
    out = tmp_path / "schedule.json"
    csv = tmp_path / "schedule.csv"
    res = runner.invoke(
        app,
        [
            "solve",
            str(src),
            "--time-limit",
            "5",
            "--workers",
            "2",
            "--out",
            str(out),
            "--csv",
            str(csv),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "makespan 55" in res.output and "bound    55" in res.output and "gap      0.00%" in res.output
    data = json.loads(out.read_text())
    assert data["makespan"] == 55 and len(data["assignments"]) == 36
    assert csv.read_text().startswith("order,operation,machine,start,end\n")
    check = runner.invoke(app, ["check", str(src), str(out)])
    assert check.exit_code == 0 and "valid: 36 operations, makespan 55" in check.output
    data["assignments"][0]["start"] += 1
    data["assignments"][0]["end"] += 1
    out.write_text(json.dumps(data))
    assert runner.invoke(app, ["check", str(src), str(out)]).exit_code == 1


def test_solve_refuses_a_malformed_file_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fjs"
    bad.write_text("2 2\n1 1 1 4\n1 1 3 4\n")
    res = runner.invoke(app, ["solve", str(bad), "--time-limit", "1"])
    assert res.exit_code == 2
    assert "bad.fjs: line 3: unknown machine 3" in res.output


def test_infeasible_deadline_is_explained(tmp_path: Path) -> None:
    doc = {
        "machines": [{"id": "M"}],
        "orders": [{"id": "X", "deadline": 3}],
        "operations": [{"id": "x", "order": "X", "durations": {"M": 4}}],
    }
    src = tmp_path / "late.json"
    src.write_text(json.dumps(doc))
    res = runner.invoke(app, ["solve", str(src), "--time-limit", "1", "-q"])
    assert res.exit_code == 1
    assert "infeasible" in res.output and "order X" in res.output and "deadline 3" in res.output
