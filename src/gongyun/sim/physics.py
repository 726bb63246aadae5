"""Machine models: simple physics with noise and injectable faults (pure, no I/O)."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field
from enum import IntEnum


def _lag(current: float, target: float, tau: float, dt: float) -> float:
    """First-order lag of ``current`` towards ``target`` with time constant ``tau``."""
    return target + (current - target) * math.exp(-dt / tau) if tau > 0 else target


class PumpState(IntEnum):
    """Pump status register values."""

    stopped = 0
    running = 1
    tripped = 2


@dataclass
class Pump:
    """A centrifugal pump with motor and bearings; faults: bearing wear, clogging, cavitation."""

    seed: int = 1
    nominal_rpm: float = 1450.0
    speed_setpoint: float = 1450.0
    run_command: bool = True
    state: PumpState = PumpState.running
    speed: float = 1450.0
    flow: float = 0.0  # m3/h
    pressure: float = 0.0  # bar
    current: float = 0.0  # A
    vibration: float = 0.0  # mm/s RMS
    bearing_temp: float = 35.0  # degC
    run_seconds: float = 0.0
    total_volume: float = 0.0  # m3
    wear: float = 0.0  # 0..1, 1 = bearing failure
    wear_rate: float = 0.0  # per second, 0 = healthy
    clog: float = 0.0  # 0..1 fraction of flow restricted
    clog_rate: float = 0.0
    cavitation: float = 0.0  # 0..1, 1 = impeller damage (suction starved)
    cavitation_rate: float = 0.0
    fault_code: int = 0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.step(0.0)

    def inject(self, fault: str, rate: float = 0.01) -> None:
        """Start a fault: ``bearing_wear``, ``clogging`` or ``cavitation`` growing at ``rate`` per second."""
        if fault == "bearing_wear":
            self.wear_rate = rate
        elif fault == "clogging":
            self.clog_rate = rate
        elif fault == "cavitation":
            self.cavitation_rate = rate
        else:
            raise ValueError(f"unknown pump fault {fault!r}")

    def repair(self) -> None:
        """Clear faults and reset wear, as a maintenance crew would."""
        self.wear = self.wear_rate = self.clog = self.clog_rate = 0.0
        self.cavitation = self.cavitation_rate = 0.0
        self.fault_code = 0
        self.state = PumpState.stopped

    def time_to_failure(self, limit_s: float = 7200.0) -> float | None:
        """Seconds until a fault trips the pump, found by running a copy ahead (None: not within limit)."""
        if self.fault_code:
            return 0.0
        if not (self.wear_rate or self.clog_rate or self.cavitation_rate):
            return None
        twin = copy.deepcopy(self)
        t = 0.0
        while twin.fault_code == 0 and t < limit_s:
            twin.step(1.0)
            t += 1.0
        return t if twin.fault_code else None

    def step(self, dt: float) -> None:
        """Advance the model by ``dt`` seconds."""
        noise = self.rng.gauss
        running = self.state is PumpState.running
        if self.state is PumpState.stopped and self.run_command:
            self.state = PumpState.running
        elif self.state is PumpState.running and not self.run_command:
            self.state = PumpState.stopped
        target_speed = self.speed_setpoint if self.state is PumpState.running else 0.0
        self.speed = max(0.0, _lag(self.speed, target_speed, 2.0, dt))
        ratio = self.speed / self.nominal_rpm
        if running:
            self.wear = min(1.0, self.wear + self.wear_rate * (1 + 4 * self.wear) * dt)
            self.clog = min(0.95, self.clog + self.clog_rate * dt)
            self.cavitation = min(1.0, self.cavitation + self.cavitation_rate * dt)
            self.run_seconds += dt
        # affinity laws: Q ~ n, H ~ n^2; a clog restricts the discharge: less flow, more head
        self.flow = max(0.0, 120.0 * ratio * (1 - self.clog) + noise(0, 0.6) * ratio)
        self.pressure = max(0.0, 4.2 * ratio**2 * (1 + 0.35 * self.clog) + noise(0, 0.03) * ratio)
        hydraulic_kw = self.flow / 3600 * self.pressure * 100  # Q[m3/s] * p[kPa]
        friction = 1 + 0.6 * self.wear
        self.current = max(0.0, (2.0 * ratio + hydraulic_kw / 0.7 * 1.8) * friction + noise(0, 0.15) * ratio)
        self.vibration = max(0.05, (1.1 + 9.0 * self.wear**2) * ratio + noise(0, 0.08))
        target_temp = 25.0 + (18.0 + 45.0 * self.wear) * ratio
        self.bearing_temp = _lag(self.bearing_temp, target_temp, 30.0, dt) + noise(0, 0.05)
        if self.cavitation > 0:  # vapour bubbles: less head and flow, crackling pressure, vibration
            cav = self.cavitation
            self.flow = max(0.0, self.flow * (1 - 0.25 * cav) + noise(0, 3.0 * cav) * ratio)
            self.pressure = max(0.0, self.pressure * (1 - 0.3 * cav) + noise(0, 0.25 * cav) * ratio)
            self.current = max(0.0, self.current * (1 - 0.1 * cav))
            self.vibration += (2.5 * cav + abs(noise(0, 1.5 * cav))) * ratio
        self.total_volume += self.flow / 3600 * dt
        if self.wear >= 1.0 and self.state is PumpState.running:
            self.state, self.fault_code = PumpState.tripped, 1
        elif self.clog >= 0.9 and self.state is PumpState.running:
            self.state, self.fault_code = PumpState.tripped, 2
        elif self.cavitation >= 1.0 and self.state is PumpState.running:
            self.state, self.fault_code = PumpState.tripped, 3


CNC_STATES = ("IDLE", "RUNNING", "STOPPED", "ALARM")


@dataclass
class Cnc:
    """A machining centre: spindle, three axes, a part counter; faults: tool wear, stoppages."""

    seed: int = 2
    cycle_s: float = 20.0
    spindle_setpoint: float = 8000.0
    state: str = "RUNNING"
    spindle_speed: float = 8000.0
    spindle_load: float = 30.0  # %
    axis_temp: dict[str, float] = field(default_factory=lambda: {"X": 28.0, "Y": 27.5, "Z": 30.0})
    part_count: int = 0
    tool_wear: float = 0.0  # %
    tool_wear_per_part: float = 0.2
    stoppage_left: float = 0.0
    cycle_progress: float = 0.0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def inject(self, fault: str, rate: float = 5.0, duration: float = 30.0) -> None:
        """``tool_wear`` (``rate`` % per part) or ``stoppage`` (for ``duration`` seconds)."""
        if fault == "tool_wear":
            self.tool_wear_per_part = rate
        elif fault == "stoppage":
            self.stoppage_left, self.state = duration, "STOPPED"
        else:
            raise ValueError(f"unknown CNC fault {fault!r}")

    def step(self, dt: float) -> None:
        """Advance the model by ``dt`` seconds."""
        noise = self.rng.gauss
        if self.state == "STOPPED":
            self.stoppage_left -= dt
            if self.stoppage_left <= 0:
                self.state = "RUNNING"
        running = self.state == "RUNNING"
        target = self.spindle_setpoint if running else 0.0
        self.spindle_speed = max(0.0, _lag(self.spindle_speed, target, 1.5, dt) + noise(0, 5) * running)
        cutting = running and (self.cycle_progress % 1.0) < 0.8
        base_load = (25.0 + 0.45 * self.tool_wear) if cutting else 8.0
        self.spindle_load = max(0.0, base_load * (self.spindle_speed / self.spindle_setpoint) + noise(0, 1.0))
        heat = self.spindle_load / 100
        for axis, ambient in (("X", 24.0), ("Y", 24.0), ("Z", 25.0)):
            self.axis_temp[axis] = _lag(self.axis_temp[axis], ambient + 12 * heat, 120.0, dt) + noise(0, 0.02)
        if running:
            self.cycle_progress += dt / self.cycle_s
            while self.cycle_progress >= 1.0:
                self.cycle_progress -= 1.0
                self.part_count += 1
                self.tool_wear = min(100.0, self.tool_wear + self.tool_wear_per_part)
        if self.tool_wear >= 100.0 and self.state == "RUNNING":
            self.state = "ALARM"

    def change_tool(self) -> None:
        """Fit a new tool and clear a tool alarm."""
        self.tool_wear = 0.0
        if self.state == "ALARM":
            self.state = "RUNNING"


@dataclass
class PackagingLine:
    """A filling and packing line: counts, rejects, state; fault: quality drift of the fill weight.

    The packs are filled in batches of ``packs_per_batch`` from material lots of
    ``packs_per_lot`` packs (a new film roll or resin lot), numbered on from ``batch_base`` and
    ``lot_base``: :attr:`batch` and :attr:`material_lot` are the numbers of the running ones."""

    seed: int = 3
    rate_per_min: float = 120.0
    packs_per_batch: int = 30
    packs_per_lot: int = 75
    batch_base: int = 1
    lot_base: int = 1
    target_g: float = 500.0
    tolerance_g: float = 7.5
    state: str = "RUNNING"
    count: int = 0
    good: int = 0
    rejects: int = 0
    fill_weight: float = 500.0
    drift_g_per_s: float = 0.0
    offset_g: float = 0.0
    _carry: float = 0.0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @property
    def batch(self) -> int:
        """The number of the batch being filled."""
        return self.batch_base + self.count // self.packs_per_batch

    @property
    def material_lot(self) -> int:
        """The number of the material lot loaded."""
        return self.lot_base + self.count // self.packs_per_lot

    def inject(self, fault: str, rate: float = 0.05, duration: float = 30.0) -> None:
        """``quality_drift`` (fill weight drifts ``rate`` g/s) or ``stoppage``."""
        if fault == "quality_drift":
            self.drift_g_per_s = rate
        elif fault == "stoppage":
            self.state = "STOPPED"
        else:
            raise ValueError(f"unknown packaging fault {fault!r}")

    def step(self, dt: float) -> None:
        """Advance the model by ``dt`` seconds; each pack is weighed and good or rejected."""
        self.offset_g += self.drift_g_per_s * dt
        if self.state != "RUNNING":
            return
        self._carry += self.rate_per_min / 60 * dt
        while self._carry >= 1.0:
            self._carry -= 1.0
            self.fill_weight = self.target_g + self.offset_g + self.rng.gauss(0, 2.5)
            self.count += 1
            if abs(self.fill_weight - self.target_g) > self.tolerance_g:
                self.rejects += 1
            else:
                self.good += 1
