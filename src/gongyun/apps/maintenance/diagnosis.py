"""Fault diagnosis of pumps: labelled simulator runs, window features, a classifier with confidence.

Features of a window compare it with the equipment's own healthy baseline, signal by signal: the
shift of the mean in baseline standard deviations, the relative shift of the mean, and the log ratio
of the spreads (cavitation is noisy, clogging and wear are not). A random forest maps them to
``normal``, ``bearing_wear``, ``clogging`` or ``cavitation``; its vote share is the confidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.apps.maintenance.errors import BaselineTooShort, DataInvalid
from gongyun.sim.physics import Pump

Array = npt.NDArray[np.float64]
PUMP_SIGNALS = ("flow", "pressure", "current", "vibration", "bearing_temp")
PUMP_FAULTS = ("bearing_wear", "clogging", "cavitation")
CLASSES = ("normal", *PUMP_FAULTS)
WINDOW = 60
ONSET = 0.15  # a fault's severity from which its windows are labelled with it
MIN_BASELINE = 60


def window_features(window: Array, baseline: Array) -> Array:
    """Features of ``window`` (rows x signals) against the healthy ``baseline``."""
    if len(baseline) < MIN_BASELINE:
        raise BaselineTooShort(
            f"the baseline has {len(baseline)} points; diagnosis needs at least {MIN_BASELINE}",
            minimum=MIN_BASELINE,
        )
    if window.shape[1] != baseline.shape[1]:
        raise DataInvalid(f"window has {window.shape[1]} signals, baseline {baseline.shape[1]}")
    return stats_features(window, baseline.mean(axis=0), baseline.std(axis=0))


def stats_features(window: Array, mb: Array, sb: Array) -> Array:
    """``window_features`` from the baseline's mean and standard deviation only."""
    sb = np.maximum(sb, 1e-6)
    mw, sw = window.mean(axis=0), np.maximum(window.std(axis=0), 1e-6)
    shift = (mw - mb) / sb
    rel = (mw - mb) / np.maximum(np.abs(mb), 1e-6)
    spread = np.log(sw / sb)
    return np.concatenate([np.clip(shift, -50, 50), np.clip(rel, -5, 5), spread])


@dataclass
class Run:
    """One simulated run: signals per second, the fault and its severity per second."""

    fault: str
    values: Array
    severity: Array
    healthy_s: int
    failed_at: int | None = None


def simulate_pump(fault: str, seed: int, healthy_s: int = 300, max_s: int = 3000) -> Run:
    """A pump run: healthy for ``healthy_s`` seconds, then ``fault`` grows until the pump trips."""
    rng = np.random.default_rng(seed)
    pump = Pump(seed=seed)
    pump.speed_setpoint = float(rng.uniform(1300, 1500))
    rows: list[list[float]] = []
    sev: list[float] = []
    failed = None
    for t in range(max_s):
        if t == healthy_s and fault != "normal":
            rate = (
                float(rng.uniform(0.0006, 0.002))
                if fault != "bearing_wear"
                else float(rng.uniform(3e-4, 9e-4))
            )
            pump.inject(fault, rate)
        pump.step(1.0)
        if pump.fault_code:
            failed = t
            break
        rows.append([getattr(pump, s) for s in PUMP_SIGNALS])
        sev.append(
            {"bearing_wear": pump.wear, "clogging": pump.clog, "cavitation": pump.cavitation}.get(fault, 0.0)
        )
        if fault == "normal" and t >= healthy_s + 600:
            break
    return Run(fault, np.asarray(rows), np.asarray(sev), healthy_s, failed)


def labelled_windows(run: Run, step: int = 20) -> tuple[list[Array], list[str]]:
    """Windows of a run with their labels (normal before onset, the fault from severity ``ONSET``)."""
    base = run.values[: run.healthy_s]
    xs, ys = [], []
    for end in range(run.healthy_s + WINDOW, len(run.values) + 1, step):
        s = run.severity[end - 1]
        if run.fault == "normal":
            label = "normal"
        elif s >= ONSET:
            label = run.fault
        else:
            continue  # too early to tell: not a training example either way
        xs.append(window_features(run.values[end - WINDOW : end], base))
        ys.append(label)
    return xs, ys


def dataset(seeds: range) -> tuple[Array, list[str]]:
    """Labelled windows of one run per class and seed."""
    xs: list[Array] = []
    ys: list[str] = []
    for seed in seeds:
        for fault in CLASSES:
            x, y = labelled_windows(simulate_pump(fault, seed * 10 + CLASSES.index(fault)))
            xs += x
            ys += y
    return np.asarray(xs), ys


@dataclass
class FaultClassifier:
    """A random forest over window features."""

    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    forest: Any = None

    def fit(self, x: Array, y: list[str], seed: int = 0) -> FaultClassifier:
        """Train on labelled windows."""
        from sklearn.ensemble import RandomForestClassifier

        unknown = sorted(set(y) - set(self.classes))
        if unknown:
            raise DataInvalid(f"unknown label(s): {', '.join(unknown)}")
        self.forest = RandomForestClassifier(
            n_estimators=150, min_samples_leaf=2, random_state=seed, n_jobs=1
        )
        self.forest.fit(x, y)
        return self

    def predict(self, x: Array) -> list[tuple[str, float]]:
        """Likely fault and its confidence (vote share) of each row of features."""
        proba = self.forest.predict_proba(x)
        names = list(self.forest.classes_)
        return [(names[int(i)], float(p[int(i)])) for p, i in zip(proba, proba.argmax(axis=1), strict=True)]

    def diagnose(self, window: Array, baseline: Array) -> tuple[str, float]:
        """The likely fault of one window, with confidence."""
        return self.predict(window_features(window, baseline)[None, :])[0]


def confusion_matrix(truth: list[str], pred: list[str], classes: tuple[str, ...] = CLASSES) -> Array:
    """Counts: rows are true classes, columns predicted."""
    m = np.zeros((len(classes), len(classes)))
    for t, p in zip(truth, pred, strict=True):
        m[classes.index(t), classes.index(p)] += 1
    return m


def format_confusion(m: Array, classes: tuple[str, ...] = CLASSES) -> str:
    """A confusion matrix as text, with each class's recall."""
    w = max(len(c) for c in classes) + 2
    lines = ["true \\ predicted".ljust(w) + "".join(c[:12].rjust(14) for c in classes) + "   recall"]
    for i, c in enumerate(classes):
        recall = m[i, i] / m[i].sum() if m[i].sum() else float("nan")
        lines.append(c.ljust(w) + "".join(f"{int(v):14d}" for v in m[i]) + f"   {recall:.3f}")
    return "\n".join(lines)


RUL_CAP = 1800.0  # seconds: a pump further from failure than this is "healthy"


def rul_features(values: Array, end: int, mean: Array, std: Array) -> Array:
    """Features of the two windows before ``end``: the last one and its change from the one before."""
    last = stats_features(values[end - WINDOW : end], mean, std)
    prev = stats_features(values[max(0, end - 2 * WINDOW) : end - WINDOW], mean, std)
    return np.concatenate([last, last - prev])


def rul_dataset(seeds: range) -> tuple[Array, Array]:
    """Windows of faulty runs to failure, from the fault's onset: features and seconds to the trip."""
    xs: list[Array] = []
    ys: list[float] = []
    for seed in seeds:
        for fault in PUMP_FAULTS:
            run = simulate_pump(fault, seed * 10 + CLASSES.index(fault))
            if run.failed_at is None:
                continue
            base = run.values[: run.healthy_s]
            mean, std = base.mean(axis=0), base.std(axis=0)
            for end in range(run.healthy_s + 2 * WINDOW, len(run.values) + 1, 10):
                if run.severity[end - 1] < ONSET / 3:
                    continue
                xs.append(rul_features(run.values, end, mean, std))
                ys.append(min(RUL_CAP, float(run.failed_at - end)))
    return np.asarray(xs), np.asarray(ys)


@dataclass
class PumpRul:
    """Seconds to the trip of a faulty pump, with a 10-90 % interval from the trees' spread."""

    forest: Any = None

    def fit(self, x: Array, y: Array, seed: int = 0) -> PumpRul:
        """Train on ``rul_dataset``."""
        from sklearn.ensemble import RandomForestRegressor

        self.forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=3, random_state=seed, n_jobs=1)
        self.forest.fit(x, y)
        return self

    def predict(self, x: Array) -> list[tuple[float, float, float]]:
        """(rul, low, high) per row."""
        per_tree = np.stack([t.predict(x) for t in self.forest.estimators_])
        mid = per_tree.mean(axis=0)
        lo, hi = np.percentile(per_tree, 10, axis=0), np.percentile(per_tree, 90, axis=0)
        return [(float(m), float(min(a, m)), float(max(b, m))) for m, a, b in zip(mid, lo, hi, strict=True)]


_PUMP_RUL: list[PumpRul] = []


def pump_rul() -> PumpRul:
    """The pump RUL model, trained once per process on simulator runs to failure."""
    if not _PUMP_RUL:
        x, y = rul_dataset(range(0, 6))
        _PUMP_RUL.append(PumpRul().fit(x, y))
    return _PUMP_RUL[0]


def new_second(ts_us: int, last_us: int) -> bool:
    """Whether a sample at ``ts_us`` starts a new whole second after ``last_us`` (microseconds).

    The live worker keeps one row per second of a faster feed (the demo's gateway polls at 5 Hz with
    some jitter) this way, so its rows are 1 s apart on average, like the 1 Hz runs the models were
    trained on; "at least 1 s since the last row" would make them about 1.1 s apart.
    """
    return ts_us // 1_000_000 > last_us // 1_000_000


def pump_columns(tags: list[str]) -> list[int] | None:
    """Positions of the pump signals among ``tags`` (matched by tag name), or None if any is missing."""
    names = [t.rsplit("/", 1)[-1].lower() for t in tags]
    try:
        return [names.index(s) for s in PUMP_SIGNALS]
    except ValueError:
        return None


_PUMP_MODEL: list[FaultClassifier] = []


def pump_classifier() -> FaultClassifier:
    """The pump classifier, trained once per process on simulator runs (a few seconds)."""
    if not _PUMP_MODEL:
        x, y = dataset(range(0, 5))
        _PUMP_MODEL.append(FaultClassifier().fit(x, y))
    return _PUMP_MODEL[0]


def describe(clf: FaultClassifier) -> str:
    """A short JSON description (classes, signals, window) for a registry entry."""
    return json.dumps({"classes": clf.classes, "signals": PUMP_SIGNALS, "window": WINDOW, "onset": ONSET})


CNC_SIGNALS = ("spindle_load", "spindle_speed", "axis_temp_X", "axis_temp_Y", "axis_temp_Z")
CNC_CLASSES = ("normal", "tool_wear")
CNC_ONSET = 25.0  # % of tool life used up by an abnormal wear from which windows are labelled with it


def simulate_cnc(fault: str, seed: int, healthy_s: int = 300, max_s: int = 3000) -> Run:
    """A CNC run: nominal tool wear for ``healthy_s`` seconds, then (``tool_wear``) a fast-wearing tool
    until the tool alarm; severity = tool life used up since the fault began, in %."""
    from gongyun.sim.physics import Cnc

    rng = np.random.default_rng(seed)
    cnc = Cnc(seed=seed)
    rows: list[list[float]] = []
    sev: list[float] = []
    failed = None
    start_wear = 0.0
    for t in range(max_s):
        if t == healthy_s and fault == "tool_wear":
            cnc.inject("tool_wear", float(rng.uniform(2.0, 6.0)))
            start_wear = cnc.tool_wear
        cnc.step(1.0)
        if cnc.state == "ALARM":
            failed = t
            break
        rows.append([cnc.spindle_load, cnc.spindle_speed, *(cnc.axis_temp[a] for a in "XYZ")])
        sev.append(cnc.tool_wear - start_wear if fault == "tool_wear" and t >= healthy_s else 0.0)
        if fault == "normal" and t >= healthy_s + 900:
            break
    return Run(fault, np.asarray(rows), np.asarray(sev), healthy_s, failed)


def cnc_dataset(seeds: range) -> tuple[Array, list[str]]:
    """Labelled CNC windows (windows of 120 s: six machining cycles)."""
    xs: list[Array] = []
    ys: list[str] = []
    for seed in seeds:
        for fault in CNC_CLASSES:
            run = simulate_cnc(fault, seed * 10 + CNC_CLASSES.index(fault))
            base = run.values[: run.healthy_s]
            for end in range(run.healthy_s + 120, len(run.values) + 1, 20):
                if fault == "tool_wear" and run.severity[end - 1] < CNC_ONSET:
                    continue
                xs.append(window_features(run.values[end - 120 : end], base))
                ys.append(fault)
    return np.asarray(xs), ys
