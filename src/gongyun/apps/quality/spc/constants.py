"""Control chart constants for subgroup sizes 2..25, computed from their definitions.

``d2`` and ``d3`` are the mean and standard deviation of the range of ``n`` standard normal
observations, by numeric integration of the range distribution (Tippett's integrals);
``c4`` comes from the gamma function. The others follow from these three:
A2 = 3/(d2√n), A3 = 3/(c4√n), B3/B4 = 1 ∓ 3√(1-c4²)/c4, D3/D4 = 1 ∓ 3·d3/d2 (floored at 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from gongyun.apps.quality.errors import SpcInputInvalid

N_MIN = 2
N_MAX = 25


@dataclass(frozen=True, slots=True)
class Constants:
    """The constants of one subgroup size."""

    n: int
    d2: float
    d3: float
    c4: float
    A2: float
    A3: float
    B3: float
    B4: float
    D3: float
    D4: float


def _phi(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return np.asarray(ndtr(x), dtype=np.float64)


@cache
def _range_moments() -> dict[int, tuple[float, float]]:
    """(d2, d3) for every n, by trapezoidal integration on a fine grid over [-9, 9]."""
    x = np.linspace(-7.5, 7.5, 1201)
    h = x[1] - x[0]
    f = _phi(x)
    w = np.full(x.size, h)
    w[0] = w[-1] = h / 2
    # pairs x_i < y_j with full weight, the diagonal x = y with half (trapezoid over a triangle)
    tri = np.triu(np.ones((x.size, x.size)), k=1) + 0.5 * np.eye(x.size)
    tri *= np.outer(w, w)
    diff = np.clip(f[None, :] - f[:, None], 0.0, None)
    out = {}
    for n in range(N_MIN, N_MAX + 1):
        d2 = float(np.sum(w * (1.0 - f**n - (1.0 - f) ** n)))
        # E[R²] = 2 ∬_{x<y} 1 - F(y)^n - (1-F(x))^n + (F(y)-F(x))^n dx dy
        inner = 1.0 - f[None, :] ** n - (1.0 - f[:, None]) ** n + diff**n
        er2 = 2.0 * float(np.sum(inner * tri))
        out[n] = (d2, math.sqrt(max(er2 - d2 * d2, 0.0)))
    return out


def _c4(n: int) -> float:
    return math.sqrt(2.0 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


@cache
def constants(n: int) -> Constants:
    """The constants for subgroup size ``n`` (2..25); anything else is refused."""
    if not isinstance(n, int) or not N_MIN <= n <= N_MAX:
        raise SpcInputInvalid(
            f"subgroup size {n} is outside {N_MIN}..{N_MAX}, the range of the constant tables",
            reason="subgroup_size",
        )
    d2, d3 = _range_moments()[n]
    c4 = _c4(n)
    s = 3.0 * math.sqrt(1.0 - c4 * c4) / c4
    return Constants(
        n=n,
        d2=d2,
        d3=d3,
        c4=c4,
        A2=3.0 / (d2 * math.sqrt(n)),
        A3=3.0 / (c4 * math.sqrt(n)),
        B3=max(0.0, 1.0 - s),
        B4=1.0 + s,
        D3=max(0.0, 1.0 - 3.0 * d3 / d2),
        D4=1.0 + 3.0 * d3 / d2,
    )


def c4_array(n: np.ndarray) -> np.ndarray:
    """c4 for an array of sizes (any n ≥ 2, no table limit)."""
    from scipy.special import gammaln

    nf = np.asarray(n, dtype=np.float64)
    return np.asarray(np.sqrt(2.0 / (nf - 1)) * np.exp(gammaln(nf / 2) - gammaln((nf - 1) / 2)))


class _Table:
    """``TABLE[n]``: the constants of size n, computed once."""

    def __getitem__(self, n: int) -> Constants:
        return constants(n)

    def sizes(self) -> range:
        """The sizes the table covers."""
        return range(N_MIN, N_MAX + 1)


TABLE = _Table()
