"""Offline anomaly scoring of a signal file: learn from its first rows, score the rest."""

from __future__ import annotations

from pathlib import Path

from gongyun.apps.maintenance.anomaly import AdaptiveDetector, PcaT2Q, Scored, top_contributors
from gongyun.apps.maintenance.errors import DataInvalid
from gongyun.apps.maintenance.skab import Signals, read_signals

DETECTORS = ("adaptive", "pca")


def score_signals(sig: Signals, train_rows: int, detector: str = "adaptive") -> Scored:
    """Scores of every row after the first ``train_rows`` (learned from those rows only)."""
    if detector not in DETECTORS:
        raise DataInvalid(f"unknown detector {detector!r} (one of {', '.join(DETECTORS)})")
    if train_rows < 1:
        raise DataInvalid(f"--train-rows must be positive, got {train_rows}")
    if train_rows >= len(sig.values):
        raise DataInvalid(
            f"{sig.source}: {len(sig.values)} rows, none left to score after the first {train_rows}"
        )
    train = sig.values[:train_rows]
    if detector == "pca":
        pca = PcaT2Q().fit(train, sig.names)
        return pca.score(sig.values[train_rows:])
    det = AdaptiveDetector().fit(train, sig.names)
    full = det.score(sig.values, learn_from=train_rows)  # the trailing window spans the boundary
    return Scored(full.score[train_rows:], full.threshold, full.contributions[train_rows:])


def score_file(
    data: str | Path,
    out: str | Path,
    *,
    train_rows: int = 400,
    detector: str = "adaptive",
    contributions: bool = False,
) -> int:
    """Write ``datetime,score,anomaly`` for every row after the first ``train_rows``; return the count."""
    sig = read_signals(data)
    scored = score_signals(sig, train_rows, detector)
    flags = scored.anomaly
    lines = ["datetime,score,anomaly" + (",contributors" if contributions else "")]
    times = sig.datetimes[train_rows:]
    for i, t in enumerate(times):
        line = f"{t},{scored.score[i] / scored.threshold:.4f},{int(flags[i])}"
        if contributions:
            top = top_contributors(sig.names, scored.contributions[i])
            line += "," + '"' + "; ".join(f"{n} {share:.2f}" for n, share in top) + '"'
        lines.append(line)
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(times)
