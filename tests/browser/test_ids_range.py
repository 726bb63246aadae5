"""A cyber-range scenario against ``gongyun demo``, watched on the Security page in a real browser.

The demo runs as a subprocess (simulators on loopback, gateway, platform); ``gongyun range run
--attach`` runs the Modbus scenario from 127.0.0.1's neighbour 127.0.0.66 with a sensor on ``lo``
that ships its events to the demo's API with an API key. Headless Debian Chromium, signed in as
the admin, watches the incident arrive on the situational-awareness page, opens it and moves it
to resolved. Screenshots (English and 简体中文) land in tmp_path. ``make test-ids-browser`` runs it
(about a minute; not in ``make test``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.test_console import Session, _shot, browser_session
from tests.browser.test_demo import DemoServer, _login, _post, _until, demo

__all__ = ["browser_session", "demo"]  # the fixtures, imported for use here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.environ.get("GONGYUN_IDS_BROWSER"), reason="make test-ids-browser runs it"),
]


def _ports(log: Path) -> tuple[int, int]:
    match = _until(
        lambda: re.search(r"virtual factory running: Modbus TCP :(\d+), OPC UA :(\d+)", log.read_text()),
        lambda m: m is not None,
        60,
        "the demo's simulators starting",
    )
    return int(match.group(1)), int(match.group(2))


def test_range_events_reach_the_security_page_and_an_incident_is_resolved(
    demo: DemoServer, browser_session: Session, tmp_path: Path
) -> None:
    page, base, api = browser_session.page, demo.base, demo.api
    modbus, opcua = _ports(demo.log)
    tenant = api.get("/api/v1/tenants").json()[0]["id"]
    key = _post(api, "/api/v1/apikeys", {"name": "ids-sensor", "role": "tenant-admin"})["key"]
    _post(api, "/api/v1/users", {"username": "li.sec", "password": "Security-pass-8", "role": "tenant-admin"})
    r = api.put(
        "/api/v1/ids/links",
        json={
            "endpoint": f"127.0.0.1:{modbus}",
            "device": "pump-station",
            "asset_path": "Virtual factory/Utilities/Pump P-101",
        },
    )
    assert r.status_code == 200, r.text
    report = tmp_path / "range.json"
    script = Path(sys.executable).with_name("gongyun")
    cmd = [
        str(script),
        "range",
        "run",
        "--attach",
        "--scenario",
        "modbus",
        "--learn",
        "6",
        "--quiet",
        "3",
        "--modbus-port",
        str(modbus),
        "--opcua-port",
        str(opcua),
        "--tenant",
        tenant,
        "--api",
        base,
        "--report",
        str(report),
    ]
    with (tmp_path / "range.log").open("wb") as out:
        rng = subprocess.Popen(
            cmd,
            env={**os.environ, "GONGYUN_API_KEY": key},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        _login(page, base, "li.sec", "Security-pass-8", "/security")
        page.wait_for_selector("#sec-incidents button[data-incident]", timeout=90_000)
        page.wait_for_selector("#sec-map-svg .flow-anomalous", timeout=30_000)
        assert rng.wait(120) in (0, 1)
    finally:
        if rng.poll() is None:
            rng.kill()
    result = json.loads(report.read_text())
    assert result["recall"] == 1.0, (tmp_path / "range.log").read_text()[-3000:]
    incidents = api.get("/api/v1/ids/incidents").json()
    assert incidents and all(i["src_host"] == "127.0.0.66" for i in incidents)
    time.sleep(3.5)  # one refresh of the page with every event in
    _shot(page, tmp_path, "ids-01-security-en")
    page.click("#sec-incidents button[data-incident]")
    page.wait_for_selector("#sec-incident:not([hidden]) #sec-incident-timeline li")
    assert "pump-station" in page.locator("#sec-incident-body").inner_text()
    page.click("#sec-incident-body button[data-move=investigating]")
    page.wait_for_selector("#sec-incident-title [data-state=investigating]")
    page.fill("#sec-note", "Attacker host isolated at the switch")
    page.click("#sec-incident-body button:has-text('Add note')")
    page.wait_for_selector("#sec-incident-timeline li:has-text('Attacker host isolated')")
    page.click("#sec-incident-body button[data-move=resolved]")
    page.wait_for_selector("#sec-incident-title [data-state=resolved]")
    _shot(page, tmp_path, "ids-02-incident-resolved-en")
    inc = api.get(f"/api/v1/ids/incidents/{incidents[-1]['id']}").json()
    resolved = [i for i in api.get("/api/v1/ids/incidents").json() if i["state"] == "resolved"]
    assert resolved and inc["timeline"]
    page.click("[data-lang=zh-CN]")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#sec-incidents button[data-incident]")
    assert "安全事件单" in page.locator("#sec-incidents-card").inner_text()
    _shot(page, tmp_path, "ids-03-security-zh")
    assert not browser_session.script_errors
