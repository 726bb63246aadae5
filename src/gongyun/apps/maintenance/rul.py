"""Remaining-useful-life models: training, cross-validation by unit, a model directory, prediction.

The model is LightGBM gradient boosting on the windowed features of ``features`` with the target
capped at ``cap`` cycles (a piecewise-linear degradation model), plus two quantile models for an
uncertainty interval. A ridge regression on the same features is the baseline (``algorithm="ridge"``).
A model directory holds ``model.json`` (metadata and preprocessing) and LightGBM text files; it is
written to a temporary directory and renamed into place, so a half-written model never exists.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.apps.maintenance import features as F
from gongyun.apps.maintenance.cmapss import Histories, check_training, constant_columns
from gongyun.apps.maintenance.errors import DataInvalid, ModelIncompatible, ModelNotFound

FORMAT = "gongyun-maintenance-rul/1"
META = "model.json"
Array = npt.NDArray[np.float64]
Progress = Callable[[str, int, int], None]

LGB_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_bin": 63,
    "num_leaves": 31,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "force_col_wise": True,
}
QUANTILES = (0.1, 0.9)


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def nasa_score(error: Array) -> float:
    """The PHM08 scoring function (sum; late predictions, error > 0, cost more)."""
    return float(np.sum(np.where(error < 0, np.exp(-error / 13.0) - 1, np.exp(error / 10.0) - 1)))


@dataclass
class Metrics:
    """Validation figures over held-out units."""

    rmse: float
    mae: float
    score: float
    rows: int
    folds: int
    units: int
    coverage: float | None = None  # share of rows inside the interval

    def as_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)


@dataclass
class RulModel:
    """A trained model and everything needed to apply it."""

    algorithm: str
    sensors: list[str]
    spec: F.FeatureSpec
    normaliser: F.Normaliser
    cap: int
    boosters: dict[str, Any]  # "median" / "low" / "high" -> lightgbm.Booster, or "ridge" -> coefficients
    meta: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # every sensor column of the training data

    @property
    def feature_names(self) -> list[str]:
        """Feature names in column order."""
        return self.spec.names(self.sensors)

    def _raw(self, x: Array, which: str) -> Array:
        if self.algorithm == "ridge":
            r = self.boosters["ridge"]
            return np.asarray(x @ np.asarray(r["coef"]) + r["intercept"], dtype=np.float64)
        return np.asarray(self.boosters[which].predict(x), dtype=np.float64)

    def predict_rows(self, h: Histories) -> tuple[Array, Array, Array]:
        """RUL with its interval (low, high) at every row of ``h``."""
        check_sensors(self.sensors, h.sensor_names, self.columns)
        x = F.build(h, self.sensors, self.normaliser, self.spec)
        mid = np.clip(self._raw(x, "median"), 0, self.cap)
        if "low" in self.boosters:
            lo = np.minimum(np.clip(self._raw(x, "low"), 0, self.cap), mid)
            hi = np.maximum(np.clip(self._raw(x, "high"), 0, self.cap), mid)
        else:
            lo, hi = mid.copy(), mid.copy()
        return mid, lo, hi

    def predict_last(self, h: Histories) -> list[tuple[int, float, float, float]]:
        """Per unit: (unit, rul, low, high) at its last cycle."""
        mid, lo, hi = self.predict_rows(h)
        return [
            (u, float(mid[s.stop - 1]), float(lo[s.stop - 1]), float(hi[s.stop - 1]))
            for u, s in h.unit_slices().items()
        ]


def check_sensors(
    model_sensors: list[str], data_sensors: tuple[str, ...], known: list[str] | None = None
) -> None:
    """Refuse data that lacks any sensor the model was trained on, naming those that differ."""
    missing = [s for s in model_sensors if s not in data_sensors]
    if missing:
        extra = [s for s in data_sensors if s not in (known or model_sensors)]
        raise ModelIncompatible(
            f"the model was trained on sensors {', '.join(model_sensors)}; the data lacks "
            f"{', '.join(missing)}" + (f" (and has {', '.join(extra)} instead)" if extra else ""),
            missing=missing,
            extra=extra,
        )


def choose_sensors(h: Histories, sensors: list[str] | None) -> list[str]:
    """The sensors to train on: those asked for (unknown or constant ones refused) or all that vary."""
    if sensors is None:
        chosen = F.informative_sensors(h)
        if not chosen:
            raise DataInvalid(f"{h.source}: every sensor is constant; nothing to learn from")
        return chosen
    unknown = [s for s in sensors if s not in h.sensor_names]
    if unknown:
        raise DataInvalid(
            f"{h.source}: no column named {', '.join(unknown)} (columns: {', '.join(h.sensor_names)})"
        )
    idx = [h.sensor_names.index(s) for s in sensors]
    const = constant_columns(h.sensors[:, idx], tuple(sensors))
    if const:
        where = ", ".join(f"column {h.sensor_names.index(s) + 6} ({s})" for s in const)
        raise DataInvalid(f"{h.source}: constant sensor(s), nothing to learn from: {where}")
    return list(sensors)


def _fit(algorithm: str, x: Array, y: Array, quantiles: bool, seed: int, threads: int) -> dict[str, Any]:
    if algorithm == "ridge":
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        r = Ridge(alpha=1.0).fit(scaler.transform(x), y)
        coef = r.coef_ / scaler.scale_
        intercept = float(r.intercept_ - np.sum(r.coef_ * scaler.mean_ / scaler.scale_))
        return {"ridge": {"coef": coef.tolist(), "intercept": intercept}}
    if algorithm != "lightgbm":
        raise DataInvalid(f"unknown algorithm {algorithm!r} (lightgbm or ridge)")
    import lightgbm as lgb

    out: dict[str, Any] = {}
    common = {**LGB_PARAMS, "random_state": seed, "n_jobs": threads, "verbose": -1}
    out["median"] = lgb.LGBMRegressor(**common).fit(x, y).booster_
    if quantiles:
        for key, alpha in zip(("low", "high"), QUANTILES, strict=True):
            params = {**common, "objective": "quantile", "alpha": alpha, "n_estimators": 200}
            out[key] = lgb.LGBMRegressor(**params).fit(x, y).booster_
    return out


def train(
    h: Histories,
    *,
    sensors: list[str] | None = None,
    spec: F.FeatureSpec | None = None,
    cap: int = 125,
    algorithm: str = "lightgbm",
    quantiles: bool = True,
    seed: int = 0,
    threads: int = 1,
) -> RulModel:
    """Train on run-to-failure histories (every unit ends at its failure)."""
    spec = spec or F.FeatureSpec()
    check_training(h, spec.window)
    chosen = choose_sensors(h, sensors)
    idx = [h.sensor_names.index(s) for s in chosen]
    norm = F.Normaliser.fit(h.settings, h.sensors[:, idx], tuple(chosen))
    x = F.build(h, chosen, norm, spec)
    y = np.minimum(h.rul(), cap).astype(np.float64)
    boosters = _fit(algorithm, x, y, quantiles and algorithm == "lightgbm", seed, threads)
    return RulModel(algorithm, chosen, spec, norm, cap, boosters, columns=list(h.sensor_names))


def folds_by_unit(units: list[int], k: int, seed: int = 0) -> list[set[int]]:
    """``k`` disjoint sets of units (no unit in two folds)."""
    if k < 2 or k > len(units):
        raise DataInvalid(f"cannot make {k} folds of {len(units)} units")
    perm = np.random.default_rng(seed).permutation(np.asarray(units))
    return [set(perm[i::k].tolist()) for i in range(k)]


def cross_validate(
    h: Histories,
    *,
    k: int = 5,
    progress: Progress = _no_progress,
    quantiles: bool = False,
    **kwargs: Any,
) -> tuple[Metrics, Array, Array]:
    """K-fold cross-validation by unit: metrics over every row of the held-out units.

    Returns the metrics, the out-of-fold predictions and the capped truth (row order of ``h``).
    """
    cap = int(kwargs.get("cap", 125))
    spec = kwargs.get("spec") or F.FeatureSpec()
    check_training(h, spec.window)
    units = h.unit_ids()
    pred = np.zeros(len(h.units))
    lo = np.zeros(len(h.units))
    hi = np.zeros(len(h.units))
    folds = folds_by_unit(units, k, int(kwargs.get("seed", 0)))
    for i, held in enumerate(folds):
        progress("cross-validation", i, k)
        model = train(h.subset(set(units) - held), quantiles=quantiles, **kwargs)
        mask = np.isin(h.units, np.array(sorted(held)))
        m, low, high = model.predict_rows(h.subset(held))
        pred[mask], lo[mask], hi[mask] = m, low, high
    progress("cross-validation", k, k)
    truth = np.minimum(h.rul(), cap).astype(np.float64)
    err = pred - truth
    coverage = float(np.mean((truth >= lo) & (truth <= hi))) if quantiles else None
    metrics = Metrics(
        rmse=float(np.sqrt(np.mean(err**2))),
        mae=float(np.mean(np.abs(err))),
        score=nasa_score(err),
        rows=len(err),
        folds=k,
        units=len(units),
        coverage=coverage,
    )
    return metrics, pred, truth


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_training(h: Histories, data_path: Path | None = None) -> dict[str, Any]:
    """The training data range recorded with a model."""
    slices = h.unit_slices()
    lengths = [s.stop - s.start for s in slices.values()]
    out: dict[str, Any] = {
        "units": len(slices),
        "rows": len(h.units),
        "unit_ids": [min(slices), max(slices)],
        "cycles_per_unit": [min(lengths), max(lengths)],
    }
    if data_path is not None:
        out["file"] = data_path.name
        out["sha256"] = _sha256(data_path)
    return out


def save(model: RulModel, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``model`` to ``directory`` atomically (a temporary sibling renamed into place)."""
    target = Path(directory)
    if target.exists() and (
        not target.is_dir() or any(p.name != META and p.suffix != ".txt" for p in target.iterdir())
    ):
        raise DataInvalid(f"{target} exists and is not a model directory; choose a new directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        files: dict[str, str] = {}
        for key, booster in model.boosters.items():
            if key == "ridge":
                continue
            name = f"{key}.txt"
            booster.save_model(str(tmp / name))
            files[key] = name
        doc = {
            "format": FORMAT,
            "algorithm": model.algorithm,
            "sensors": model.sensors,
            "columns": model.columns,
            "features": model.feature_names,
            "feature_spec": asdict(model.spec),
            "normaliser": model.normaliser.to_json(),
            "cap": model.cap,
            "files": files,
            "ridge": model.boosters.get("ridge"),
            "quantiles": list(QUANTILES) if "low" in files else None,
            **meta,
        }
        (tmp / META).write_text(json.dumps(doc, indent=2, sort_keys=False), encoding="utf-8")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model.meta = doc
    return target


def load(directory: str | Path) -> RulModel:
    """Read a model directory written by ``save``."""
    d = Path(directory)
    meta_path = d / META
    if not meta_path.is_file():
        raise ModelNotFound(f"{d}: not a model directory (no {META})")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"{meta_path}: unreadable ({exc})") from None
    if doc.get("format") != FORMAT:
        raise ModelIncompatible(f"{meta_path}: format {doc.get('format')!r}, this version reads {FORMAT!r}")
    boosters: dict[str, Any] = {}
    if doc["algorithm"] == "ridge":
        boosters["ridge"] = doc["ridge"]
    else:
        import lightgbm as lgb

        for key, name in doc["files"].items():
            boosters[key] = lgb.Booster(model_file=str(d / name))
    return RulModel(
        doc["algorithm"],
        list(doc["sensors"]),
        F.FeatureSpec(**doc["feature_spec"]),
        F.Normaliser.from_json(doc["normaliser"]),
        int(doc["cap"]),
        boosters,
        doc,
        list(doc.get("columns", [])),
    )


def train_to_directory(
    h: Histories,
    directory: str | Path,
    *,
    data_path: Path | None = None,
    folds: int = 5,
    progress: Progress = _no_progress,
    who: str | None = None,
    **kwargs: Any,
) -> RulModel:
    """Cross-validate (when ``folds`` > 1), train on everything, and save with full metadata."""
    from gongyun import __version__

    started = time.perf_counter()
    metrics = None
    if folds > 1:
        metrics, _, _ = cross_validate(h, k=folds, progress=progress, **kwargs)
    progress("final model", 0, 1)
    model = train(h, **kwargs)
    progress("final model", 1, 1)
    meta = {
        "version": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "platform_version": __version__,
        "trained_by": who or _user(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(time.perf_counter() - started, 1),
        "training": describe_training(h, data_path),
        "metrics": metrics.as_dict() if metrics else None,
        "params": LGB_PARAMS if model.algorithm == "lightgbm" else {"alpha": 1.0},
    }
    save(model, directory, meta)
    return model


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def write_predictions(
    rows: list[tuple[int, float, float, float]], out: str | Path, interval: bool = False
) -> None:
    """Write ``unit,rul`` (and ``rul_low,rul_high`` when ``interval``), one line per unit."""
    lines = ["unit,rul,rul_low,rul_high" if interval else "unit,rul"]
    for u, mid, lo, hi in rows:
        lines.append(f"{u},{mid:.1f},{lo:.1f},{hi:.1f}" if interval else f"{u},{mid:.1f}")
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")


def to_artifact(directory: str | Path) -> str:
    """A model directory as one JSON text (file name -> content), for the registry."""
    d = Path(directory)
    return json.dumps({p.name: p.read_text(encoding="utf-8") for p in sorted(d.iterdir()) if p.is_file()})


def from_artifact(text: str) -> RulModel:
    """Load a model from ``to_artifact``'s text."""
    files = json.loads(text)
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            if "/" in name or name.startswith("."):
                raise ModelNotFound(f"bad file name {name!r} in a stored model")
            (Path(tmp) / name).write_text(content, encoding="utf-8")
        return load(tmp)
