"""``gongyun app maintenance ...`` commands (typer app of the maintenance package, no server)."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from gongyun.apps.maintenance.cli import app
from tests.apps.maintenance.data import cmapss_rows, cmapss_text, shared

runner = CliRunner()


def test_anomalies_on_a_skab_file(tmp_path: Path) -> None:
    data = shared("skab/valve1/13.csv")
    out = tmp_path / "scores.csv"
    res = runner.invoke(app, ["anomalies", "--data", str(data), "--train-rows", "400", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with data.open() as f:
        labels = [r["anomaly"] == "1.0" for r in csv.DictReader(f, delimiter=";")][400:]
    with out.open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["datetime", "score", "anomaly"]
        rows = list(reader)
    assert len(rows) == len(labels) and rows[0]["datetime"].startswith("2020-")
    flags = [r["anomaly"] == "1" for r in rows]
    hit = sum(f and y for f, y in zip(flags, labels, strict=True)) / sum(labels)
    false = sum(f and not y for f, y in zip(flags, labels, strict=True)) / (len(labels) - sum(labels))
    assert hit > 0.8 and false < 0.2, (hit, false)


def test_anomalies_refuses_short_baseline(tmp_path: Path) -> None:
    data = shared("skab/valve1/13.csv")
    res = runner.invoke(
        app, ["anomalies", "--data", str(data), "--train-rows", "40", "--out", str(tmp_path / "s.csv")]
    )
    assert res.exit_code == 2
    assert "maintenance_baseline_too_short" in res.output and "at least 90" in res.output


def test_rul_train_and_predict(tmp_path: Path) -> None:
    train = tmp_path / "train.txt"
    train.write_text(cmapss_text(cmapss_rows(units=8, seed=3)))
    model = tmp_path / "model"
    res = runner.invoke(
        app, ["rul", "train", "--data", str(train), "--model", str(model), "--folds", "0", "--window", "10"]
    )
    assert res.exit_code == 0, res.output
    assert (model / "model.json").is_file() and (model / "median.txt").is_file()
    test = tmp_path / "test.txt"
    test.write_text(cmapss_text([r for r in cmapss_rows(units=3, seed=4) if r[1] <= 40]))
    out = tmp_path / "rul.csv"
    res = runner.invoke(
        app, ["rul", "predict", "--model", str(model), "--data", str(test), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0] == "unit,rul" and [ln.split(",")[0] for ln in lines[1:]] == ["1", "2", "3"]
    assert all(0 <= float(ln.split(",")[1]) <= 125 for ln in lines[1:])


def test_rul_train_bad_file_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1 0 0 100 " + " ".join(["1.0"] * 20) + "\n")
    res = runner.invoke(app, ["rul", "train", "--data", str(bad), "--model", str(tmp_path / "m")])
    assert res.exit_code == 2
    assert "line 1: 25 columns, expected 26 (missing columns)" in res.output
    assert not (tmp_path / "m").exists()
