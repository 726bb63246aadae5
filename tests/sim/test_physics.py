"""The machine models: plausible steady state and faults that grow into failures."""

from __future__ import annotations

import pytest

from gongyun.sim.physics import Cnc, PackagingLine, Pump, PumpState


def run(model: Pump | Cnc | PackagingLine, seconds: float, dt: float = 1.0) -> None:
    for _ in range(int(seconds / dt)):
        model.step(dt)


def test_pump_healthy_steady_state() -> None:
    pump = Pump(seed=7)
    run(pump, 600)
    assert 110 < pump.flow < 130
    assert 3.9 < pump.pressure < 4.5
    assert pump.vibration < 2.0
    assert 35 < pump.bearing_temp < 50
    assert pump.state is PumpState.running


def test_pump_speed_follows_affinity_laws() -> None:
    pump = Pump(seed=7)
    pump.speed_setpoint = 725
    run(pump, 60)
    assert 55 < pump.flow < 65
    assert 0.9 < pump.pressure < 1.2


def test_bearing_wear_grows_to_failure() -> None:
    pump = Pump(seed=7)
    run(pump, 60)
    baseline_vib, baseline_temp = pump.vibration, pump.bearing_temp
    pump.inject("bearing_wear", rate=0.0005)
    vib = []
    for _ in range(10):
        run(pump, 30)
        vib.append(pump.vibration)
    assert pump.wear > 0.1
    assert vib[-1] > baseline_vib
    assert pump.bearing_temp > baseline_temp
    run(pump, 2000)
    assert pump.state is PumpState.tripped and pump.fault_code == 1
    assert pump.flow < 1.0


def test_clogging_lowers_flow_raises_pressure() -> None:
    pump = Pump(seed=7)
    run(pump, 60)
    flow, pressure = pump.flow, pump.pressure
    pump.inject("clogging", rate=0.001)
    run(pump, 300)
    assert pump.flow < flow * 0.8
    assert pump.pressure > pressure


def test_unknown_fault_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown pump fault"):
        Pump().inject("melting")


def test_cnc_counts_parts_and_tool_wear_raises_load_then_alarms() -> None:
    cnc = Cnc(seed=3, cycle_s=10)
    run(cnc, 100, dt=0.5)
    assert cnc.part_count == 10
    cnc.inject("tool_wear", rate=10.0)
    run(cnc, 60, dt=0.5)
    assert cnc.tool_wear >= 60
    loads = []
    for _ in range(40):
        cnc.step(0.5)
        loads.append(cnc.spindle_load)
    assert max(loads) > 45
    run(cnc, 100, dt=0.5)
    assert cnc.state == "ALARM"
    parts = cnc.part_count
    run(cnc, 50, dt=0.5)
    assert cnc.part_count == parts
    cnc.change_tool()
    assert cnc.state == "RUNNING"


def test_cnc_stoppage_ends() -> None:
    cnc = Cnc(seed=3)
    cnc.inject("stoppage", duration=20)
    run(cnc, 10)
    assert cnc.state == "STOPPED" and cnc.spindle_speed < 100
    run(cnc, 15)
    assert cnc.state == "RUNNING"


def test_packaging_quality_drift_raises_rejects() -> None:
    line = PackagingLine(seed=5)
    run(line, 600)
    assert line.count == 1200
    healthy_rate = line.rejects / line.count
    assert healthy_rate < 0.01
    line.inject("quality_drift", rate=0.02)
    before = (line.count, line.rejects)
    run(line, 600)
    drift_rate = (line.rejects - before[1]) / (line.count - before[0])
    assert drift_rate > 0.2
    assert line.good + line.rejects == line.count
