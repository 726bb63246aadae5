"""The quality and OEE apps' console forms in a real browser, in English and 简体中文: inspection
entry for a lot (measurements, a defect count, a CSV upload) and the OEE setup (a machine's state
mapping, ideal cycle time and counters, then editing and removing one; a line's shift calendar
with breaks and planned downtime; the reason tree). Every refusal is shown inside the form that
caused it, with the API's problem details; what was saved is read back through the API.
Screenshots land in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_apps import _switch
from tests.browser.test_areas import ADMIN_PASSWORD, Platform
from tests.browser.test_console import Session, _shot, browser_session
from tests.browser.test_demo import _login

__all__ = ["browser_session"]  # the fixture, imported for use here

# Not part of `make test` (a server and a browser, about 40 s): `make test-demo-apps` runs it.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("GONGYUN_DEMO_APPS"), reason="make test-demo-apps runs it"),
]
INSPECT = "/apps/quality/inspections"
SETUP = "/apps/oee/setup"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Platform]:
    """``gongyun serve`` with the quality and OEE apps enabled for the admin's tenant."""
    platform = Platform(tmp_path)
    try:
        platform.start()
        for app in ("quality", "oee"):
            r = platform.api.patch(f"/api/v1/apps/{app}", json={"enabled": True})
            assert r.status_code == 200, r.text
        yield platform
    finally:
        platform.api.close()
        platform.stop()


def _refusal(page: Any, form: str, *words: str) -> str:
    """The refusal shown inside ``form`` once it names every word."""
    box = page.locator(f"{form} .form-problem")
    box.wait_for()
    page.wait_for_function(
        "([sel, words]) => { const b = document.querySelector(sel + ' .form-problem');"
        " return b && words.every((w) => b.textContent.includes(w)); }",
        arg=[form, list(words)],
    )
    return str(box.inner_text())


def _done(page: Any, form: str, text: str) -> None:
    page.wait_for_function(
        "([sel, text]) => { const b = document.querySelector(sel + ' .form-done');"
        " return b && b.textContent.includes(text); }",
        arg=[form, text],
    )


def _inspections(page: Any) -> None:
    page.fill("#qi-entry input[name=lot]", "L-7")
    page.fill("#qi-entry input[name=characteristic]", "length")
    page.fill("#qi-entry textarea[name=values]", "9.9 10.1, abc")
    page.click("#qi-entry button[type=submit]")
    _refusal(page, "#qi-entry", '"abc"')
    page.fill("#qi-entry textarea[name=values]", "9.9 10.1, 10.0")
    page.click("#qi-entry button[type=submit]")
    _done(page, "#qi-entry", "3")
    page.select_option("#qi-entry select[name=kind]", "attributes")
    page.fill("#qi-entry input[name=sample_size]", "10")
    page.fill("#qi-entry input[name=defects]", "11")
    page.click("#qi-entry button[type=submit]")
    _refusal(page, "#qi-entry", "count_exceeds_sample", "11 defectives in a sample of 10")
    page.fill("#qi-entry input[name=defects]", "2")
    page.click("#qi-entry button[type=submit]")
    _done(page, "#qi-entry", "1")
    bad = b"lot,characteristic,value\nL-8,length,10.2\nL-8,length,abc\n"
    page.set_input_files(
        "#qi-csv input[type=file]", {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad}
    )
    page.click("#qi-csv button[type=submit]")
    _refusal(page, "#qi-csv", "csv", "line 3")
    good = b"lot,characteristic,value\nL-8,length,10.2\nL-8,length,9.8\n"
    page.set_input_files(
        "#qi-csv input[type=file]", {"name": "good.csv", "mimeType": "text/csv", "buffer": good}
    )
    page.click("#qi-csv button[type=submit]")
    _done(page, "#qi-csv", "2")
    page.fill("#qi-lookup input[name=lot]", "L-7")
    page.click("#qi-lookup button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#qi-list tbody tr').length === 4")


def _machine(page: Any) -> None:
    f = "#oee-machine"
    page.fill(f"{f} input[name=name]", "Filler F-1")
    page.fill(f"{f} input[name=line]", "Line A")
    page.select_option(f"{f} select[name=mode]", "state_tag")
    page.fill(f"{f} input[name=tag]", "filler/state")
    page.fill(f"{f} textarea[name=codes]", "2 = idle\n3 = down_unplanned")
    page.fill(f"{f} input[name=good_tag]", "filler/good")
    page.click(f"{f} button[type=submit]")
    _refusal(page, f, "state_mapping", "no state code maps to running")
    page.fill(f"{f} textarea[name=codes]", "1 = running\n2 = idle\n3 = down_unplanned\n4 = setup")
    page.click(f"{f} button[type=submit]")
    _refusal(page, f, "ideal_cycle_s")  # the field errors of the request, named
    page.fill(f"{f} input[name=ideal_cycle_s]", "1.5")
    page.click(f"{f} button[type=submit]")
    _done(page, f, "Filler F-1")
    page.wait_for_selector("#oee-machines tr[data-machine='Filler F-1']")


def _calendar(page: Any) -> None:
    f = "#oee-calendar"
    page.fill(f"{f} input[name=line]", "Line A")
    page.click("#oee-cal-load")
    page.wait_for_selector(f"{f} .form-done")
    for name, start, end, breaks in (
        ("Early", "06:00", "14:00", "10:00-10:15 tea"),
        ("Late", "13:00", "22:00", ""),
    ):
        page.click(f"{f} button[data-add=oee-shift]")
        row = page.locator(f"{f} tr.oee-shift").last
        row.locator("input[name=name]").fill(name)
        row.locator("input[name=start]").fill(start)
        row.locator("input[name=end]").fill(end)
        row.locator("input[name=breaks]").fill(breaks)
    page.click(f"{f} button[type=submit]")
    _refusal(page, f, "overlapping_shifts")
    page.locator(f"{f} tr.oee-shift").last.locator("input[name=start]").fill("14:00")
    page.locator(f"{f} tr.oee-shift").last.locator("input[name=breaks]").fill("18:00-18:30 dinner")
    page.click(f"{f} button[data-add=oee-planned]")
    row = page.locator(f"{f} tr.oee-planned").last
    row.locator("input[name=start]").fill("2026-12-08T08:00")
    row.locator("input[name=end]").fill("2026-12-08T10:00")
    row.locator("input[name=reason]").fill("maintenance")
    page.click(f"{f} button[type=submit]")
    _done(page, f, "Saved")


def _reasons(page: Any) -> None:
    f = "#oee-reasons"
    for code, parent, en, zh, loss in (
        ("jam", "mech", "Film jam", "卡膜", "minor_stops"),
        ("elec", "", "Electrical", "电气", "breakdowns"),
    ):
        page.click(f"{f} button[data-add=oee-reason-row]")
        row = page.locator(f"{f} tr.oee-reason-row").last
        for name, value in (("code", code), ("parent", parent), ("name_en", en), ("name_zh", zh)):
            row.locator(f"input[name={name}]").fill(value)
        row.locator("select[name=loss]").select_option(loss)
    page.click(f"{f} button[type=submit]")
    _refusal(page, f, "reason_tree", "mech")
    page.click(f"{f} button[data-add=oee-reason-row]")
    row = page.locator(f"{f} tr.oee-reason-row").last
    for name, value in (("code", "mech"), ("name_en", "Mechanical"), ("name_zh", "机械")):
        row.locator(f"input[name={name}]").fill(value)
    page.click(f"{f} button[type=submit]")
    _done(page, f, "Saved")


def _edit_machine(page: Any) -> None:
    f = "#oee-machine"
    page.click("#oee-machines button[data-edit='Filler F-1']")
    page.wait_for_function(
        "() => document.querySelector('#oee-machine input[name=name]').value === 'Filler F-1'"
    )
    assert page.input_value(f"{f} textarea[name=codes]").splitlines()[0] == "1 = running"
    assert "Filler F-1" in page.inner_text("#oee-machine-heading")
    page.fill(f"{f} input[name=ideal_cycle_s]", "0")
    page.click(f"{f} button[type=submit]")
    _refusal(page, f, "ideal_cycle_s")  # checked as an addition is
    page.fill(f"{f} input[name=ideal_cycle_s]", "2")
    page.fill(f"{f} input[name=micro_stop_s]", "30")
    page.click(f"{f} button[type=submit]")
    _done(page, f, "Filler F-1 saved")
    row = "#oee-machines tr[data-machine='Filler F-1']"
    page.wait_for_function("(sel) => document.querySelector(sel).textContent.includes('30')", arg=row)
    assert page.inner_text("#oee-machine-heading") == "Add a machine"


def test_inspection_entry_and_oee_setup_forms_show_refusals_in_both_languages(
    server: Platform, browser_session: Session, tmp_path: Path
) -> None:
    page, base, api = browser_session.page, server.base, server.api
    _login(page, base, "admin", ADMIN_PASSWORD, INSPECT)
    page.wait_for_selector("#qi-entry")
    _inspections(page)
    _shot(page, tmp_path, "forms-01-inspections-en")
    rows = api.get("/api/v1/apps/quality/inspections", params={"lot": "L-7"}).json()
    assert sorted(r["value"] for r in rows if r["value"] is not None) == [9.9, 10.0, 10.1]
    assert [(r["sample_size"], r["defects"]) for r in rows if r["defects"] is not None] == [(10, 2)]
    assert len(api.get("/api/v1/apps/quality/inspections", params={"lot": "L-8"}).json()) == 2

    page.goto(base + SETUP)
    page.wait_for_selector("#oee-machine")
    _machine(page)
    _calendar(page)
    _reasons(page)
    _shot(page, tmp_path, "forms-02-oee-setup-en")
    [machine] = api.get("/api/v1/apps/oee/machines").json()
    assert machine["ideal_cycle_s"] == 1.5 and machine["mapping"]["codes"]["1"] == "running"
    _edit_machine(page)
    [edited] = api.get("/api/v1/apps/oee/machines").json()
    assert (edited["id"], edited["ideal_cycle_s"], edited["micro_stop_s"]) == (machine["id"], 2.0, 30.0)
    assert edited["mapping"] == machine["mapping"] and edited["good_tag"] == "filler/good"
    cal = api.get("/api/v1/apps/oee/calendars/Line A").json()
    assert [(s["name"], s["start"], s["end"]) for s in cal["shifts"]] == [
        ("Early", "06:00", "14:00"),
        ("Late", "14:00", "22:00"),
    ]
    assert cal["shifts"][1]["breaks"] == [{"start": "18:00", "end": "18:30", "reason": "dinner"}]
    assert len(cal["planned"]) == 1 and cal["planned"][0]["reason"] == "maintenance"
    assert {r["code"]: r["parent"] for r in api.get("/api/v1/apps/oee/reasons").json()} == {
        "elec": None,
        "jam": "mech",
        "mech": None,
    }

    _switch(page, "zh-CN")
    page.wait_for_selector("#oee-calendar")
    assert "班次日历" in page.inner_text("#gy-app-root")
    page.fill("#oee-calendar input[name=line]", "Line A")
    page.click("#oee-cal-load")  # the saved calendar comes back into the form
    page.wait_for_function("() => document.querySelectorAll('#oee-calendar tr.oee-shift').length === 2")
    page.fill("#oee-machine input[name=name]", "Filler F-2")
    page.fill("#oee-machine input[name=line]", "Line A")
    page.select_option("#oee-machine select[name=mode]", "running_flag")
    page.fill("#oee-machine input[name=tag]", "filler2/run")
    page.fill("#oee-machine input[name=ideal_cycle_s]", "-1")
    page.click("#oee-machine button[type=submit]")
    assert "被拒绝" in _refusal(page, "#oee-machine", "ideal_cycle_s")
    _shot(page, tmp_path, "forms-03-oee-setup-zh")
    page.fill("#oee-machine input[name=ideal_cycle_s]", "2")
    page.click("#oee-machine button[type=submit]")
    _done(page, "#oee-machine", "已添加设备 Filler F-2")
    remove = page.locator("#oee-machines button[data-remove='Filler F-2']")
    assert remove.inner_text() == "删除"
    remove.click()  # asks once more on the same button
    assert remove.inner_text() == "确认删除"
    remove.click()
    _done(page, "#oee-machines-feedback", "已删除设备 Filler F-2")
    page.wait_for_selector("#oee-machines tr[data-machine='Filler F-2']", state="detached")
    assert [m["name"] for m in api.get("/api/v1/apps/oee/machines").json()] == ["Filler F-1"]
    assert "编辑" in page.inner_text("#oee-machines")
    _shot(page, tmp_path, "forms-05-oee-machine-removed-zh")
    page.fill("#oee-machine input[name=name]", "Filler F-3")
    page.fill("#oee-machine input[name=line]", "Line A")
    page.select_option("#oee-machine select[name=mode]", "running_flag")
    page.fill("#oee-machine input[name=tag]", "filler3/run")
    page.fill("#oee-machine input[name=ideal_cycle_s]", "2")
    page.click("#oee-machine button[type=submit]")
    _done(page, "#oee-machine", "已添加设备 Filler F-3")
    retire = page.locator("#oee-machines button[data-retire='Filler F-3']")
    assert retire.inner_text() == "停用"
    retire.click()  # asks once more on the same button
    assert retire.inner_text() == "确认停用"
    retire.click()
    _done(page, "#oee-machines-feedback", "已停用设备 Filler F-3")
    page.wait_for_selector("#oee-machines tr[data-machine='Filler F-3']", state="detached")
    kept = api.get("/api/v1/apps/oee/machines", params={"retired": True}).json()
    assert {m["name"]: m["retired_at"] is not None for m in kept} == {"Filler F-1": False, "Filler F-3": True}
    page.goto(base + INSPECT)
    page.wait_for_selector("#qi-entry")
    assert "录入批次检验" in page.inner_text("#gy-app-root")
    page.fill("#qi-entry input[name=lot]", "L-9")
    page.fill("#qi-entry input[name=characteristic]", "length")
    page.click("#qi-entry button[type=submit]")
    _refusal(page, "#qi-entry", "请至少输入一个测量值")
    _shot(page, tmp_path, "forms-04-inspections-zh")
    assert browser_session.script_errors == []
