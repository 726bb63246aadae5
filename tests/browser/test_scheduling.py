"""The scheduling app's Gantt in a real browser: solve, publish, a machine stops, the repair is proposed
(its diff drawn), accepted, the Gantt redraws; the dispatch list; English and 简体中文 screenshots
(in the test's temporary directory, like the other browser tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_apps import _ready, _sign_in, _switch
from tests.browser.test_areas import Platform, platform
from tests.browser.test_console import Session, _shot, browser_session

__all__ = ["browser_session", "platform"]  # fixtures, imported for use here

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
    _shot(page, tmp_path, "scheduling-05-dispatch-en")
    assert browser_session.script_errors == []
