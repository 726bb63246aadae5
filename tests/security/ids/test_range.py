"""The cyber range: every step of the full scenario detected, no false alarm (short timings)."""

from __future__ import annotations

import asyncio

from gongyun.sim.range.runner import Target, run_range, scenario
from tests.security.ids.loopback import capture_ports, free_port


def test_full_scenario_recall_and_no_false_alarms() -> None:
    with capture_ports(set()):  # skips where raw sockets are refused
        pass
    target = Target(modbus_port=free_port(), opcua_port=free_port())
    report = asyncio.run(run_range(target, learn_s=4, quiet_s=4, gap_s=0.6))
    print(report.table())
    assert [s["name"] for s in report.steps] == [s.name for s in scenario("full")]
    run = [s for s in report.steps if not s["skipped"]]
    assert len(run) >= 9  # the MQTT step needs the broker on 127.0.0.1:1883
    assert all(s["detected"] for s in run), report.table()
    assert all(s["time_to_detect_s"] < 2.0 for s in run)
    assert report.false_alarms == []
    assert report.recall == 1.0
