"""Multivariate anomaly detectors learned from a baseline window, batch and incremental.

``AdaptiveDetector`` (the default): each signal's trailing mean over ``window`` points is compared
with a baseline, in units of how much that trailing mean varied over the baseline window (so a
noisy signal and a slow one are judged on their own scale). The baseline starts at the training
mean and follows slow drifts (an exponential update at rate ``alpha``) only while the signal is
within ``gate`` of it, so a fault's step does not get absorbed. The score is the largest of the
signals' deviations; the threshold is ``margin`` times the largest score over the training window.
The contribution of each signal is its share of the squared deviations.

``PcaT2Q`` is the classical baseline: PCA on the standardised training window, Hotelling's T² on
the retained components and Q (SPE) on the residual, each with an empirical 99 % limit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.apps.maintenance.errors import BaselineTooShort, ModelIncompatible

Array = npt.NDArray[np.float64]


@dataclass
class Scored:
    """Scores of rows: the score, the threshold it is judged against, and per-signal contributions."""

    score: Array
    threshold: float
    contributions: Array  # rows x signals, each row sums to 1 (or 0)

    @property
    def anomaly(self) -> npt.NDArray[np.bool_]:
        """Rows whose score is over the threshold."""
        return np.asarray(self.score > self.threshold)


def top_contributors(names: list[str], contrib: Array, n: int = 3) -> list[tuple[str, float]]:
    """The ``n`` signals that contribute most, with their shares."""
    order = np.argsort(-contrib)[:n]
    return [(names[i], round(float(contrib[i]), 3)) for i in order if contrib[i] > 0]


@dataclass
class AdaptiveDetector:
    """Trailing-mean deviations from a drift-following, fault-gated baseline (see the module doc)."""

    window: int = 30
    alpha: float = 0.01
    gate: float = 5.0
    margin: float = 1.5
    names: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    spread: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)  # of the raw values, for diagnosis
    threshold: float = 0.0

    def min_points(self) -> int:
        """The fewest baseline points it learns from."""
        return max(3 * self.window, 60)

    def fit(self, x: Array, names: list[str]) -> AdaptiveDetector:
        """Learn from the baseline window ``x`` (rows x signals)."""
        need = self.min_points()
        if len(x) < need:
            raise BaselineTooShort(
                f"the baseline window has {len(x)} points; this detector needs at least {need}",
                minimum=need,
                points=len(x),
            )
        self.names = list(names)
        self.mean = x.mean(axis=0).tolist()
        self.std = x.std(axis=0).tolist()
        rm = _trailing_mean(x, self.window)[self.window :]
        spread = rm.std(axis=0)
        floor = 1e-6 * np.maximum(np.abs(np.asarray(self.mean)), 1.0)
        self.spread = np.maximum(spread, floor).tolist()
        self.threshold = 0.0
        train = self.stream().run(x)
        self.threshold = self.margin * float(train.score[self.window :].max())
        return self

    def stream(self) -> DetectorStream:
        """A fresh incremental scorer starting from the training baseline."""
        return DetectorStream(self)

    def score(self, x: Array, learn_from: int = 0) -> Scored:
        """Score every row of ``x``; the baseline only adapts after row ``learn_from``."""
        self.check(x.shape[1])
        return self.stream().run(x, adapt_after=learn_from)

    def check(self, width: int) -> None:
        """Refuse data of another number of signals."""
        if width != len(self.names):
            raise ModelIncompatible(
                f"the detector was trained on {len(self.names)} signals, the data has {width}"
            )

    def to_json(self) -> dict[str, Any]:
        """JSON-able parameters (the kind is ``adaptive``)."""
        return {"kind": "adaptive", **asdict(self)}


class DetectorStream:
    """Incremental state of an ``AdaptiveDetector``: feed points one at a time."""

    def __init__(self, det: AdaptiveDetector) -> None:
        self.det = det
        self.buf: deque[Array] = deque(maxlen=det.window)
        self.total = np.zeros(len(det.mean))
        self.base = np.asarray(det.mean, dtype=np.float64).copy()
        self.spread = np.asarray(det.spread, dtype=np.float64)
        self.seen = 0

    def update(self, x: Array, adapt: bool = True) -> tuple[float, Array]:
        """Add one point; return its score and per-signal contributions."""
        if len(self.buf) == self.buf.maxlen:
            self.total -= self.buf[0]
        self.buf.append(x)
        self.total += x
        mean = self.total / len(self.buf)
        dev = (mean - self.base) / self.spread
        if adapt:
            ok = np.abs(dev) < self.det.gate
            self.base = np.where(ok, self.base + self.det.alpha * (mean - self.base), self.base)
        self.seen += 1
        sq = dev * dev
        tot = float(sq.sum())
        return float(np.abs(dev).max()), (sq / tot if tot > 0 else sq)

    def run(self, x: Array, adapt_after: int | None = None) -> Scored:
        """Score rows in order (the baseline adapts from row ``adapt_after``; never when None)."""
        scores = np.empty(len(x))
        contrib = np.empty_like(x, dtype=np.float64)
        for i in range(len(x)):
            adapt = adapt_after is not None and i >= adapt_after
            scores[i], contrib[i] = self.update(np.asarray(x[i], dtype=np.float64), adapt)
        return Scored(scores, self.det.threshold, contrib)


def _trailing_mean(x: Array, w: int) -> Array:
    c = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    idx = np.arange(len(x))
    start = np.maximum(0, idx - w + 1)
    return np.asarray((c[idx + 1] - c[start]) / (idx + 1 - start)[:, None], dtype=np.float64)


@dataclass
class PcaT2Q:
    """PCA with Hotelling's T² and Q (SPE) limits at the training window's ``quantile``."""

    variance: float = 0.9
    quantile: float = 0.99
    names: list[str] = field(default_factory=list)
    mean: Array = field(default_factory=lambda: np.zeros(0))
    std: Array = field(default_factory=lambda: np.zeros(0))
    components: Array = field(default_factory=lambda: np.zeros((0, 0)))
    eigen: Array = field(default_factory=lambda: np.zeros(0))
    t2_limit: float = 0.0
    q_limit: float = 0.0

    def fit(self, x: Array, names: list[str]) -> PcaT2Q:
        """Learn from the baseline window."""
        need = 2 * x.shape[1] + 2
        if len(x) < need:
            raise BaselineTooShort(
                f"the baseline window has {len(x)} points; PCA needs at least {need}", minimum=need
            )
        self.names = list(names)
        self.mean = x.mean(axis=0)
        self.std = np.maximum(x.std(axis=0), 1e-9)
        z = (x - self.mean) / self.std
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        ev = s**2 / (len(z) - 1)
        k = int(np.searchsorted(np.cumsum(ev) / ev.sum(), self.variance) + 1)
        self.components = vt[:k].T
        self.eigen = np.maximum(ev[:k], 1e-12)
        t2, q = self._stats(x)
        self.t2_limit = float(np.quantile(t2, self.quantile))
        self.q_limit = float(max(np.quantile(q, self.quantile), 1e-12))
        return self

    def _stats(self, x: Array) -> tuple[Array, Array]:
        z = (x - self.mean) / self.std
        t = z @ self.components
        r = z - t @ self.components.T
        return (t**2 / self.eigen).sum(axis=1), (r**2).sum(axis=1)

    def score(self, x: Array) -> Scored:
        """Score = the larger of T² and Q, each relative to its limit (threshold 1)."""
        t2, q = self._stats(x)
        z = (x - self.mean) / self.std
        r = z - (z @ self.components) @ self.components.T
        sq = r * r + 1e-18
        return Scored(
            np.maximum(t2 / self.t2_limit, q / self.q_limit), 1.0, sq / sq.sum(axis=1, keepdims=True)
        )


def confusion(pred: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> dict[str, float]:
    """F1, false-alarm rate and missed-alarm rate of row predictions."""
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    tn = int(np.sum(~pred & ~truth))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return {
        "f1": f1,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
