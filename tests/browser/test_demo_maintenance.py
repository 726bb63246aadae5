"""``gongyun demo`` watches its pump with the maintenance app, seen in a real browser.

The demo itself enables the app, places the pump in its asset tree and learns the detector's
baseline once the pump runs warm. The test injects bearing wear through the demo's fault injection:
the anomaly score rises, the health index falls (on the app's pages and on the asset tree, rolled
up to line, area and site), the RUL estimate converges toward the simulator's own time to failure
(the error is printed), the likely fault is named, an alarm is raised and work orders open; an
operator closes one from the console. Screenshots in English and 简体中文 land in tmp_path.
About fifteen minutes of real time (a 300 s baseline; the pump wears out in about 500 s):
`make test-demo-maintenance`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_console import Session, _shot, browser_session
from tests.browser.test_demo import (
    ADMIN_PASSWORD,
    DemoServer,
    _demo_command,
    _find,
    _login,
    _post,
    _ready,
    _stop,
    _token,
    _until,
)
from tests.services import free_port

__all__ = ["browser_session"]  # the fixture, imported for use here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(
        not os.environ.get("GONGYUN_DEMO_MAINTENANCE"), reason="make test-demo-maintenance runs it"
    ),
]
BASE = "/api/v1/apps/maintenance"
PUMP = "pump-station"
OPERATOR = ("li.op", "Operator-pass-9")
RATE = 0.0008  # bearing wear per second: the pump trips about 500 s later


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    """``gongyun demo`` on a free port (given 3 minutes to start: OPC UA's address space is slow to load
    on a busy machine); always stopped afterwards."""
    port = free_port()
    env = {**os.environ, "GONGYUN_DATA_DIR": str(tmp_path / "data"), "GONGYUN_ADMIN_PASSWORD": ADMIN_PASSWORD}
    env.pop("GONGYUN_CONFIG", None)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _demo_command(port), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    api = httpx.Client(base_url=base, timeout=30)
    try:
        _until(lambda: proc.poll() is not None or _healthy(base), bool, 180, "gongyun demo answering")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        api.headers["Authorization"] = "Bearer " + _token(api, "admin", ADMIN_PASSWORD)
        yield DemoServer(base, api, log_path)
    finally:
        api.close()
        _stop(proc)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _equipment(api: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"{BASE}/equipment/{PUMP}").json()["equipment"]
    return found


def _pump(api: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in api.get("/api/v1/demo/machines").json() if m["machine"] == "pump")
    return found


def _wear_to_failure(api: httpx.Client) -> list[tuple[float, dict[str, Any]]]:
    """Inject bearing wear and follow the app's figures beside the simulator's true time to failure."""
    fault = _post(api, "/api/v1/demo/faults", {"machine": "pump", "fault": "bearing_wear", "rate": RATE})
    assert fault["status"] == "injected"
    track: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        ttf = _pump(api)["time_to_failure_s"]
        eq = _equipment(api)
        track.append((ttf, eq))
        if ttf is not None and ttf <= 40:
            return track
        time.sleep(10)
    raise AssertionError(f"the pump did not approach failure within 900 s: {track[-1]}")


def test_demo_pump_bearing_wear_to_closed_work_order(
    demo: DemoServer, browser_session: Session, tmp_path: Path
) -> None:
    api, page, base = demo.api, browser_session.page, demo.base
    _post(api, "/api/v1/users", {"username": OPERATOR[0], "password": OPERATOR[1], "role": "operator"})
    app = api.get("/api/v1/apps/maintenance").json()
    assert app["state"] == "enabled", app  # the demo enabled it
    models = _until(
        lambda: api.get(f"{BASE}/models", params={"kind": "anomaly"}).json(),
        lambda ms: any(m["equipment"] == PUMP and m["active"] for m in ms),
        420,
        "the demo learning the pump's baseline",
    )
    assert models[0]["meta"]["baseline"]["points"] >= 90, models[0]["meta"]
    healthy = _until(
        lambda: _equipment(api), lambda e: (e["health"] or 0) > 70, 90, "the healthy pump scored"
    )
    assert healthy["path"] == "Virtual factory/Utilities/Pump station", healthy
    assert healthy["fault"] is None and healthy["rul"] is None, healthy

    track = _wear_to_failure(api)

    print("\ntrue time to failure (s) | score | health | RUL estimate [10-90 %] | error | likely fault")
    errors = []
    for ttf, eq in track:
        rul = eq["rul"]
        err = rul - ttf if rul is not None and ttf is not None else None
        if err is not None:
            errors.append(err)
        shown = f"{rul:7.1f} [{eq['rul_low']:.0f}-{eq['rul_high']:.0f}]" if rul is not None else "      —"
        print(
            f"{ttf:7.0f} | {eq['score']:6.2f} | {eq['health']:5.1f} | {shown} | "
            f"{'' if err is None else f'{err:+.1f}'} | {eq['fault'] or '—'}"
        )
    last = track[-1][1]
    assert last["score"] > 1 and last["health"] < 40, last
    assert last["fault"] == "bearing_wear", last
    assert errors, "no RUL estimate"
    # the estimate follows the truth down: the last error within about a fifth of the wear-out time,
    # and the estimate fell by at least half as much as the true time to failure
    estimated = [(ttf, eq["rul"]) for ttf, eq in track if eq["rul"] is not None]
    (ttf0, rul0), (ttf1, rul1) = estimated[0], estimated[-1]
    assert abs(errors[-1]) < 100 and rul0 - rul1 >= 0.5 * (ttf0 - ttf1), estimated
    alarms = _until(
        lambda: api.get("/api/v1/alarms", params={"active": True}).json(),
        lambda a: any(x["name"] == f"{PUMP} health low" for x in a),
        30,
        "the health alarm",
    )
    assert next(x for x in alarms if x["name"] == f"{PUMP} health low")["state"] == "unack_active"
    orders = _until(
        lambda: api.get(f"{BASE}/work-orders", params={"equipment": PUMP}).json(),
        lambda os_: {o["reason"] for o in os_} >= {"anomaly", "rul"},
        30,
        "work orders for the anomaly and the RUL",
    )
    assert all(o["state"] == "open" for o in orders)

    # The asset tree shows the health, rolled up to line, area and site.
    _login(page, base, *OPERATOR, "/assets")
    tree = api.get("/api/v1/assets/tree").json()
    for name in ("Pump P-101", "Pump station", "Utilities", "Virtual factory"):
        node = _find(tree, name)
        badge = page.wait_for_selector(f"[data-health-of='{node['id']}'][data-health]", timeout=30_000)
        assert float(badge.get_attribute("data-health") or 100) < 40, name
    _shot(page, tmp_path, "demo-maintenance-01-tree-en")
    page.goto(base + "/apps/maintenance/fleet")
    _ready(page)
    page.wait_for_selector("#gy-app-root table")
    _shot(page, tmp_path, "demo-maintenance-02-fleet-en")
    page.click(f"#gy-app-root a:text('{PUMP}')")
    page.wait_for_selector("#maint-fault")
    assert "bearing_wear" in page.inner_text("#maint-fault")
    page.wait_for_selector("svg.maint-chart")
    page.wait_for_selector("[data-alarm-state=unack_active]")
    _shot(page, tmp_path, "demo-maintenance-03-equipment-en")
    page.click(".lang-switch a[data-lang='zh-CN']")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    _ready(page)
    page.wait_for_selector("#maint-fault")
    assert "健康指数" in page.inner_text("#gy-app-root")
    _shot(page, tmp_path, "demo-maintenance-04-equipment-zh")

    # The operator takes the RUL work order and closes it with what was found.
    rul_order = next(o for o in orders if o["reason"] == "rul")
    page.goto(base + "/apps/maintenance/orders")
    _ready(page)
    row = page.locator("tr", has_text=rul_order["title"])
    row.locator("button[data-action='指派给我']").click()
    page.locator("tr", has_text=rul_order["title"]).locator("button[data-action='开始']").click()
    row = page.locator("tr", has_text=rul_order["title"])
    row.locator("input[name=notes]").fill("bearing outer race pitted, replaced")
    row.locator("input[name=label]").fill("bearing_wear")
    row.locator("button[data-action='关闭']").click()
    page.wait_for_selector("[data-state=done]")
    _shot(page, tmp_path, "demo-maintenance-05-orders-zh")
    page.goto(base + "/assets")
    _ready(page)
    page.wait_for_selector("[data-health]")
    _shot(page, tmp_path, "demo-maintenance-06-tree-zh")
    operator = {"Authorization": "Bearer " + _token(api, *OPERATOR)}
    done = api.get(f"{BASE}/work-orders", params={"state": "done"}, headers=operator).json()
    assert [o["id"] for o in done] == [rul_order["id"]], done
    assert done[0]["notes"].startswith("bearing outer race") and done[0]["assignee"] == OPERATOR[0], done
    labels = api.get(f"{BASE}/labels").json()
    assert labels[0]["label"] == "bearing_wear", labels
    assert browser_session.script_errors == []
