"""The scheduling app's Gantt in a real browser: solve, publish, a machine stops, the repair is proposed
(its diff drawn), accepted, the Gantt redraws; the dispatch list; English and 简体中文 screenshots
(in the test's temporary directory, like the other browser tests)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_apps import _ready, _sign_in, _switch
from tests.browser.test_areas import Platform, platform
from tests.browser.test_console import Session, _shot, browser_session
from tests.browser.test_demo import ADMIN_PASSWORD as DEMO_PASSWORD
from tests.browser.test_demo import DemoServer, _until, demo

__all__ = ["browser_session", "demo", "platform"]  # fixtures, imported for use here

pytestmark = [pytest.mark.browser, pytest.mark.slow]
API = "/api/v1/apps/scheduling"
PUBLISHED = "() => document.querySelector('[data-testid=sched-info]').innerText.includes('published')"


def _plan(api: Any) -> None:
    r = api.patch(
        "/api/v1/apps/scheduling",
        json={
            "enabled": True,
            "settings": {"time_limit_s": 2, "repair_time_limit_s": 2, "auto_repair": False},
        },
    )
    assert r.status_code == 200, r.text
    for m in ("CNC1", "CNC2", "PAINT"):
        assert api.put(f"{API}/machines/{m}", json={"name": m}).status_code == 200
    now = datetime.now(UTC)
    for k in range(5):
        body = {
            "id": f"WO{k}",
            "product": "pump",
            "lot": f"LOT-{k}",
            "due_at": (now + timedelta(minutes=50 + 5 * k)).isoformat(),
            "operations": [
                {"id": "10", "durations": {"CNC1": 15 + k, "CNC2": 22 + k}},
                {"id": "20", "durations": {"PAINT": 8}},
                {"id": "30", "durations": {"CNC1": 6}},
            ],
        }
        assert api.post(f"{API}/orders", json=body).status_code == 201


def test_solve_publish_stop_repair_accept(
    platform: Platform, browser_session: Session, tmp_path: Path
) -> None:
    page, base = browser_session.page, platform.base
    _plan(platform.api)
    _sign_in(page, base)
    page.goto(base + "/apps/scheduling/gantt")
    _ready(page)
    page.locator("[data-testid=sched-solve]").click()
    page.wait_for_selector("svg.gy-sched-svg rect.gy-op")
    assert page.locator("rect.gy-op").count() == 15
    assert page.locator("rect.gy-critical").count() >= 1
    page.locator("[data-testid=sched-accept]").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=sched-info]').innerText.includes('published')"
    )
    page.locator("[data-testid=sched-by-order]").click()
    page.wait_for_selector("svg.gy-sched-svg[data-view=order]")
    page.locator("[data-testid=sched-by-machine]").click()
    page.locator("[data-testid=sched-zoom-in]").click()
    # the CNC stops: ask for a repair, its changes are drawn as a diff
    page.select_option("[data-testid=sched-repair-machine]", "CNC1")
    page.locator("[data-testid=sched-repair]").click()
    page.wait_for_function("() => document.querySelector('[data-testid=sched-version]').value === '2'")
    page.wait_for_selector("svg.gy-sched-svg rect.gy-down")
    info = page.locator("[data-testid=sched-info]").inner_text()
    assert "proposed" in info and "repair" in info
    assert page.locator("rect.gy-old").count() == page.locator("rect.gy-moved").count()
    _shot(page, tmp_path, "scheduling-01-repair-proposed-en")
    page.locator("[data-testid=sched-accept]").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=sched-info]').innerText.includes('published')"
    )
    assert page.locator("rect.gy-op").count() == 15
    assert platform.api.get(f"{API}/schedules/current").json()["version"] == 2
    _shot(page, tmp_path, "scheduling-02-repair-accepted-en")
    _switch(page, "zh-CN")
    page.wait_for_selector("svg.gy-sched-svg rect.gy-op")
    assert page.locator("#gy-app-root h1").inner_text() == "智能排产"
    assert "已发布" in page.locator("[data-testid=sched-info]").inner_text()
    _shot(page, tmp_path, "scheduling-03-gantt-zh")
    page.goto(base + "/apps/scheduling/dispatch")
    _ready(page)
    page.wait_for_selector("[data-testid=dispatch-list] table")
    assert "派工单" in page.locator("#gy-app-root h1").inner_text()
    _shot(page, tmp_path, "scheduling-04-dispatch-zh")
    _switch(page, "en")
    page.wait_for_selector("[data-testid=dispatch-list] table")
    assert "Dispatch list" in page.locator("#gy-app-root h1").inner_text()
    # the operator reports the first operation started: the list shows it running, as reported
    starts = page.locator("[data-testid=dispatch-start]").count()
    page.locator("[data-testid=dispatch-start]").first.click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=dispatch-list]').innerText.includes('(reported)')"
    )
    assert page.locator("[data-testid=dispatch-start]").count() == starts - 1
    _shot(page, tmp_path, "scheduling-05-dispatch-en")
    assert browser_session.script_errors == []


def test_demo_cnc_stoppage_proposes_a_repair_accepted_in_the_console(
    demo: DemoServer, browser_session: Session, tmp_path: Path
) -> None:
    """``gongyun demo``: orders for the virtual factory's machines are scheduled; stopping the CNC
    (an injected fault) proposes a repair; the planner accepts it in the console; the Gantt redraws."""
    page, base, api = browser_session.page, demo.base, demo.api
    # the demo seeded the app: enabled, the factory's machines (the CNC watched by its spindle
    # speed) and four orders routed mill -> test -> pack
    assert api.get("/api/v1/apps/scheduling").json()["state"] == "enabled"
    machines = {m["id"]: m for m in api.get(f"{API}/machines").json()}
    assert set(machines) == {"CNC", "PUMP", "PACK"}
    assert machines["CNC"]["watch_tag"] == "cnc-cell/spindle_speed"
    assert machines["CNC"]["equipment"] == "Machining/CNC cell/CNC mill M-1"
    orders = api.get(f"{API}/orders").json()
    assert [o["id"] for o in orders] == ["PO0", "PO1", "PO2", "PO3"]
    assert all(len(o["operations"]) == 3 for o in orders)
    r = api.patch("/api/v1/apps/scheduling", json={"settings": {"time_limit_s": 2, "repair_time_limit_s": 2}})
    assert r.status_code == 200, r.text
    # the CNC runs (its spindle turns) before it is scheduled
    _until(
        lambda: api.get("/api/v1/telemetry/latest").json(),
        lambda latest: "cnc-cell/spindle_speed" in latest,
        60,
        "the CNC spindle speed",
    )
    page.goto(base + "/login?next=/apps/scheduling/gantt")
    page.fill("#username", "admin")
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/apps/scheduling/gantt")
    _ready(page)
    page.locator("[data-testid=sched-solve]").click()
    page.wait_for_selector("svg.gy-sched-svg rect.gy-op")
    page.locator("[data-testid=sched-accept]").click()
    page.wait_for_function(PUBLISHED)
    _shot(page, tmp_path, "scheduling-demo-01-published-en")
    time.sleep(4)  # the worker reloads the watched machines every 3 s
    fault = api.post("/api/v1/demo/faults", json={"machine": "cnc", "fault": "stoppage"})
    assert fault.status_code in (200, 201), fault.text
    listing = _until(
        lambda: api.get(f"{API}/schedules").json(),
        lambda rows: rows and rows[0]["kind"] == "repair",
        90,
        "a repair proposal",
    )
    assert listing[0]["status"] == "proposed" and "CNC" in listing[0]["reason"]
    page.reload()
    _ready(page)
    page.select_option("[data-testid=sched-version]", str(listing[0]["version"]))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=sched-info]').innerText.includes('proposed')"
    )
    page.wait_for_selector("svg.gy-sched-svg rect.gy-down")
    _shot(page, tmp_path, "scheduling-demo-02-repair-proposed-en")
    page.locator("[data-testid=sched-accept]").click()
    page.wait_for_function(PUBLISHED)
    assert api.get(f"{API}/schedules/current").json()["version"] == listing[0]["version"]
    assert page.locator("rect.gy-op").count() == 12
    _shot(page, tmp_path, "scheduling-demo-03-repair-accepted-en")
    _switch(page, "zh-CN")
    page.wait_for_selector("svg.gy-sched-svg rect.gy-op")
    assert "已发布" in page.locator("[data-testid=sched-info]").inner_text()
    _shot(page, tmp_path, "scheduling-demo-04-repair-accepted-zh")
    assert browser_session.script_errors == []
