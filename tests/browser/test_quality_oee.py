"""The quality and OEE pages in a real browser, in English and Simplified Chinese: a fill-weight
X-bar R chart whose drift trips a run rule and raises an alarm that is acknowledged from the chart;
a packer jam that shows as an uncoded stop, is coded from the losses page, and the Pareto updates.
Screenshots land in the test's temporary directory. (Seeded through the API, not `gongyun demo`.)"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_apps import _ready, _switch
from tests.browser.test_areas import ADMIN_PASSWORD, _ingest, _post, platform
from tests.browser.test_console import Session, _shot, browser_session

__all__ = ["browser_session", "platform"]  # the fixtures, imported for use here

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _until(probe: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("not within the time limit")


def _seed(api: httpx.Client) -> dict[str, Any]:
    for app in ("quality", "oee"):
        r = api.patch(f"/api/v1/apps/{app}", json={"enabled": True})
        assert r.status_code == 200, r.text
    dev = _post(api, "/api/v1/assets/devices", {"name": "packer"})
    for tag in ("fill_weight", "running", "good", "scrap"):
        _post(api, f"/api/v1/assets/devices/{dev['id']}/tags", {"name": tag})
    rng = random.Random(5)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    base = [
        {
            "tag": "packer/fill_weight",
            "value": rng.gauss(500, 1),
            "ts": (t0 + timedelta(seconds=i)).isoformat(),
        }
        for i in range(100)
    ]
    _ingest(api, base)
    chart = _post(
        api,
        "/api/v1/apps/quality/charts",
        {
            "name": "Fill weight",
            "kind": "xbar_r",
            "tag": "packer/fill_weight",
            "subgroup": {"by": "count", "size": 5},
            "spec": {"lsl": 492.5, "usl": 507.5},
        },
    )
    window = {"start": t0.isoformat(), "end": (t0 + timedelta(seconds=100)).isoformat(), "note": "baseline"}
    _post(api, f"/api/v1/apps/quality/charts/{chart['id']}/limits", window)
    drift = [
        {
            "tag": "packer/fill_weight",
            "value": rng.gauss(500 + 0.08 * i, 1),
            "ts": (t0 + timedelta(seconds=200 + i)).isoformat(),
        }
        for i in range(60)
    ]
    _ingest(api, drift)
    _until(lambda: api.get("/api/v1/apps/quality/violations").json())
    _post(
        api,
        "/api/v1/apps/oee/machines",
        {
            "name": "packer",
            "line": "packaging",
            "ideal_cycle_s": 0.5,
            "good_tag": "packer/good",
            "scrap_tag": "packer/scrap",
            "mapping": {"mode": "running_flag", "tag": "packer/running"},
        },
    )
    r = api.put(
        "/api/v1/apps/oee/reasons",
        json=[
            {"code": "mech", "name_en": "Mechanical", "name_zh": "机械"},
            {"code": "jam", "name_en": "Film jam", "name_zh": "卡膜", "parent": "mech"},
        ],
    )
    assert r.status_code == 200, r.text
    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=12)
    samples = []
    for i in range(600):  # ten minutes, jammed for two
        ts = (t1 + timedelta(seconds=i)).isoformat()
        samples += [
            {"tag": "packer/running", "value": 0.0 if 300 <= i < 420 else 1.0, "ts": ts},
            {
                "tag": "packer/good",
                "value": float(i * 2 - (240 if i >= 420 else 2 * max(0, i - 300))),
                "ts": ts,
            },
            {"tag": "packer/scrap", "value": float(i // 100), "ts": ts},
        ]
    for k in range(0, len(samples), 600):
        _ingest(api, samples[k : k + 600])
    _until(
        lambda: [
            s for s in api.get("/api/v1/apps/oee/stops", params={"uncoded": True}).json() if "duration_s" in s
        ]
    )
    return chart


def test_control_chart_ack_and_loss_coding_in_both_languages(
    platform: Any, browser_session: Session, tmp_path: Path
) -> None:
    api, page, base = platform.api, browser_session.page, platform.base
    _seed(api)
    page.goto(base + "/login?next=/apps/quality/charts")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/apps/quality/charts")
    _ready(page)
    page.wait_for_selector("svg.spc-chart circle.spc-violation")
    assert page.locator("svg.spc-chart").count() == 2  # X-bar and R
    assert "version 1" in page.locator("#spc-status").inner_text()
    _shot(page, tmp_path, "quality-01-chart-en")
    page.locator("button.spc-ack").first.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('button.spc-ack')].some(b => b.textContent === 'Acknowledged')"
    )
    alarms = api.get("/api/v1/alarms").json()
    spc = [a for a in alarms if a["name"] == "SPC Fill weight"]
    assert spc and not spc[0]["state"].startswith("unack"), spc
    _switch(page, "zh-CN")
    page.wait_for_selector("svg.spc-chart")
    assert "控制图" in page.locator("#gy-app-root").inner_text()
    _shot(page, tmp_path, "quality-02-chart-zh")
    page.goto(base + "/apps/quality/capability")
    _ready(page)
    page.wait_for_selector("#cap-histogram")
    _shot(page, tmp_path, "quality-03-capability-zh")

    page.goto(base + "/apps/oee/losses")
    _ready(page)
    page.wait_for_selector("#oee-pareto rect[data-key=uncoded]")
    assert "非计划停机" in page.locator("#oee-uncoded").inner_text()
    _shot(page, tmp_path, "oee-01-losses-uncoded-zh")
    page.locator("tr[data-stop] select.oee-reason").first.select_option("jam")
    page.locator("tr[data-stop] button.oee-code").first.click()
    page.wait_for_selector("#oee-pareto rect[data-key=jam]")
    page.wait_for_selector("tr[data-stop]", state="detached")  # no uncoded stop left
    assert page.locator("#oee-pareto rect[data-key=uncoded]").count() == 0
    assert "非计划停机" not in page.locator("#oee-uncoded").inner_text()
    assert "卡膜" in page.locator("#oee-pareto").inner_html()
    _shot(page, tmp_path, "oee-02-losses-coded-zh")
    page.goto(base + "/apps/oee/board")
    _ready(page)
    page.wait_for_selector("svg.oee-timeline rect[data-state=down_unplanned]")
    _shot(page, tmp_path, "oee-03-board-zh")
    _switch(page, "en")
    page.wait_for_selector("svg.oee-bars")
    assert "Availability" in page.locator("#oee-kpis").inner_html()
    _shot(page, tmp_path, "oee-04-board-en")
    page.goto(base + "/apps/oee/site")
    _ready(page)
    page.wait_for_selector("svg.oee-bars[data-name='Site']")
    assert "bottleneck: " in page.locator("#oee-site-today").inner_html()
    assert page.locator("#oee-site-table tbody tr").count() >= 1
    _shot(page, tmp_path, "oee-06-site-en")
    _switch(page, "zh-CN")
    page.wait_for_selector("svg.oee-bars[data-name='工厂']")
    assert "瓶颈" in page.locator("#oee-site-today").inner_html()
    _shot(page, tmp_path, "oee-07-site-zh")
    _switch(page, "en")
    page.goto(base + "/apps/oee/losses")
    _ready(page)
    page.wait_for_selector("#oee-pareto rect[data-key=jam]")
    assert "Film jam" in page.locator("#oee-pareto").inner_html()
    _shot(page, tmp_path, "oee-05-losses-en")
    assert browser_session.script_errors == []
