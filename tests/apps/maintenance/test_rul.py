"""RUL model: a small train/predict round trip, the model directory, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gongyun.apps.maintenance import cmapss, rul
from gongyun.apps.maintenance.errors import DataInvalid, ModelIncompatible, ModelNotFound
from gongyun.apps.maintenance.features import FeatureSpec
from tests.apps.maintenance.data import cmapss_rows, cmapss_text

SPEC = FeatureSpec(window=10, long_window=20, baseline=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, cmapss.Histories]:
    d = tmp_path_factory.mktemp("rul")
    data = d / "train.txt"
    data.write_text(cmapss_text(cmapss_rows(units=15, seed=1)))
    h = cmapss.read_histories(data)
    rul.train_to_directory(h, d / "model", data_path=data, folds=2, spec=SPEC, who="tester")
    return d / "model", h


def test_round_trip_predicts_cut_histories(trained: tuple[Path, cmapss.Histories]) -> None:
    model_dir, _ = trained
    m = rul.load(model_dir)
    meta = m.meta
    assert meta["format"] == rul.FORMAT and meta["algorithm"] == "lightgbm" and meta["trained_by"] == "tester"
    assert meta["sensors"] == [
        s for s in cmapss.DEFAULT_SENSORS if s not in {"s1", "s5", "s10", "s16", "s18", "s19"}
    ]
    assert meta["training"]["units"] == 15 and len(meta["training"]["sha256"]) == 64
    assert meta["metrics"]["folds"] == 2 and meta["metrics"]["rmse"] < 25
    # unseen engines, each cut short at a known remaining life
    rows = cmapss_rows(units=6, seed=7)
    truth: dict[int, int] = {}
    kept = []
    for u in range(1, 7):
        hist = [r for r in rows if r[0] == u]
        cut = len(hist) - 10 * u
        truth[u] = min(len(hist) - cut, 125)
        kept += hist[:cut]
    h = cmapss.parse_text(cmapss_text(kept))
    pred = m.predict_last(h)
    assert [p[0] for p in pred] == list(range(1, 7))
    err = np.array([p[1] - truth[p[0]] for p in pred])
    assert np.sqrt(np.mean(err**2)) < 20, err
    assert all(lo <= mid <= hi for _, mid, lo, hi in pred)


def test_predictions_file(trained: tuple[Path, cmapss.Histories], tmp_path: Path) -> None:
    m = rul.load(trained[0])
    rul.write_predictions(m.predict_last(trained[1]), tmp_path / "rul.csv")
    lines = (tmp_path / "rul.csv").read_text().splitlines()
    assert lines[0] == "unit,rul" and len(lines) == 16 and lines[1].startswith("1,")


def test_refuses_data_with_other_sensors(trained: tuple[Path, cmapss.Histories]) -> None:
    m = rul.load(trained[0])
    names = [*cmapss.DEFAULT_SENSORS]
    names[1], names[2] = "p2", "p3"
    text = (
        "unit cycle setting_1 setting_2 setting_3 "
        + " ".join(names)
        + "\n"
        + cmapss_text(cmapss_rows(units=2))
    )
    with pytest.raises(ModelIncompatible, match=r"the data lacks s2, s3 \(and has p2, p3 instead\)") as exc:
        m.predict_last(cmapss.parse_text(text))
    assert exc.value.details["missing"] == ["s2", "s3"]


def test_constant_or_unknown_sensor_refused() -> None:
    h = cmapss.parse_text(cmapss_text(cmapss_rows(units=3)), "t.txt")
    with pytest.raises(DataInvalid, match=r"constant sensor\(s\), nothing to learn from: column 6 \(s1\)"):
        rul.train(h, sensors=["s1", "s2"], spec=SPEC)
    with pytest.raises(DataInvalid, match=r"no column named s99"):
        rul.train(h, sensors=["s99"], spec=SPEC)
    rows = cmapss_rows(units=3)
    for r in rows:
        r[5:] = [1.0] * 21
    with pytest.raises(DataInvalid, match=r"every sensor is constant"):
        rul.train(cmapss.parse_text(cmapss_text(rows)), spec=SPEC)


def test_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = cmapss.parse_text(cmapss_text(cmapss_rows(units=4)))
    m = rul.train(h, spec=SPEC, algorithm="ridge")
    rul.save(m, tmp_path / "model", {"version": "1"})
    before = (tmp_path / "model" / rul.META).read_text()

    def boom(*_a: object, **_k: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        rul.save(m, tmp_path / "model", {"version": "2"})
    with pytest.raises(OSError, match="disk full"):
        rul.save(m, tmp_path / "other", {"version": "2"})
    assert (tmp_path / "model" / rul.META).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(ModelNotFound):
        rul.load(tmp_path / "other")
