"""``gongyun demo`` in a real browser: the virtual factory's tree, a live trend and a fault alarm.

The real server runs as a subprocess with its simulators (Modbus TCP, OPC UA, Sparkplug B on
loopback) and edge gateway. Headless Debian Chromium (never a Playwright-downloaded browser),
signed in as an operator, sees the seeded ISA-95 tree, opens the pump's tags and watches a
trend move with what the gateway polls. An engineer then sets a vibration limit and injects
bearing wear into the simulated pump: the alarm shows in the header banner and on the alarms
page, and the operator acknowledges it. Screenshots (English and 简体中文) land in tmp_path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_areas import _chinese_only
from tests.browser.test_console import Session, _shot, browser_session
from tests.services import free_port

__all__ = ["browser_session"]  # the fixture, imported for use here

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "demo-Test-pass-42"
OPERATOR = ("chen.op", "Operator-pass-8")
ENGINEER = ("zhou.eng", "Engineer-pass-8")
RULE_NAME = "Pump vibration high"
VIBRATION = "pump-station/vibration"
FLOW = "pump-station/flow"
DEVICE = "pump-station"
ALARM_TIMEOUT_MS = 90_000


def _demo_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("gongyun")
    args = ["demo", "--host", "127.0.0.1", "--port", str(port)]
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from gongyun.cli.main import run; run()", *args]


@dataclass
class DemoServer:
    """A running ``gongyun demo``: its base URL and an API client signed in as admin."""

    base: str
    api: httpx.Client
    log: Path


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 120  # a loaded 2-core machine: the demo starts in a minute or more
    while True:
        if proc.poll() is not None:
            pytest.fail(f"gongyun demo exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"gongyun demo did not answer /healthz within 120 s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    """``gongyun demo`` on a free port with a fresh data directory; always stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "GONGYUN_DATA_DIR": str(tmp_path / "data"),
        "GONGYUN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GONGYUN_LOG_FORMAT": "json",
    }
    env.pop("GONGYUN_CONFIG", None)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _demo_command(port), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    api = httpx.Client(base_url=base, timeout=15)
    try:
        _wait_healthy(proc, base, log_path)
        api.headers["Authorization"] = "Bearer " + _token(api, "admin", ADMIN_PASSWORD)
        yield DemoServer(base, api, log_path)
    finally:
        api.close()
        _stop(proc)


# -- API helpers ----------------------------------------------------------------------------------
def _token(api: httpx.Client, username: str, password: str) -> str:
    r = api.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def _post(api: httpx.Client, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    r = api.post(path, json=body, **kw)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    result: dict[str, Any] = r.json()
    return result


def _until(fetch: Any, check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if check(last):
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout} s; last: {str(last)[:500]}")


def _find(nodes: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The node called ``name`` anywhere in the asset tree."""
    for node in nodes:
        if node["name"] == name:
            return node
        try:
            return _find(node.get("children") or [], name)
        except LookupError:
            continue
    raise LookupError(name)


def _alarm(api: httpx.Client, rule_id: str) -> dict[str, Any]:
    alarm: dict[str, Any] = next(a for a in api.get("/api/v1/alarms").json() if a["rule_id"] == rule_id)
    return alarm


# -- browser helpers ------------------------------------------------------------------------------
def _ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready=true]")


def _login(page: Any, base: str, username: str, password: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + target)
    _ready(page)


def _dataset_int(page: Any, element_id: str, key: str) -> int:
    value = page.evaluate("([id, key]) => document.getElementById(id).dataset[key] || '0'", [element_id, key])
    return int(value)


def test_demo_tree_trend_and_fault_alarm(demo: DemoServer, browser_session: Session, tmp_path: Path) -> None:
    page, base, api = browser_session.page, demo.base, demo.api
    _post(api, "/api/v1/users", {"username": OPERATOR[0], "password": OPERATOR[1], "role": "operator"})
    _post(api, "/api/v1/users", {"username": ENGINEER[0], "password": ENGINEER[1], "role": "engineer"})
    tree = api.get("/api/v1/assets/tree").json()
    pump = _find(tree, "Pump P-101")
    # The gateway polls the simulated pump and the platform stores what it uplinks.
    _until(
        lambda: api.get("/api/v1/telemetry/latest").json(),
        lambda v: FLOW in v and VIBRATION in v,
        60,
        "the pump's samples being stored",
    )

    # The operator sees the virtual factory's ISA-95 tree.
    _login(page, base, *OPERATOR, "/assets")
    page.wait_for_selector("#asset-tree .tree-node")
    shown = page.locator("#asset-tree").inner_text()
    for name in (
        "Gongyun Demo",
        "Virtual factory",
        "Utilities",
        "Pump station",
        "Pump P-101",
        "pump-station",
        "Machining",
        "CNC cell",
        "CNC mill M-1",
        "cnc-cell",
    ):
        assert name in shown, name
    _shot(page, tmp_path, "01-demo-tree-en")

    # Selecting the pump's equipment lists its device's tags with their last values.
    page.click(f".tree-node[data-node='{pump['id']}']")
    page.wait_for_selector(f"button[data-tag='{FLOW}']")
    page.wait_for_selector(f"button[data-tag='{VIBRATION}']")
    assert "Equipment" in page.locator("#asset-level").inner_text()
    assert page.locator("#asset-detail-title").inner_text() == "Pump P-101"
    assert page.locator(f"#asset-devices [data-last='{FLOW}']").inner_text() != "—"
    _shot(page, tmp_path, "02-demo-pump-tags-en")

    # The flow trend draws the stored history, then moves with what the gateway polls.
    page.click(f"button[data-tag='{FLOW}']")
    page.wait_for_selector("#trend-live[data-state=open]", timeout=30_000)
    page.wait_for_function("() => Number(document.getElementById('trend').dataset.points) > 0")
    assert page.locator("#trend-title").inner_text() == FLOW
    before = _dataset_int(page, "trend", "updates")
    page.wait_for_function(
        "n => Number(document.getElementById('trend').dataset.updates) >= n + 5", arg=before, timeout=30_000
    )
    first_last = page.locator("#trend-last").inner_text()
    assert first_last != "—" and first_last.endswith("m3/h"), first_last
    page.wait_for_function(
        "v => document.getElementById('trend-last').textContent !== v", arg=first_last, timeout=30_000
    )
    _shot(page, tmp_path, "03-demo-flow-trend-en")

    # An engineer sets a vibration limit and injects bearing wear into the simulated pump.
    engineer = {"Authorization": "Bearer " + _token(api, *ENGINEER)}
    assert page.locator("#gy-alarm-banner").get_attribute("data-count") == "0"
    rule = _post(
        api,
        "/api/v1/alarms/rules",
        {
            "kind": "threshold",
            "name": RULE_NAME,
            "tag": VIBRATION,
            "limit": 3.0,
            "deadband": 0.2,
            "priority": "high",
        },
        headers=engineer,
    )
    fault = _post(
        api,
        "/api/v1/demo/faults",
        {"machine": "pump", "fault": "bearing_wear", "rate": 0.02},
        headers=engineer,
    )
    assert fault["status"] == "injected"

    # The vibration trend climbs; the alarm raises the header banner on the page being watched.
    page.click(f"button[data-tag='{VIBRATION}']")
    page.wait_for_function(
        "() => document.getElementById('trend-last').textContent.endsWith('mm/s')", timeout=30_000
    )
    assert page.locator("#trend-title").inner_text() == VIBRATION
    page.wait_for_selector("#trend-live[data-state=open]", timeout=30_000)
    page.wait_for_function(
        "() => Number(document.getElementById('trend').dataset.last) > 3.0", timeout=ALARM_TIMEOUT_MS
    )
    page.wait_for_selector("#gy-alarm-banner:not([hidden]):not([data-count='0'])", timeout=ALARM_TIMEOUT_MS)
    assert "unacknowledged" in page.locator("#gy-alarm-banner").inner_text()
    # Well past the limit and its deadband, noise cannot bring it back to normal before the ack.
    page.wait_for_function(
        "() => Number(document.getElementById('trend').dataset.last) > 3.5", timeout=ALARM_TIMEOUT_MS
    )
    assert _alarm(api, rule["id"])["state"] == "unack_active"
    _shot(page, tmp_path, "04-demo-vibration-alarm-banner-en")

    # The banner leads to the alarms page, where the operator acknowledges it.
    page.click("#gy-alarm-banner")
    page.wait_for_url(base + "/alarms")
    _ready(page)
    row = page.locator(f"#alarms-table tr[data-rule='{rule['id']}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "unack_active"
    text = row.inner_text()
    assert RULE_NAME in text and VIBRATION in text and "High" in text
    assert "Unacknowledged, active" in text
    _shot(page, tmp_path, "05-demo-alarms-unack-en")
    count = int(page.locator("#gy-alarm-banner").get_attribute("data-count") or "0")
    row.locator("button[data-action=ack]").click()
    page.wait_for_selector(f"#alarms-table tr[data-rule='{rule['id']}'][data-state=ack_active]")
    assert f"Alarm {RULE_NAME} was acknowledged." in page.locator("#gy-flash").inner_text()
    page.wait_for_function(
        "n => Number(document.getElementById('gy-alarm-banner').dataset.count) < n", arg=count
    )
    assert OPERATOR[0] in page.locator("#history-table").inner_text()
    assert _alarm(api, rule["id"])["state"] == "ack_active"
    _shot(page, tmp_path, "06-demo-alarms-acked-en")

    # In Chinese: the acknowledged alarm and its history read in Chinese.
    page.click(".lang-switch a[data-lang='zh-CN']")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    _ready(page)
    assert page.locator("h1").inner_text() == "告警"
    row = page.locator(f"#alarms-table tr[data-rule='{rule['id']}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "ack_active"
    assert "已确认，激活" in row.inner_text()
    assert "已确认，激活" in page.locator("#history-table").inner_text()
    data = {RULE_NAME, VIBRATION, OPERATOR[0], "Pump P-101 bearing hot", "pump-station/bearing_temp"}
    assert _chinese_only(page, "#main", data) == set()
    _shot(page, tmp_path, "07-demo-alarms-zh")

    # Devices (in Chinese): the polled pump answers, so its state badge reads online, under the
    # demo's local gateway; the connection state is read again every few seconds.
    page.click("[data-nav=devices]")
    _ready(page)
    badge = page.locator(f"[data-device='{DEVICE}'] [data-conn] [data-device-state]")
    badge.wait_for()
    assert badge.get_attribute("data-device-state") == "online"
    assert badge.inner_text() == "在线" and "badge-ok" in (badge.get_attribute("class") or "")
    group = page.locator("#device-status .gateway-group[data-place=local]")
    assert group.count() >= 1
    row = group.locator("tr", has_text=DEVICE)
    assert row.locator("[data-device-state=online]").count() == 1
    assert re.search(r"\d+\s*秒钟前|现在", row.inner_text()), row.inner_text()
    page.wait_for_selector("#devices-connectivity[data-refreshes]", timeout=15_000)
    _shot(page, tmp_path, "08-demo-devices-zh")

    assert browser_session.script_errors == []
    # No page asked the API for anything it may not (a tag without a cleaning run has no report).
    misses = {(method, path, status) for method, path, status in browser_session.http_failures}
    assert misses <= {("GET", "/api/v1/telemetry/clean/report", 404)}
