"""The pump RUL model on a feed read the way the demo's gateway reads the pump, sampled as the worker does.

The simulated pump is stepped at the gateway's poll interval (0.2 s, with jitter), pressure passes
its deadband (report by exception, the last reported value held), the baseline is every row of the
pump's first 300 s (as a detector learned from stored telemetry has it), and the 1 Hz rows the RUL
features are built from are chosen with the worker's own rule (``diagnosis.new_second``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gongyun.apps.maintenance import diagnosis
from gongyun.sim.physics import Pump

POLL_S = 0.2  # sim/profiles/pump.toml: poll_interval
DEADBANDS = (0.0, 0.01, 0.0, 0.0, 0.0)  # the same profile: pressure reported by exception
RATE = 0.0008  # bearing wear per second, as tests/browser/test_demo_maintenance.py injects it


def _gateway_feed(seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], float]:
    """Rows of the pump signals at every poll, their times (µs) and the time of the trip (s)."""
    rng = np.random.default_rng(seed)
    pump = Pump(seed=seed)
    rows: list[list[float]] = []
    times: list[int] = []
    held: list[float] | None = None
    now = 0.0
    while now < 4000.0:
        dt = POLL_S + float(rng.uniform(-0.01, 0.01))
        now += dt
        if now >= 300.0 and not pump.wear_rate:
            pump.inject("bearing_wear", RATE)
        pump.step(dt)
        if pump.fault_code:
            return np.asarray(rows), np.asarray(times, dtype=np.int64), now
        values = [float(getattr(pump, s)) for s in diagnosis.PUMP_SIGNALS]
        if held is None:
            held = values
        else:  # report by exception: a value within its deadband of the last reported one is not sent
            held = [
                v if b == 0 or abs(v - h) > b else h for v, h, b in zip(values, held, DEADBANDS, strict=True)
            ]
        rows.append(list(held))
        times.append(int(now * 1e6))
    raise AssertionError("the pump did not trip")


def test_new_second_keeps_one_row_per_second_of_a_jittery_feed() -> None:
    times = np.cumsum(np.full(5000, 200_000) + np.random.default_rng(1).integers(-10_000, 10_000, 5000))
    kept, last = [], -1
    for t in times:
        if diagnosis.new_second(int(t), last):
            kept.append(int(t))
            last = int(t)
    spacing = float(np.diff(kept).mean()) / 1e6
    assert abs(spacing - 1.0) < 0.01, spacing


def test_pump_rul_near_the_trip_on_gateway_rate_data() -> None:
    model = diagnosis.pump_rul()
    errors: list[tuple[int, int, float]] = []
    for seed in (101, 202, 303):
        rows, times, trip = _gateway_feed(seed)
        base = rows[times < 300_000_000]
        mean, std = base.mean(axis=0), base.std(axis=0)
        keep, last = [], -1
        for i, t in enumerate(times):
            if diagnosis.new_second(int(t), last):
                keep.append(i)
                last = int(t)
        values, at = rows[keep], times[keep]
        for ttf in (120, 60, 30):
            end = int(np.searchsorted(at, (trip - ttf) * 1e6))
            x = diagnosis.rul_features(values, end, mean, std)
            rul = model.predict(x[None, :])[0][0]
            errors.append((seed, ttf, rul - (trip - at[end - 1] / 1e6)))
    print("\nseed | true s to trip | RUL error (s)")
    for seed, ttf, err in errors:
        print(f"{seed} | {ttf} | {err:+.1f}")
    assert max(abs(e) for *_, e in errors) < 60, errors
    assert abs(float(np.mean([e for *_, e in errors]))) < 30, errors
