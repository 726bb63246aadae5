"""C-MAPSS FD001 benchmark of the maintenance app's RUL model (``make bench-rul``).

5-fold cross-validation **by engine** on ``../shared/data/cmapss/train_FD001.txt`` (no engine in
both training and validation; FD001's test files are never read). Reported over every cycle of
the held-out engines, with the truth capped at 125 cycles like the target: RMSE, MAE and the
PHM08 (NASA) score, plus the same at one random cut per engine (the test files' situation:
a history cut short, judged at its last cycle; 20 draws). The baseline is a ridge regression on the
same features, measured in the same run. Training time is that of the full ``rul train``
(cross-validation, final model and quantile models) on this machine. One summary line last; JSON out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gongyun.apps.maintenance import cmapss, rul

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cmapss" / "train_FD001.txt"


def cut_metrics(h: cmapss.Histories, pred: np.ndarray, cap: int, draws: int = 20) -> dict[str, float]:
    """RMSE and mean NASA score per engine at random cut points (at least 31 cycles kept)."""
    rng = np.random.default_rng(1)
    raw = h.rul()
    errs = []
    for _ in range(draws):
        for sl in h.unit_slices().values():
            n = sl.stop - sl.start
            i = sl.start + int(rng.integers(min(31, n), n + 1)) - 1
            errs.append(pred[i] - min(raw[i], cap))
    e = np.asarray(errs)
    return {"rmse": float(np.sqrt(np.mean(e**2))), "score_per_100": rul.nasa_score(e) / draws}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=ROOT / "var" / "bench-rul.json")
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"no {args.data}", file=sys.stderr)
        return 1 if os.environ.get("CI") == "true" else 0
    h = cmapss.read_histories(args.data)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = rul.train_to_directory(h, Path(tmp) / "model", data_path=args.data, folds=args.folds)
        train_s = time.perf_counter() - started
    cv, pred, _ = rul.cross_validate(h, k=args.folds, quantiles=True)
    results["lightgbm"] = {
        **cv.as_dict(),
        "cut": cut_metrics(h, pred, model.cap),
        "train_seconds": round(train_s, 1),
    }
    started = time.perf_counter()
    base, bpred, _ = rul.cross_validate(h, k=args.folds, algorithm="ridge")
    results["ridge"] = {
        **base.as_dict(),
        "cut": cut_metrics(h, bpred, model.cap),
        "cv_seconds": round(time.perf_counter() - started, 1),
    }
    results["model"] = {"sensors": model.sensors, "features": len(model.feature_names), "cap": model.cap}
    for name in ("lightgbm", "ridge"):
        r = results[name]
        cut = r["cut"]
        assert isinstance(cut, dict)
        print(
            f"{name:8s} all cycles: RMSE {r['rmse']:.2f} MAE {r['mae']:.2f} NASA {r['score']:.0f} | "
            f"one cut per engine: RMSE {cut['rmse']:.2f} NASA/100 engines {cut['score_per_100']:.0f}"
            + (f" | interval 10-90 % coverage {r['coverage']:.2f}" if r.get("coverage") is not None else "")
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    a, b = results["lightgbm"], results["ridge"]
    ok = float(a["rmse"]) <= 13.0 and train_s < 300  # type: ignore[arg-type]
    print(
        f"FD001 {args.folds}-fold CV by engine: LightGBM RMSE {a['rmse']:.2f} NASA {a['score']:.0f} | "
        f"ridge baseline RMSE {b['rmse']:.2f} NASA {b['score']:.0f} | training {train_s:.0f} s "
        f"| required RMSE<=13.0, training<300 s: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
