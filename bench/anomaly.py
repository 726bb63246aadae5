"""SKAB valve benchmark of the maintenance app's anomaly detector (``make bench-anomaly``).

Runs ``gongyun app maintenance anomalies --train-rows 400`` on every file of
``../shared/data/skab/valve1`` and ``valve2`` (SKAB's protocol: learn from the first 400 rows of
each file only, score the rest), once with the default detector and once with the PCA T²+Q
baseline, and compares the ``anomaly`` column with SKAB's labels over all scored rows.
Prints one line per detector, a summary line last, and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "skab"


def command() -> list[str]:
    """How to run the CLI: the installed ``gongyun`` when it has the app, else the module."""
    exe = shutil.which("gongyun", path=str(Path(sys.executable).parent)) or shutil.which("gongyun")
    if exe:
        probe = subprocess.run([exe, "app", "maintenance", "--help"], check=False, capture_output=True)
        if probe.returncode == 0:
            return [exe, "app", "maintenance"]
    return [sys.executable, "-m", "gongyun.apps.maintenance.cli"]


def labels(path: Path, train_rows: int) -> np.ndarray:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return np.array([float(r["anomaly"]) > 0 for r in rows[train_rows:]])


def run(files: list[Path], detector: str, train_rows: int, tmp: Path, cmd: list[str]) -> dict[str, float]:
    preds, truth = [], []
    started = time.perf_counter()
    for f in files:
        out = tmp / f"{f.parent.name}-{f.stem}-{detector}.csv"
        args = [*cmd, "anomalies", "--data", str(f), "--train-rows", str(train_rows), "--out", str(out)]
        subprocess.run([*args, "--detector", detector], check=True, capture_output=True, text=True)
        with out.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        preds.append(np.array([r["anomaly"] == "1" for r in rows]))
        truth.append(labels(f, train_rows))
        assert len(preds[-1]) == len(truth[-1]), f"{f}: {len(preds[-1])} scored rows, {len(truth[-1])} labels"
    p, y = np.concatenate(preds), np.concatenate(truth)
    tp, fp = int(np.sum(p & y)), int(np.sum(p & ~y))
    fn, tn = int(np.sum(~p & y)), int(np.sum(~p & ~y))
    return {
        "f1": 2 * tp / (2 * tp + fp + fn),
        "far": fp / (fp + tn),
        "mar": fn / (fn + tp),
        "rows": len(p),
        "files": len(files),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--train-rows", type=int, default=400)
    ap.add_argument("--json", type=Path, default=ROOT / "var" / "bench-anomaly.json")
    args = ap.parse_args()
    files = sorted((args.data / "valve1").glob("*.csv")) + sorted((args.data / "valve2").glob("*.csv"))
    if not files:
        print(f"no SKAB valve files under {args.data}", file=sys.stderr)
        return 1 if os.environ.get("CI") == "true" else 0
    cmd = command()
    with tempfile.TemporaryDirectory() as tmp:
        results = {d: run(files, d, args.train_rows, Path(tmp), cmd) for d in ("adaptive", "pca")}
    for name, r in results.items():
        print(
            f"{name:9s} F1 {r['f1']:.3f}  FAR {100 * r['far']:.1f} %  MAR {100 * r['mar']:.1f} %  "
            f"({r['rows']} rows of {r['files']} files, {r['seconds']} s)"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": " ".join(cmd), **results}, indent=2))
    a, b = results["adaptive"], results["pca"]
    ok = a["f1"] >= 0.78 and a["far"] <= 0.20
    print(
        f"SKAB valve1+valve2: detector F1 {a['f1']:.3f} FAR {100 * a['far']:.1f} % "
        f"MAR {100 * a['mar']:.1f} % | "
        f"PCA T2+Q baseline F1 {b['f1']:.3f} FAR {100 * b['far']:.1f} % MAR {100 * b['mar']:.1f} % | "
        f"required F1>=0.78 FAR<=20 %: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
