"""The console's areas in a real browser against the real server, with data seeded through the API.

Headless Debian Chromium (never a Playwright-downloaded browser): the asset tree renders, a
tag's trend moves when samples are ingested, an alarm whose threshold the samples cross shows
in the header banner and on the alarms page, and an operator acknowledges it. Screenshots (in
English and Simplified Chinese) land in the test's temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_console import Session, _server_command, _shot, browser_session
from tests.console.htmltext import ZH_ALLOWED_WORDS, foreign_words
from tests.services import free_port

__all__ = ["browser_session"]  # the fixture, imported for use here

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "areas-Test-pass-42"
OPERATOR = ("zhang.op", "Operator-pass-8")
LIMIT = 8.0


class Platform:
    """A running ``gongyun serve`` (restartable on the same port and data) and an admin API client."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "GONGYUN_DATA_DIR": str(tmp_path / "data"),
            "GONGYUN_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GONGYUN_LOG_FORMAT": "json",
        }
        self.env.pop("GONGYUN_CONFIG", None)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.api = httpx.Client(base_url=self.base, timeout=15)

    def start(self) -> None:
        """Start the server and wait until it answers, then sign the API client in."""
        self.starts += 1
        log_path = self.tmp_path / f"serve-{self.starts}.log"
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                _server_command(self.port),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp_path,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer /healthz within 60 s")
            time.sleep(0.2)
        r = self.api.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        self.api.headers["Authorization"] = "Bearer " + r.json()["access_token"]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """``gongyun serve`` on a free port with a fresh data directory (platform data running)."""
    server = Platform(tmp_path)
    try:
        server.start()
        alarms = server.api.get("/api/v1/alarms")
        assert alarms.status_code == 200, f"platform data is not running in `gongyun serve`: {alarms.text}"
        yield server
    finally:
        server.api.close()
        server.stop()


# -- seeding through the API ------------------------------------------------------------------------
def _post(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(path, json=body)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    result: dict[str, Any] = r.json()
    return result


def _ingest(api: httpx.Client, samples: list[dict[str, Any]]) -> None:
    """Ingest a batch; every sample must be accepted."""
    r = api.post("/api/v1/telemetry/ingest", json={"samples": samples})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(samples), "rejected": []}, r.text


def _samples(tag: str, values: list[float], end: datetime, step_s: float = 1.0) -> list[dict[str, Any]]:
    n = len(values)
    return [
        {"tag": tag, "value": v, "ts": (end - timedelta(seconds=step_s * (n - 1 - i))).isoformat()}
        for i, v in enumerate(values)
    ]


def _seed(api: httpx.Client) -> dict[str, Any]:
    enterprise = _post(api, "/api/v1/assets", {"level": "enterprise", "name": "华东机械"})
    site = _post(api, "/api/v1/assets", {"level": "site", "name": "Plant 1", "parent_id": enterprise["id"]})
    area = _post(api, "/api/v1/assets", {"level": "area", "name": "Pumps", "parent_id": site["id"]})
    line = _post(api, "/api/v1/assets", {"level": "line", "name": "Line 3", "parent_id": area["id"]})
    pump = _post(api, "/api/v1/assets", {"level": "equipment", "name": "P-101", "parent_id": line["id"]})
    device = _post(
        api,
        "/api/v1/assets/devices",
        {"name": "pump1", "protocol": "modbus", "address": "127.0.0.1:5020", "equipment_id": pump["id"]},
    )
    tags = f"/api/v1/assets/devices/{device['id']}/tags"
    _post(api, tags, {"name": "pressure", "unit": "bar", "low": 0, "high": 100})
    _post(api, tags, {"name": "flow", "unit": "m^3/h"})
    rule = _post(
        api,
        "/api/v1/alarms/rules",
        {
            "kind": "threshold",
            "name": "High pressure",
            "tag": "pump1/pressure",
            "limit": LIMIT,
            "priority": "high",
        },
    )
    now = datetime.now(UTC)
    _ingest(
        api, _samples("pump1/pressure", [5 + (i % 7) * 0.3 for i in range(120)], now - timedelta(seconds=2))
    )
    _ingest(api, _samples("pump1/flow", [40.0 + (i % 11) for i in range(120)], now - timedelta(seconds=2)))
    _post(api, "/api/v1/users", {"username": OPERATOR[0], "password": OPERATOR[1], "role": "operator"})
    return {"rule": rule, "pump": pump, "device": device}


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


def _int_attr(page: Any, selector: str, name: str) -> int:
    return int(page.locator(selector).get_attribute(name) or "0")


def _chinese_only(page: Any, selector: str, data: set[str]) -> set[str]:
    text = page.locator(selector).inner_text()
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return foreign_words(text, ZH_ALLOWED_WORDS)


def test_areas_end_to_end(platform: Platform, browser_session: Session, tmp_path: Path) -> None:
    page, base, api = browser_session.page, platform.base, platform.api
    seeded = _seed(api)
    _login(page, base, "admin", ADMIN_PASSWORD, "/overview")

    # Overview: KPI tiles count what was seeded; the live trend shows the tags with data.
    page.wait_for_selector("#kpi-assets:not([hidden])")
    assert page.locator("#kpi-assets").get_attribute("data-value") == "5"
    assert page.locator("#kpi-devices").get_attribute("data-value") == "1"
    assert page.locator("#kpi-tags").get_attribute("data-value") == "2"
    page.wait_for_selector("#ov-trends:not([hidden]) .u-legend")
    assert page.locator("#ov-trend .trend-mini").count() == 2
    assert _int_attr(page, "#ov-trend .trend-mini[data-tag='pump1/pressure']", "data-points") > 10
    _shot(page, tmp_path, "01-overview-en")

    # Assets: the tree renders; selecting the equipment shows its device and tags.
    page.click("[data-nav=assets]")
    _ready(page)
    tree = page.locator("#asset-tree")
    for name in ("华东机械", "Plant 1", "Pumps", "Line 3", "P-101", "pump1"):
        assert name in tree.inner_text()
    page.click(f".tree-node[data-node='{seeded['pump']['id']}']")
    page.wait_for_selector("button[data-tag='pump1/pressure']")
    assert "Equipment" in page.locator("#asset-level").inner_text()
    page.click("button[data-tag='pump1/pressure']")
    page.wait_for_selector("#trend-live[data-state=open]")
    page.wait_for_function("() => Number(document.getElementById('trend').dataset.points) > 10")
    before = _int_attr(page, "#trend", "data-updates")

    # New samples move the trend while we watch.
    _ingest(api, _samples("pump1/pressure", [6.1, 6.4, 6.2], datetime.now(UTC)))
    page.wait_for_function(
        "n => Number(document.getElementById('trend').dataset.updates) >= n + 3", arg=before
    )
    page.wait_for_function("() => document.getElementById('trend-last').textContent === '6.2 bar'")
    _shot(page, tmp_path, "02-assets-trend-en")

    # Cleaning the shown range draws the cleaned series and shows the report.
    page.click("#trend-clean")
    page.wait_for_selector("#clean-facts")
    assert "was cleaned" in page.locator("#gy-flash").inner_text()
    report = page.locator("#clean-report").inner_text()
    assert "Points read" in report and "null" not in report
    # Each run adds a bar to the history chart drawn above the latest report.
    page.wait_for_selector("#clean-history:not([hidden]) #clean-history-chart[data-runs='1'] canvas")
    assert page.locator("#clean-history-title").inner_text() == "Changes per cleaning run (last 1)"
    page.click("#trend-clean")
    page.wait_for_selector("#clean-history-chart[data-runs='2'] canvas")
    assert page.locator("#clean-history-chart .u-legend").count() == 1
    _shot(page, tmp_path, "02b-assets-clean-history-en")
    page.wait_for_selector("#trend-live[data-state=open]")

    # The server goes away and comes back: the live streams reconnect by themselves.
    platform.stop()
    page.wait_for_selector("#trend-live[data-state=retrying]")
    platform.start()
    _ingest(api, _samples("pump1/pressure", [7.7], datetime.now(UTC)))  # likely before the stream is back
    page.wait_for_selector("#trend-live[data-state=open]", timeout=45_000)
    page.wait_for_function("() => document.getElementById('trend').dataset.last === '7.7'")
    before = _int_attr(page, "#trend", "data-updates")
    _ingest(api, _samples("pump1/pressure", [6.6, 6.3], datetime.now(UTC)))
    page.wait_for_function(
        "n => Number(document.getElementById('trend').dataset.updates) >= n + 2", arg=before
    )

    # A sample above the limit raises the alarm: the banner counts it on every page.
    banner = page.locator("#gy-alarm-banner")
    assert banner.get_attribute("data-count") == "0"
    _ingest(api, _samples("pump1/pressure", [LIMIT + 1.5], datetime.now(UTC)))
    page.wait_for_selector("#gy-alarm-banner[data-count='1']")
    assert "1 unacknowledged" in banner.inner_text()
    assert page.locator("#asset-devices [data-last='pump1/pressure']").inner_text() == "9.5"
    _shot(page, tmp_path, "03-assets-alarm-banner-en")

    # The operator signs in, sees it on the alarms page and acknowledges it.
    page.click("#gy-logout")
    page.wait_for_url("**/login?reason=signed_out")
    _login(page, base, *OPERATOR, "/alarms")
    rule_id = seeded["rule"]["id"]
    row = page.locator(f"#alarms-table tr[data-rule='{rule_id}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "unack_active"
    assert "Unacknowledged, active" in row.inner_text()
    assert "High" in row.inner_text() and "pump1/pressure" in row.inner_text()
    page.wait_for_selector("#gy-alarm-banner[data-count='1']")
    _shot(page, tmp_path, "04-alarms-unack-en")
    row.locator("button[data-action=ack]").click()
    page.wait_for_selector(f"#alarms-table tr[data-rule='{rule_id}'][data-state=ack_active]")
    page.wait_for_selector("#gy-alarm-banner[data-count='0']")
    assert "Alarm High pressure was acknowledged." in page.locator("#gy-flash").inner_text()
    assert OPERATOR[0] in page.locator("#history-table").inner_text()
    state = next(a for a in api.get("/api/v1/alarms").json() if a["rule_id"] == rule_id)["state"]
    assert state == "ack_active"
    _shot(page, tmp_path, "05-alarms-acked-en")

    # Back below the limit: the live stream brings the alarm back to normal on the page.
    _ingest(api, _samples("pump1/pressure", [5.0], datetime.now(UTC)))
    page.wait_for_selector("#alarms-table .empty-row")

    # Shelve it for an hour and bring it back (all alarms shown, not only the active ones).
    page.uncheck("#alarms-active-only")
    page.wait_for_selector(f"#alarms-table tr[data-rule='{rule_id}'][data-state=normal]")
    page.click(f"#alarms-table tr[data-rule='{rule_id}'] button[data-action=shelve]")
    page.wait_for_selector(f"#alarms-table tr[data-rule='{rule_id}'][data-state=shelved]")
    assert "Shelved until" in page.locator(f"#alarms-table tr[data-rule='{rule_id}']").inner_text()
    page.click(f"#alarms-table tr[data-rule='{rule_id}'] button[data-action=unshelve]")
    page.wait_for_selector(f"#alarms-table tr[data-rule='{rule_id}'][data-state=normal]")
    page.check("#alarms-active-only")
    page.wait_for_selector("#alarms-table .empty-row")

    # In Chinese: the history and the banner read in Chinese.
    page.click(".lang-switch a[data-lang='zh-CN']")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    _ready(page)
    assert page.locator("h1").inner_text() == "告警"
    assert "已确认，激活" in page.locator("#history-table").inner_text()
    assert page.locator("#gy-alarm-count").inner_text() == "0 条未确认"
    data = {"High pressure", OPERATOR[0], "pump1/pressure", "pump1"}
    assert _chinese_only(page, "#main", data) == set()
    _shot(page, tmp_path, "06-alarms-zh")

    # Devices (in Chinese): last values, a per-tag trend, and no gateway yet (or its status).
    page.click("[data-nav=devices]")
    _ready(page)
    page.wait_for_function(
        "() => document.querySelector(\"[data-last='pump1/pressure']\").textContent === '5 bar'"
    )
    page.click("button[data-tag='pump1/flow']")
    page.wait_for_function("() => Number(document.getElementById('device-trend').dataset.points) > 10")
    section = page.locator("#devices-connectivity")
    if section.get_attribute("data-gateway") == "absent":
        assert page.locator("#gateway-absent").inner_text().startswith("尚未连接网关")
    seeded_words = {
        "pump1/flow",
        "pump1",
        "pressure",
        "flow",
        "127.0.0.1:5020",
        "P-101",
        seeded["device"]["identifier"],
        "bar",
    }
    assert _chinese_only(page, "#devices-list", seeded_words | {"m^3/h"}) == set()
    _shot(page, tmp_path, "07-devices-zh")

    # Assets trend in Chinese.
    page.click("[data-nav=assets]")
    _ready(page)
    page.click(f".tree-node[data-node='{seeded['pump']['id']}']")
    page.click("button[data-tag='pump1/pressure']")
    page.wait_for_selector("#trend-live[data-state=open]")
    assert page.locator("#trend-card h3").inner_text() == "清洗报告"
    page.wait_for_selector("#clean-history-chart[data-runs='2'] canvas")
    assert page.locator("#clean-history-title").inner_text() == "每次清洗的修改数（最近 2 次）"
    _shot(page, tmp_path, "08-assets-trend-zh")

    assert browser_session.script_errors == []
    expected_misses = {
        ("GET", "/api/v1/telemetry/clean/report", 404),  # no cleaning run yet
        ("GET", "/api/v1/devices/status", 404),  # no gateway integration
        ("GET", "/api/v1/gateways", 404),
    }
    assert set(browser_session.http_failures) <= expected_misses


def test_identifiers_page(platform: Platform, browser_session: Session, tmp_path: Path) -> None:
    page, base = browser_session.page, platform.base
    _login(page, base, "admin", ADMIN_PASSWORD, "/identifiers")
    page.wait_for_selector("#prefix-table .empty-row, #prefix-table table")

    # File a prefix; it is listed as submitted.
    page.fill("#prefix-name", "88.100.7")
    page.click("#prefix-form button[type=submit]")
    page.wait_for_selector("#prefix-table [data-status=submitted]")
    assert "88.100.7" in page.locator("#prefix-table").inner_text()

    # Registering under a prefix that is not active yet is refused with a reason.
    page.fill("#register-handle", "88.100.7/EARLY")
    page.fill("#register-values .value-row:nth-child(1) [name=data]", "https://example.com/early")
    page.click("#register-submit")
    page.wait_for_selector("#gy-flash .alert-error")
    assert "file it and have the filing activated first" in page.locator("#gy-flash").inner_text()

    # The filing workflow: verify, then activate.
    page.click("#prefix-table button[data-move=verified]")
    page.wait_for_selector("#prefix-table [data-status=verified]")
    page.click("#prefix-table button[data-move=active]")
    page.wait_for_selector("#prefix-table [data-status=active]")
    assert page.locator("#prefix-table button[data-move=suspended]").count() == 1

    # Register a record with two values, one of them not public; look it up.
    page.fill("#register-handle", "88.100.7/PUMP-0001")
    page.fill("#register-values .value-row:nth-child(1) [name=data]", "https://example.com/p/1")
    page.click("#register-add")
    second = page.locator("#register-values .value-row:nth-child(2)")
    second.locator("[name=type]").fill("GY_SERIAL")
    second.locator("[name=data]").fill("SN-42")
    second.locator("[name=public]").uncheck()
    page.click("#register-submit")
    page.wait_for_selector("#record-handle")
    assert page.locator("#record-handle").inner_text() == "88.100.7/PUMP-0001"
    values = page.locator("#lookup-result tbody")
    assert "https://example.com/p/1" in values.inner_text() and "SN-42" in values.inner_text()
    serial_row = page.locator("#lookup-result tbody tr", has_text="SN-42")
    assert "Public read" not in serial_row.inner_text()
    assert "Admin read" in serial_row.inner_text()

    # An unknown identifier says so.
    page.fill("#lookup-handle", "88.100.7/NOPE")
    page.click("#lookup-form button[type=submit]")
    page.wait_for_selector("#lookup-result .alert")
    assert "No record for 88.100.7/NOPE." in page.locator("#lookup-result").inner_text()

    # A template: save the example, then an invalid one lists every problem.
    page.fill(
        "#template-json",
        '{"prefix": "88.100.7", "name": "pump", "items": [{"type": "URL", "required": true}]}',
    )
    page.click("#template-save")
    page.wait_for_selector("#template-table button[data-template='88.100.7/pump']")
    page.fill("#template-json", '{"prefix": "88.100.7", "name": "bad name!", "items": []}')
    page.click("#template-save")
    page.wait_for_selector("#template-errors li")
    assert page.locator("#template-errors li").count() >= 2
    _shot(page, tmp_path, "09-identifiers-en")

    # In Chinese: headings, filing status and value permissions are translated.
    page.click(".lang-switch a[data-lang='zh-CN']")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    _ready(page)
    page.wait_for_selector("#prefix-table [data-status=active]")
    assert page.locator("#prefix-table [data-status=active]").inner_text() == "已生效"
    assert page.locator("#id-templates h2").inner_text() == "元数据模板"
    page.fill("#lookup-handle", "88.100.7/PUMP-0001")
    page.click("#lookup-form button[type=submit]")
    page.wait_for_selector("#record-handle")
    assert "管理员可读" in page.locator("#lookup-result tbody tr", has_text="SN-42").inner_text()
    data = {
        "88.100.7/PUMP-0001",
        "https://example.com/p/1",
        "SN-42",
        "GY_SERIAL",
        "URL",
        "string",
        "88.100.7",
    }
    assert _chinese_only(page, "#id-lookup", data) == set()
    _shot(page, tmp_path, "10-identifiers-zh")

    assert browser_session.script_errors == []
    misses = {(m, p) for m, p, _ in browser_session.http_failures}
    assert misses <= {
        ("PUT", "/api/v1/identifiers/records/88.100.7/EARLY"),
        ("GET", "/api/v1/identifiers/records/88.100.7/NOPE"),
        ("POST", "/api/v1/identifiers/templates"),
    }
