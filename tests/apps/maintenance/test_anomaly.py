"""Anomaly detectors: a shift is found and explained; too short a baseline is refused."""

from __future__ import annotations

import numpy as np
import pytest

from gongyun.apps.maintenance.anomaly import AdaptiveDetector, PcaT2Q, confusion, top_contributors
from gongyun.apps.maintenance.errors import BaselineTooShort


def _signals(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 4)) + np.array([10.0, 50.0, 1.0, 0.0])
    x[:, 3] = np.linspace(20, 24, n) + rng.normal(0, 0.05, n)  # a slow drift, not a fault
    truth = np.zeros(n, bool)
    truth[600:800] = True
    x[600:800, 1] -= 1.5  # a step on signal b
    return x, truth


def test_adaptive_detector_finds_the_step_and_names_it() -> None:
    x, truth = _signals()
    det = AdaptiveDetector().fit(x[:400], ["a", "b", "c", "drift"])
    scored = det.score(x, learn_from=400)
    c = confusion(scored.anomaly[400:], truth[400:])
    assert c["f1"] > 0.85 and c["far"] < 0.1, c
    assert top_contributors(det.names, scored.contributions[700])[0][0] == "b"


def test_incremental_equals_batch() -> None:
    x, _ = _signals()
    det = AdaptiveDetector().fit(x[:400], list("abcd"))
    batch = det.score(x, learn_from=400)
    stream = det.stream()
    inc = [stream.update(x[i], adapt=i >= 400)[0] for i in range(len(x))]
    assert np.allclose(inc, batch.score)


def test_baseline_too_short_names_the_minimum() -> None:
    x, _ = _signals()
    with pytest.raises(BaselineTooShort, match="has 50 points; this detector needs at least 90") as exc:
        AdaptiveDetector().fit(x[:50], list("abcd"))
    assert exc.value.details["minimum"] == 90
    with pytest.raises(BaselineTooShort, match="PCA needs at least 10"):
        PcaT2Q().fit(x[:5], list("abcd"))


def test_pca_baseline_flags_the_step() -> None:
    x, truth = _signals()
    pca = PcaT2Q().fit(x[:400], list("abcd"))
    flags = pca.score(x[400:]).anomaly
    assert flags[truth[400:]].mean() > flags[~truth[400:]].mean()
