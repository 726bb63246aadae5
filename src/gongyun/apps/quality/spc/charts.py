"""Control charts: phase I limits from a baseline (with recorded exclusions), phase II evaluation.

Variables: X̄-R, X̄-S, I-MR, EWMA, CUSUM. Attributes: p, np, c, u (p and u with variable
sample sizes). Limits are a small frozen record (``ControlLimits``) that can be versioned and
stored; ``evaluate`` applies them to any data of the same kind, per point, vectorised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from gongyun.apps.quality.errors import SpcInputInvalid
from gongyun.apps.quality.spc.constants import N_MAX, N_MIN, constants
from gongyun.apps.quality.spc.rules import RuleSet, evaluate_rules
from gongyun.apps.quality.spc.subgroups import Subgroups

NO_DATA = "no data in the window"


class ChartKind(StrEnum):
    """The chart types."""

    XBAR_R = "xbar_r"
    XBAR_S = "xbar_s"
    I_MR = "i_mr"
    EWMA = "ewma"
    CUSUM = "cusum"
    P = "p"
    NP = "np"
    C = "c"
    U = "u"

    @property
    def attribute(self) -> bool:
        """True for the attribute charts (counts of defectives or defects)."""
        return self in (ChartKind.P, ChartKind.NP, ChartKind.C, ChartKind.U)


VARIABLE_KINDS = tuple(k for k in ChartKind if not k.attribute)
DEFAULT_PARAMS: dict[ChartKind, dict[str, float]] = {
    ChartKind.EWMA: {"lambda": 0.2, "L": 3.0},
    ChartKind.CUSUM: {"k": 0.5, "h": 5.0},
}


@dataclass(frozen=True)
class AttributeData:
    """Counts (defectives for p/np, defects for c/u) and the sample size of each."""

    counts: np.ndarray
    sizes: np.ndarray
    keys: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.counts.size)


def attribute_data(counts: Iterable[float], sizes: Iterable[float] | None = None) -> AttributeData:
    """Checked attribute data (sizes default to 1 unit per sample, as for a c chart)."""
    c = np.asarray(list(counts), dtype=np.float64)
    n = np.ones_like(c) if sizes is None else np.asarray(list(sizes), dtype=np.float64)
    if c.shape != n.shape:
        raise SpcInputInvalid("counts and sample sizes differ in length", reason="shape")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(n))):
        raise SpcInputInvalid("counts and sample sizes must be finite", reason="not_finite")
    if np.any(c < 0):
        raise SpcInputInvalid("counts cannot be negative", reason="negative_count")
    if np.any(n <= 0):
        raise SpcInputInvalid("sample sizes must be positive", reason="sample_size")
    return AttributeData(c, n, [str(i) for i in range(c.size)])


Data = Subgroups | AttributeData


@dataclass(frozen=True)
class ControlLimits:
    """Phase I result: what a chart's limits are computed from; frozen and versioned when stored."""

    kind: ChartKind
    center: float  # process mean, p̄, c̄ or ū
    sigma: float  # process standard deviation (variables); 0 for attributes
    spread: float | None  # R̄, S̄ or MR̄ of the baseline (variables)
    n: int | None  # the constant sample size (np chart), else None
    params: dict[str, float]
    baseline_size: int
    excluded: tuple[int, ...] = ()
    exclusion_reasons: dict[int, str] = field(default_factory=dict)
    version: int = 0  # 0 while not frozen
    frozen_by: str | None = None
    note: str = ""

    def frozen(self, version: int, by: str, note: str = "") -> ControlLimits:
        """The same limits as a frozen version."""
        if version < 1:
            raise SpcInputInvalid("a frozen version number starts at 1", reason="version")
        return replace(self, version=version, frozen_by=by, note=note)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (as stored)."""
        d = asdict(self)
        d["kind"] = self.kind.value
        d["excluded"] = list(self.excluded)
        d["exclusion_reasons"] = {str(k): v for k, v in self.exclusion_reasons.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ControlLimits:
        """Back from ``to_dict``."""
        return cls(
            kind=ChartKind(d["kind"]),
            center=float(d["center"]),
            sigma=float(d["sigma"]),
            spread=None if d.get("spread") is None else float(d["spread"]),
            n=None if d.get("n") is None else int(d["n"]),
            params={k: float(v) for k, v in dict(d.get("params") or {}).items()},
            baseline_size=int(d["baseline_size"]),
            excluded=tuple(int(i) for i in d.get("excluded", ())),
            exclusion_reasons={int(k): str(v) for k, v in dict(d.get("exclusion_reasons") or {}).items()},
            version=int(d.get("version", 0)),
            frozen_by=d.get("frozen_by"),
            note=str(d.get("note", "")),
        )


@dataclass(frozen=True)
class Line:
    """One plotted series with its centre line and limits (arrays of one length)."""

    points: np.ndarray
    cl: np.ndarray
    ucl: np.ndarray
    lcl: np.ndarray

    def beyond(self) -> np.ndarray:
        """Points outside the limits."""
        with np.errstate(invalid="ignore"):
            return np.asarray((self.points > self.ucl) | (self.points < self.lcl))

    def to_dict(self) -> dict[str, list[float | None]]:
        """JSON-able lists (NaN as None)."""
        return {k: _jsonable(getattr(self, k)) for k in ("points", "cl", "ucl", "lcl")}


def _jsonable(a: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=np.float64)]


@dataclass(frozen=True)
class ChartResult:
    """A chart evaluated against limits: the primary line, an optional second one, violations."""

    kind: ChartKind
    keys: list[str]
    primary: Line
    sigma: np.ndarray  # one σ of the plotted statistic per point (for the zones)
    secondary: Line | None
    violations: np.ndarray  # uint16 bit mask per point, bits as in rules.ALL_RULES
    beyond_secondary: np.ndarray
    message: str = ""

    @property
    def empty(self) -> bool:
        """True when there was nothing to plot."""
        return self.primary.points.size == 0


def _mr(x: np.ndarray) -> np.ndarray:
    mr = np.full(x.size, np.nan)
    mr[1:] = np.abs(np.diff(x))
    return mr


def _check_sizes(kind: ChartKind, data: Subgroups) -> None:
    if kind in (ChartKind.XBAR_R, ChartKind.XBAR_S):
        sizes = np.unique(data.sizes)
        bad = [int(s) for s in sizes if not N_MIN <= s <= N_MAX]
        if bad:
            raise SpcInputInvalid(
                f"{kind.value} needs subgroup sizes {N_MIN}..{N_MAX} (the constant tables); got {bad}",
                reason="subgroup_size",
            )


def _individuals(kind: ChartKind, data: Subgroups) -> np.ndarray:
    """I-MR plots single values; EWMA and CUSUM plot single values or subgroup means."""
    if kind == ChartKind.I_MR and data.constant_size() not in (None, 1):
        raise SpcInputInvalid(
            "the I-MR chart plots single values: use subgroups of 1", reason="subgroup_size"
        )
    return data.means


def _table(name: str, n: np.ndarray) -> np.ndarray:
    """A constant for each subgroup size (sizes already checked to be in the tables)."""
    if n.size == 0:
        return np.empty(0)
    lookup = np.zeros(N_MAX + 1)
    for size in np.unique(n):
        lookup[int(size)] = getattr(constants(int(size)), name)
    return np.asarray(lookup[n.astype(np.int64)])


def _d2(n: np.ndarray) -> np.ndarray:
    return _table("d2", n)


def _d3(n: np.ndarray) -> np.ndarray:
    return _table("d3", n)


def _c4(n: np.ndarray) -> np.ndarray:
    return _table("c4", n)


def _size_of(data: Subgroups) -> np.ndarray:
    return data.sizes.astype(np.float64)


def _estimate(kind: ChartKind, data: Data, keep: np.ndarray, params: dict[str, float]) -> ControlLimits:
    """Centre and σ from the kept baseline subgroups."""
    if not np.any(keep):
        raise SpcInputInvalid("no data left in the baseline to compute limits from", reason="empty_baseline")
    nb = int(keep.sum())
    if isinstance(data, AttributeData):
        c, n = data.counts[keep], data.sizes[keep]
        if kind == ChartKind.NP:
            return ControlLimits(kind, float(c.sum() / n.sum()), 0.0, None, int(n[0]), params, nb)
        if kind == ChartKind.C:
            return ControlLimits(kind, float(c.mean()), 0.0, None, None, params, nb)
        return ControlLimits(kind, float(c.sum() / n.sum()), 0.0, None, None, params, nb)
    if kind in (ChartKind.XBAR_R, ChartKind.XBAR_S):
        sizes = data.sizes[keep]
        means = data.means[keep]
        center = float(np.sum(means * sizes) / np.sum(sizes))
        if kind == ChartKind.XBAR_R:
            r = data.ranges[keep]
            return ControlLimits(
                kind, center, float(np.mean(r / _d2(sizes))), float(r.mean()), None, params, nb
            )
        s = data.stdevs[keep]
        return ControlLimits(kind, center, float(np.mean(s / _c4(sizes))), float(s.mean()), None, params, nb)
    x = _individuals(kind, data)
    mr = _mr(x)
    # a moving range counts only when both of its points are in the baseline
    mr_keep = keep.copy()
    mr_keep[1:] &= keep[:-1]
    mr_keep[0] = False
    center = float(x[keep].mean())
    if not np.any(mr_keep):
        raise SpcInputInvalid("at least two consecutive baseline points are needed", reason="empty_baseline")
    mrbar = float(mr[mr_keep].mean())
    sigma = mrbar / constants(2).d2
    if kind != ChartKind.I_MR and data.constant_size() not in (None, 1):
        # EWMA/CUSUM on subgroup means: σ of a mean from the within-subgroup spread
        n = data.sizes[keep]
        sigma = float(np.mean(data.ranges[keep] / _d2(n)))
    if "target" in params:
        center = float(params["target"])
    if "sigma" in params:
        sigma = float(params["sigma"])
    return ControlLimits(kind, center, sigma, mrbar, None, params, nb)


def _check_attribute(kind: ChartKind, data: AttributeData) -> None:
    if kind in (ChartKind.P, ChartKind.NP) and np.any(data.counts > data.sizes):
        i = int(np.argmax(data.counts > data.sizes))
        raise SpcInputInvalid(
            f"sample {i}: {data.counts[i]:g} defectives in a sample of {data.sizes[i]:g}",
            reason="count_exceeds_sample",
        )
    if kind == ChartKind.NP and len(data) and np.any(data.sizes != data.sizes[0]):
        raise SpcInputInvalid("the np chart needs one sample size: use the p chart", reason="sample_size")


def _check(kind: ChartKind, data: Data) -> None:
    if kind.attribute:
        if not isinstance(data, AttributeData):
            raise SpcInputInvalid(f"the {kind.value} chart needs attribute counts", reason="data_kind")
        _check_attribute(kind, data)
    else:
        if not isinstance(data, Subgroups):
            raise SpcInputInvalid(f"the {kind.value} chart needs measurements", reason="data_kind")
        _check_sizes(kind, data)


def _params(kind: ChartKind, params: Mapping[str, float] | None) -> dict[str, float]:
    out = dict(DEFAULT_PARAMS.get(kind, {}))
    out.update({k: float(v) for k, v in (params or {}).items()})
    if kind == ChartKind.EWMA and not 0 < out["lambda"] <= 1:
        raise SpcInputInvalid("EWMA lambda must be in (0, 1]", reason="params")
    if out.get("sigma", 1.0) <= 0:
        raise SpcInputInvalid("sigma must be positive", reason="params")
    return out


def phase1(
    kind: ChartKind | str,
    data: Data,
    *,
    exclude: Iterable[int] = (),
    drop_out_of_control: bool = False,
    params: Mapping[str, float] | None = None,
    max_iterations: int = 10,
) -> ControlLimits:
    """Limits from a baseline; ``exclude`` (requested) and, when asked, out-of-control points
    (beyond the limits of either chart, recomputed until none remain) are left out and recorded."""
    kind = ChartKind(kind)
    _check(kind, data)
    n = len(data)
    if n == 0:
        raise SpcInputInvalid("the baseline has no data", reason="empty_baseline")
    keep = np.ones(n, dtype=bool)
    reasons: dict[int, str] = {}
    for i in exclude:
        if not 0 <= i < n:
            raise SpcInputInvalid(
                f"excluded point {i} is outside the baseline (0..{n - 1})", reason="exclude"
            )
        keep[i] = False
        reasons[int(i)] = "requested"
    p = _params(kind, params)
    limits = _estimate(kind, data, keep, p)
    for it in range(1, max_iterations + 1 if drop_out_of_control else 1):
        res = evaluate(limits, data)
        out = (res.primary.beyond() | res.beyond_secondary) & keep
        if not np.any(out):
            break
        for j in np.flatnonzero(out):
            reasons[int(j)] = f"beyond limits (pass {it})"
        keep &= ~out
        limits = _estimate(kind, data, keep, p)
    excluded = tuple(sorted(reasons))
    return replace(limits, excluded=excluded, exclusion_reasons={i: reasons[i] for i in excluded})


def _empty(kind: ChartKind, keys: list[str]) -> ChartResult:
    e = np.empty(0)
    return ChartResult(
        kind, keys, Line(e, e, e, e), e, None, np.empty(0, np.uint16), np.empty(0, bool), NO_DATA
    )


def evaluate(limits: ControlLimits, data: Data, rules: RuleSet | None = None) -> ChartResult:
    """Plot ``data`` against ``limits``: per-point centre, limits, σ, and run-rule violations."""
    kind = limits.kind
    if len(data) == 0:
        return _empty(kind, [])
    _check(kind, data)
    keys = list(data.keys)
    three = 3.0
    second: Line | None = None
    if isinstance(data, AttributeData):
        c, n = data.counts, data.sizes
        cbar = limits.center
        if kind == ChartKind.P:
            pts, cl, sig = c / n, np.full(c.size, cbar), np.sqrt(cbar * (1 - cbar) / n)
            hi = np.minimum(1.0, cl + three * sig)
        elif kind == ChartKind.NP:
            pts, cl = c, n * cbar
            sig = np.sqrt(n * cbar * (1 - cbar))
            hi = cl + three * sig
        elif kind == ChartKind.C:
            pts, cl, sig = c, np.full(c.size, cbar), np.full(c.size, np.sqrt(cbar))
            hi = cl + three * sig
        else:
            pts, cl, sig = c / n, np.full(c.size, cbar), np.sqrt(cbar / n)
            hi = cl + three * sig
        primary = Line(pts, cl, hi, np.maximum(0.0, cl - three * sig))
    elif kind in (ChartKind.XBAR_R, ChartKind.XBAR_S):
        sizes = _size_of(data)
        s = limits.sigma
        sig = s / np.sqrt(sizes)
        cl = np.full(sizes.size, limits.center)
        primary = Line(data.means, cl, cl + three * sig, cl - three * sig)
        if kind == ChartKind.XBAR_R:
            d2, d3 = _d2(data.sizes), _d3(data.sizes)
            second = Line(data.ranges, d2 * s, (d2 + three * d3) * s, np.maximum(0.0, d2 - three * d3) * s)
        else:
            c4 = _c4(data.sizes)
            w = three * np.sqrt(1 - c4**2)
            second = Line(data.stdevs, c4 * s, (c4 + w) * s, np.maximum(0.0, c4 - w) * s)
    else:
        x = _individuals(kind, data)
        s = limits.sigma
        if kind != ChartKind.I_MR and data.constant_size() not in (None, 1):
            s = s / np.sqrt(float(data.sizes[0]))
        mu = limits.center
        m = x.size
        if kind == ChartKind.I_MR:
            cl = np.full(m, mu)
            sig = np.full(m, s)
            primary = Line(x, cl, cl + three * s, cl - three * s)
            mrbar = s * constants(2).d2
            second = Line(_mr(x), np.full(m, mrbar), np.full(m, constants(2).D4 * mrbar), np.zeros(m))
        elif kind == ChartKind.EWMA:
            from scipy.signal import lfilter

            lam, big_l = limits.params["lambda"], limits.params["L"]
            z, _ = lfilter([lam], [1.0, lam - 1.0], x, zi=[(1 - lam) * mu])
            i = np.arange(1, m + 1)
            sig = s * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
            cl = np.full(m, mu)
            primary = Line(np.asarray(z), cl, cl + big_l * sig, cl - big_l * sig)
        else:
            k, h = limits.params["k"] * s, limits.params["h"] * s
            up = np.cumsum(x - mu - k)
            dn = np.cumsum(mu - k - x)
            cplus = up - np.minimum(np.minimum.accumulate(up), 0.0)
            cminus = dn - np.minimum(np.minimum.accumulate(dn), 0.0)
            zero = np.zeros(m)
            sig = np.full(m, s)
            primary = Line(cplus, zero, np.full(m, h), zero)
            second = Line(cminus, zero, np.full(m, h), zero)
    sigma = sig if kind not in (ChartKind.EWMA, ChartKind.CUSUM) else np.asarray(sig)
    if kind in (ChartKind.EWMA, ChartKind.CUSUM):
        # run rules assume a Shewhart statistic: these charts signal only beyond their limits
        viol = np.where(primary.beyond() | (second.beyond() if second else False), 1, 0).astype(np.uint16)
    else:
        viol = evaluate_rules(primary.points, primary.cl, sigma, rules or RuleSet.default())
    beyond2 = second.beyond() if second is not None else np.zeros(primary.points.size, bool)
    return ChartResult(kind, keys, primary, np.asarray(sigma, dtype=np.float64), second, viol, beyond2)
