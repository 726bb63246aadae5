"""Fault diagnosis on simulator runs the classifier has not seen: confusion matrix, recall >= 0.9."""

from __future__ import annotations

import numpy as np
import pytest

from gongyun.apps.maintenance import diagnosis as D
from gongyun.apps.maintenance.errors import BaselineTooShort
from gongyun.sim.physics import Pump


def test_faults_progress_to_failure() -> None:
    for fault, code in (("bearing_wear", 1), ("clogging", 2), ("cavitation", 3)):
        run = D.simulate_pump(fault, seed=3)
        assert run.failed_at is not None and run.severity[-1] > 0.85, fault
        pump = Pump(seed=1)
        pump.inject(fault, 0.05)
        for _ in range(200):
            pump.step(1.0)
        assert pump.fault_code == code
    assert D.simulate_pump("normal", seed=3).failed_at is None


def test_confusion_matrix_on_unseen_runs() -> None:
    x, y = D.dataset(range(0, 5))
    clf = D.FaultClassifier().fit(x, y)
    xt, yt = D.dataset(range(100, 104))  # other seeds: runs, speeds and fault rates never seen
    pred = [p for p, _ in clf.predict(xt)]
    m = D.confusion_matrix(yt, pred)
    print("\nfault diagnosis on unseen simulator runs (windows of 60 s):\n" + D.format_confusion(m))
    recall = np.diag(m) / m.sum(axis=1)
    assert all(recall >= 0.9), dict(zip(D.CLASSES, recall, strict=True))
    run = D.simulate_pump("cavitation", seed=555)
    label, confidence = clf.diagnose(run.values[-60:], run.values[:300])
    assert label == "cavitation" and confidence > 0.5


def test_baseline_too_short() -> None:
    with pytest.raises(BaselineTooShort, match="needs at least 60"):
        D.window_features(np.ones((60, 5)), np.ones((10, 5)))


def test_live_diagnosis_inputs() -> None:
    run = D.simulate_pump("clogging", seed=9)
    base, window = run.values[:300], run.values[-60:]
    same = D.stats_features(window, base.mean(axis=0), base.std(axis=0))
    assert np.allclose(same, D.window_features(window, base))
    tags = ["p1/vibration", "p1/flow", "p1/current", "p1/pressure", "p1/bearing_temp", "p1/speed"]
    assert D.pump_columns(tags) == [1, 3, 2, 0, 4]
    assert D.pump_columns(tags[:3]) is None


def test_cnc_tool_wear_on_unseen_runs() -> None:
    run = D.simulate_cnc("tool_wear", seed=4)
    assert run.failed_at is not None  # the tool alarm ends the run
    x, y = D.cnc_dataset(range(0, 4))
    clf = D.FaultClassifier(classes=list(D.CNC_CLASSES)).fit(x, y)
    xt, yt = D.cnc_dataset(range(100, 103))
    pred = [p for p, _ in clf.predict(xt)]
    m = D.confusion_matrix(yt, pred, D.CNC_CLASSES)
    print(
        "\nCNC tool wear on unseen simulator runs (windows of 120 s):\n"
        + D.format_confusion(m, D.CNC_CLASSES)
    )
    recall = np.diag(m) / m.sum(axis=1)
    assert all(recall >= 0.9), dict(zip(D.CNC_CLASSES, recall, strict=True))
