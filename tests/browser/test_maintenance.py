"""The maintenance app in a real browser, English and Simplified Chinese: a simulated pump's bearing
wear (the simulator of `gongyun demo`, seeded through the API) raises the anomaly score, the health
falls, the likely fault is named, an alarm is raised and a work order opened; an operator closes it
from the console. Screenshots land in the test's temporary directory."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gongyun.apps.maintenance.diagnosis import PUMP_SIGNALS
from gongyun.sim.physics import Pump
from tests.browser.test_apps import _ready, _switch
from tests.browser.test_areas import ADMIN_PASSWORD, _ingest, _post, platform
from tests.browser.test_console import Session, _shot, browser_session

__all__ = ["browser_session", "platform"]  # the fixtures, imported for use here

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BASE = "/api/v1/apps/maintenance"


def _until(probe: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError("not within the time limit")


def _samples(pump: Pump, t0: datetime, start: int, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        pump.step(1.0)
        ts = (t0 + timedelta(seconds=i)).isoformat()
        out += [{"tag": f"pump/{s}", "value": float(getattr(pump, s)), "ts": ts} for s in PUMP_SIGNALS]
    return out


def _seed(api: httpx.Client) -> dict[str, Any]:
    r = api.patch("/api/v1/apps/maintenance", json={"enabled": True})
    assert r.status_code == 200, r.text
    dev = _post(api, "/api/v1/assets/devices", {"name": "pump"})
    for tag in PUMP_SIGNALS:
        _post(api, f"/api/v1/assets/devices/{dev['id']}/tags", {"name": tag})
    pump = Pump(seed=11)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    base = _samples(pump, t0, 0, 300)
    for k in range(0, len(base), 500):
        _ingest(api, base[k : k + 500])
    body = {
        "equipment": "pump",
        "tags": [f"pump/{s}" for s in PUMP_SIGNALS],
        "start": t0.isoformat(),
        "end": (t0 + timedelta(seconds=300)).isoformat(),
    }
    det = _post(api, f"{BASE}/detectors", body)
    api.put(f"{BASE}/equipment/pump", json={"path": "demo-plant/utilities/pumps"})
    time.sleep(0.5)
    pump.inject("bearing_wear", 0.0008)
    t = 300
    track: list[tuple[int, float | None, float | None, float | None]] = []
    while t < 2000:
        twin = copy.deepcopy(pump)  # the simulator's own future: its true time to failure
        ttf = 0
        while twin.fault_code == 0 and ttf < 5000:
            twin.step(1.0)
            ttf += 1
        if ttf <= 60:
            break
        before = api.get(f"{BASE}/equipment/pump").json()["equipment"]["updated_at"]
        _ingest(api, _samples(pump, t0, t, 30))
        t += 30
        deadline = time.monotonic() + 15.0  # the scorer's turn (a busy machine may take a while)
        while time.monotonic() < deadline:
            if api.get(f"{BASE}/equipment/pump").json()["equipment"]["updated_at"] != before:
                break
            time.sleep(0.2)
        time.sleep(0.2)
        eq = api.get(f"{BASE}/equipment/pump").json()["equipment"]
        track.append((ttf - 30, eq["rul"], eq["rul_low"], eq["rul_high"]))
    return {"detector": det, "wear": pump.wear, "track": track}


def test_bearing_wear_to_closed_work_order(platform: Any, browser_session: Session, tmp_path: Path) -> None:
    api = platform.api
    seeded = _seed(api)

    def both() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = api.get(f"{BASE}/work-orders").json()
        return found if len(found) >= 2 else None

    orders = _until(both, 20.0)
    assert {o["reason"] for o in orders} == {"anomaly", "rul"}, (
        orders
    )  # persistent anomaly, RUL under lead time
    assert all(o["state"] == "open" for o in orders)
    named = _until(lambda: api.get(f"{BASE}/equipment/pump").json()["equipment"]["fault"] or None)
    assert named == "bearing_wear", named
    eq = api.get(f"{BASE}/equipment/pump").json()["equipment"]
    assert eq["health"] < 40 and eq["score"] > 1, eq
    alarms = _until(
        lambda: [
            a
            for a in api.get("/api/v1/alarms", params={"active": True}).json()
            if a["name"] == "pump health low"
        ]
    )
    assert alarms[0]["state"] == "unack_active"
    print(f"\nbearing wear {seeded['wear']:.2f}: health {eq['health']}, score {eq['score']}, fault {named}")
    print("true time to failure (s) | RUL estimate [10-90 %] | error")
    errors = []
    for ttf, rul, lo, hi in seeded["track"]:
        if rul is not None:
            errors.append(rul - ttf)
            print(f"{ttf:6d} | {rul:7.1f} [{lo:.0f}-{hi:.0f}] | {rul - ttf:+.1f}")
    assert errors, "no RUL estimate"
    assert abs(errors[-1]) < 60 and abs(errors[-1]) <= abs(errors[0]) + 1, errors

    page, base = browser_session.page, platform.base
    page.goto(base + "/login?next=/apps/maintenance/fleet")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/apps/maintenance/fleet")
    _ready(page)
    page.wait_for_selector("#gy-app-root table")
    assert "pump" in page.inner_text("#gy-app-root")
    _shot(page, tmp_path, "maintenance-01-fleet-en")
    page.click("#gy-app-root a:text('pump')")
    page.wait_for_selector("#maint-fault")
    assert "bearing_wear" in page.inner_text("#maint-fault")
    page.wait_for_selector("svg.maint-chart")
    page.wait_for_selector("[data-alarm-state=unack_active]")  # the health alarm, among the events
    _shot(page, tmp_path, "maintenance-02-equipment-en")
    _switch(page, "zh-CN")
    page.wait_for_selector("#maint-fault")
    assert "健康指数" in page.inner_text("#gy-app-root")
    _shot(page, tmp_path, "maintenance-03-equipment-zh")
    page.goto(base + "/apps/maintenance/orders")
    _ready(page)
    page.click("button[data-action='开始']")
    page.wait_for_selector("input[name=notes]")
    page.fill("input[name=notes]", "bearing outer race pitted, replaced")
    page.fill("input[name=label]", "bearing_wear")
    page.click("button[data-action='关闭']")
    page.wait_for_selector("[data-state=done]")
    _shot(page, tmp_path, "maintenance-04-orders-zh")
    page.goto(base + "/apps/maintenance/models")
    _ready(page)
    page.wait_for_selector("#gy-app-root table")
    page.fill("form.maint-train input[name=equipment]", "pump")
    page.fill("form.maint-train input[name=tags]", "pump/flow, pump/vibration")
    page.fill("form.maint-train input[name=minutes]", "1")
    page.click("form.maint-train button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('form.maint-train .form-status').textContent.length > 0"
    )
    assert "pump/flow" in page.inner_text("form.maint-train .form-status")  # no data in that window: refused
    _shot(page, tmp_path, "maintenance-05-models-zh")
    labels = api.get(f"{BASE}/labels").json()
    assert labels[0]["label"] == "bearing_wear"
    done = [o for o in api.get(f"{BASE}/work-orders").json() if o["state"] == "done"]
    assert done and done[0]["notes"].startswith("bearing outer race")
