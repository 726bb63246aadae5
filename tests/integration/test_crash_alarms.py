"""kill -9 the server right after alarm transitions and an acknowledgement answered 2xx.

Run in the embedded profile and in the server profile (PostgreSQL, NATS JetStream, the alarm
engine on the elected leader). A threshold rule sees values cross its limit and fall back, an
operator acknowledges each raise; the process gets SIGKILL right after the last acknowledgement
was answered. A new process on the same data must show the alarm acknowledged and a history
with every transition the API had shown and every acknowledgement, each exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apphelp import ADMIN_PASSWORD
from tests.integration.crashhelp import kill_9, start_server, stop, wait_ready
from tests.services import free_port

CYCLES = 3  # raise, ack, clear; then a last raise and ack before the kill


@contextmanager
def _client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as c:
        r = c.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield c


def _state(c: httpx.Client) -> str:
    r = c.get("/api/v1/alarms")
    assert r.status_code == 200, r.text
    return str(r.json()[0]["state"])


def _wait_state(c: httpx.Client, want: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (got := _state(c)) != want:
        assert time.monotonic() < deadline, f"alarm stayed {got}, expected {want}"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_after_ack_keeps_every_transition_and_ack_once(
    tmp_path: Path, profile: dict[str, str]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(tmp_path / "var", port, **profile)
    try:
        wait_ready(base, proc)
        with _client(base) as c:
            dev = c.post("/api/v1/assets/devices", json={"name": "pump1"})
            assert dev.status_code == 201, dev.text
            tag = c.post(f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": "temp"})
            assert tag.status_code == 201, tag.text
            rule = c.post(
                "/api/v1/alarms/rules",
                json={"kind": "threshold", "name": "hot", "tag": "pump1/temp", "limit": 90, "deadband": 5},
            )
            assert rule.status_code == 201, rule.text
            rid = rule.json()["id"]
            _wait_state(c, "normal")
            t0 = datetime.now(UTC) - timedelta(minutes=5)
            step = 0

            def ingest(value: float) -> None:
                nonlocal step
                step += 1
                ts = (t0 + timedelta(seconds=step)).isoformat()
                r = c.post(
                    "/api/v1/telemetry/ingest",
                    json={"samples": [{"tag": "pump1/temp", "value": value, "ts": ts}]},
                )
                assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

            def raise_and_ack() -> None:
                ingest(95.0)
                _wait_state(c, "unack_active")
                r = c.post(f"/api/v1/alarms/{rid}/ack")
                assert r.status_code == 200 and r.json()["state"] == "ack_active", r.text

            for _ in range(CYCLES):
                raise_and_ack()
                ingest(50.0)
                _wait_state(c, "normal")
            raise_and_ack()
        kill_9(proc)

        proc = start_server(tmp_path / "var", port, **profile)
        wait_ready(base, proc)
        with _client(base) as c:
            _wait_state(c, "ack_active", timeout=60)  # the new process must win the leader lock first
            r = c.get("/api/v1/alarms/history", params={"rule_id": rid, "limit": 1000})
            assert r.status_code == 200, r.text
            events: list[dict[str, Any]] = list(reversed(r.json()))
        transitions = Counter((e["before"], e["after"]) for e in events)
        expected = Counter(
            {
                ("normal", "unack_active"): CYCLES + 1,
                ("unack_active", "ack_active"): CYCLES + 1,
                ("ack_active", "normal"): CYCLES,
            }
        )
        assert transitions == expected, [(e["before"], e["after"], e["cause"]) for e in events]
        assert len({e["id"] for e in events}) == len(events)
        acks = [e for e in events if e["after"] == "ack_active"]
        assert all(e["user"] for e in acks), acks
    finally:
        stop(proc)
