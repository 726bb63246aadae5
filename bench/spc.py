"""bench/spc: all twelve run rules over 1 million subgroups, beside a straightforward NumPy version.

Builds SUBGROUPS subgroups of N measurements with a few shifts and trends in them, computes the
X-bar R chart (means, ranges, phase I limits), then times:

  rules   gongyun.apps.quality.spc.rules.evaluate_rules, all 8 Nelson + 4 Western Electric rules
  naive   the same rules written the straightforward way: sliding_window_view per rule

and checks both mark the same points. Median of REPEAT runs after a warm-up.

    .venv/bin/python bench/spc.py [--subgroups 1000000] [--n 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view as windows

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gongyun.apps.quality.spc import ALL_RULES, RuleSet, by_count, evaluate, evaluate_rules, phase1
from gongyun.apps.quality.spc.constants import constants
from gongyun.apps.quality.spc.rules import BIT

REPEAT = 5


def naive_rules(z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each rule as one would first write it: a sliding window per rule, padded at the start."""
    n = z.size
    out = np.zeros(n, dtype=np.uint16)

    def at_end(mask: np.ndarray, k: int) -> np.ndarray:
        full = np.zeros(n, dtype=bool)
        full[k - 1 :] = mask
        return full

    beyond3 = np.abs(z) > 3
    out |= np.where(beyond3, BIT["N1"] | BIT["WE1"], 0).astype(np.uint16)
    for rule, k in (("N2", 9), ("WE4", 8)):
        w = windows(z, k)
        out[at_end((w > 0).all(axis=1) | (w < 0).all(axis=1), k)] |= BIT[rule]
    d = windows(np.diff(x), 5)
    out[at_end((d > 0).all(axis=1) | (d < 0).all(axis=1), 6)] |= BIT["N3"]
    dd = np.diff(x)
    alt = windows(dd[1:] * dd[:-1] < 0, 12).all(axis=1)
    out[at_end(alt, 14)] |= BIT["N4"]
    for rules, k, m, lev in ((("N5", "WE2"), 2, 3, 2.0), (("N6", "WE3"), 4, 5, 1.0)):
        hi = np.concatenate([np.zeros(m - 1, bool), z > lev])
        lo = np.concatenate([np.zeros(m - 1, bool), z < -lev])
        mask = ((windows(hi, m).sum(axis=1) >= k) & (z > lev)) | (
            (windows(lo, m).sum(axis=1) >= k) & (z < -lev)
        )
        for r in rules:
            out[mask] |= BIT[r]
    out[at_end(windows(np.abs(z) < 1, 15).all(axis=1), 15)] |= BIT["N7"]
    out[at_end(windows(np.abs(z) > 1, 8).all(axis=1), 8)] |= BIT["N8"]
    return out


def timed(fn: Callable[[], object]) -> float:
    """Median milliseconds of REPEAT runs after one warm-up."""
    fn()
    runs = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subgroups", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    k, n = args.subgroups, args.n
    shift = np.zeros(k)
    for start in rng.integers(0, k - 50, size=max(1, k // 5000)):
        shift[start : start + 30] += rng.choice([-1.5, 1.5, 0.8])
    values = rng.normal(500.0, 1.0, (k, n)) + shift[:, None]
    data = by_count(values.ravel(), n)
    t = time.perf_counter()
    constants(n)  # computed once per process (numeric integration), then cached
    const_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    limits = phase1("xbar_r", data)
    chart = evaluate(limits, data, RuleSet.of(ALL_RULES))
    chart_ms = (time.perf_counter() - t) * 1000
    x, cl, sig = chart.primary.points, chart.primary.cl, chart.sigma
    rules = RuleSet.of(ALL_RULES)
    ours = evaluate_rules(x, cl, sig, rules)
    z = (x - cl) / sig
    ref = naive_rules(z, x)
    same = bool(np.array_equal(ours, ref))
    rules_ms = timed(lambda: evaluate_rules(x, cl, sig, rules))
    naive_ms = timed(lambda: naive_rules((x - cl) / sig, x))
    flagged = int(np.count_nonzero(ours))
    result = {
        "subgroups": k,
        "n": n,
        "constants_ms": round(const_ms, 1),
        "chart_ms": round(chart_ms, 1),
        "rules_ms": round(rules_ms, 1),
        "naive_ms": round(naive_ms, 1),
        "ratio_naive_over_rules": round(naive_ms / rules_ms, 2),
        "flagged_points": flagged,
        "same_marks": same,
        "per_rule": {r: int(np.count_nonzero(ours & BIT[r])) for r in ALL_RULES},
        "at": datetime.now(UTC).isoformat(),
    }
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    out.joinpath("spc.json").write_text(json.dumps(result, indent=2))
    print(
        f"  constants for n=2..25 computed in {const_ms:.0f} ms; X-bar R chart with all 12 rules "
        f"(limits, points, rules) in {chart_ms:.0f} ms; {flagged:,} points marked"
    )
    if not same:
        print("  MISMATCH: the two implementations mark different points", flush=True)
        sys.exit(1)
    print(
        f"spc: {k:,} subgroups of {n}, 12 rules: {rules_ms:.1f} ms "
        f"vs straightforward NumPy {naive_ms:.1f} ms "
        f"(x{naive_ms / rules_ms:.2f}), same marks"
    )


if __name__ == "__main__":
    main()
