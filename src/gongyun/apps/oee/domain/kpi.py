"""OEE and the ISO 22400-2 KPIs from time elements and quantities.

Time elements of a work unit over a period (seconds), as this app measures them:

====  =======================================================================================
POT   planned operation time: the shifts' length
PDT   planned downtime: breaks, planned maintenance, and time the machine reports down_planned
PBT   planned busy time = POT - PDT
APT   actual production time: running
AUST  actual unit setup time: setup
ADET  actual unit delay time: down_unplanned (breakdowns and stops)
AUPT  actual unit processing time = APT + AUST
AUBT  actual unit busy time = APT + AUST + ADET
====  =======================================================================================

Idle (ready, not producing) and unknown (no data) time within PBT are neither busy nor
running: they lower availability, and unknown is reported on its own. KPIs (``None`` where the
denominator is zero):

- availability A = APT / PBT; effectiveness (performance) E = PRI·PQ / APT; quality ratio
  QR = GQ / PQ; OEE = A·E·QR
- allocation efficiency AE = AUBT / PBT; utilisation efficiency UE = APT / AUBT
- technical efficiency TE = APT / (APT + ADET); setup ratio SeR = AUST / AUPT
- net equipment effectiveness NEE = AUPT / PBT · E · QR (setup is not counted as a loss)
- MTBF = APT / FE, MTTR = ADET / FE (FE: failure events, unplanned stops at least the
  micro-stop threshold long); scrap ratio = SQ / PQ; throughput = PQ per hour of PBT
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gongyun.apps.oee.domain.states import MachineState
from gongyun.apps.oee.errors import OeeInputInvalid


@dataclass(frozen=True)
class TimeElements:
    """Seconds of each time element over a period."""

    pot: float
    pdt: float
    apt: float
    aust: float
    adet: float
    idle: float
    unknown: float

    @property
    def pbt(self) -> float:
        """Planned busy time."""
        return self.pot - self.pdt

    @property
    def aupt(self) -> float:
        """Actual unit processing time."""
        return self.apt + self.aust

    @property
    def aubt(self) -> float:
        """Actual unit busy time."""
        return self.apt + self.aust + self.adet

    @classmethod
    def from_durations(cls, pot: float, pdt: float, by_state: list[float]) -> TimeElements:
        """From seconds per state inside PBT windows (down_planned seen there moves to PDT)."""
        planned_seen = by_state[MachineState.down_planned]
        return cls(
            pot=pot,
            pdt=pdt + planned_seen,
            apt=by_state[MachineState.running],
            aust=by_state[MachineState.setup],
            adet=by_state[MachineState.down_unplanned],
            idle=by_state[MachineState.idle],
            unknown=by_state[MachineState.unknown],
        )

    def __add__(self, other: TimeElements) -> TimeElements:
        mine, theirs = asdict(self).values(), asdict(other).values()
        return TimeElements(*(a + b for a, b in zip(mine, theirs, strict=True)))

    def as_dict(self) -> dict[str, float]:
        """JSON-able, derived elements included."""
        return {**asdict(self), "pbt": self.pbt, "aupt": self.aupt, "aubt": self.aubt}


@dataclass(frozen=True)
class Quantities:
    """Produced, good and scrap quantities over a period."""

    good: float
    scrap: float

    @property
    def produced(self) -> float:
        """PQ = GQ + SQ."""
        return self.good + self.scrap

    def __add__(self, other: Quantities) -> Quantities:
        return Quantities(self.good + other.good, self.scrap + other.scrap)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _mul(*xs: float | None) -> float | None:
    out = 1.0
    for x in xs:
        if x is None:
            return None
        out *= x
    return out


@dataclass(frozen=True)
class Kpis:
    """The KPIs of one machine (or line, or site) over one period."""

    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    allocation_efficiency: float | None
    utilization_efficiency: float | None
    technical_efficiency: float | None
    setup_ratio: float | None
    nee: float | None
    mtbf_s: float | None
    mttr_s: float | None
    scrap_ratio: float | None
    throughput_per_h: float | None
    failures: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


def kpis(te: TimeElements, q: Quantities, ideal_cycle_s: float, failures: int = 0) -> Kpis:
    """Every KPI from the time elements, quantities and the ideal cycle time (PRI)."""
    if ideal_cycle_s <= 0:
        raise OeeInputInvalid("the ideal cycle time must be positive", reason="ideal_cycle")
    if q.good < 0 or q.scrap < 0:
        raise OeeInputInvalid("quantities cannot be negative", reason="quantities")
    a = _ratio(te.apt, te.pbt)
    e = _ratio(ideal_cycle_s * q.produced, te.apt)
    qr = _ratio(q.good, q.produced)
    return Kpis(
        availability=a,
        performance=e,
        quality=qr,
        oee=_mul(a, e, qr),
        allocation_efficiency=_ratio(te.aubt, te.pbt),
        utilization_efficiency=_ratio(te.apt, te.aubt),
        technical_efficiency=_ratio(te.apt, te.apt + te.adet),
        setup_ratio=_ratio(te.aust, te.aupt),
        nee=_mul(_ratio(te.aupt, te.pbt), e, qr),
        mtbf_s=_ratio(te.apt, failures),
        mttr_s=_ratio(te.adet, failures),
        scrap_ratio=_ratio(q.scrap, q.produced),
        throughput_per_h=_ratio(q.produced * 3600, te.pbt),
        failures=failures,
    )
