"""``gongyun demo`` with the trace app in a real browser, in English and Simplified Chinese.

The demo's packaging line reports the batch it fills and the film lot loaded; the trace app makes
each finished batch an identifier linked to the lots it consumed (from the edge, no seeding here).
A batch label's QR URL, resolved by an enterprise identifier node serving the demo's records,
opens the product page; a finished batch is traced back to its material lots as a graph; a recall
of one material lot shows every batch made from it. Screenshots land in the test's temporary
directory. About two minutes (a batch takes 15 s), so run by `make test-trace-browser` only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.test_apps import _switch
from tests.browser.test_console import Session, _shot, browser_session
from tests.browser.test_demo import ADMIN_PASSWORD, DemoServer, _login, _until, demo
from tests.idres.nodeproc import NodeProcess

__all__ = ["browser_session", "demo"]  # the fixtures, imported for use here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("GONGYUN_TRACE_BROWSER") != "1", reason="run with make test-trace-browser"
    ),
]
API = "/api/v1/apps/trace"


def _lots_of(api: Any, batch: dict[str, Any]) -> set[str]:
    back = api.get(f"{API}/trace/backward/{batch['id']}").json()
    return {n["key"] for n in back["nodes"] if n["kind"] == "material_lot"}


def test_demo_batches_label_trace_and_recall(
    demo: DemoServer, browser_session: Session, tmp_path: Path
) -> None:
    api, page, base = demo.api, browser_session.page, demo.base
    settings = api.get("/api/v1/apps/trace").json()
    assert settings["state"] == "enabled", settings  # the demo enabled it with its packaging line

    # wait until the first film lot is used up: a finished batch made from a later lot only
    def finished() -> dict[str, Any]:
        batches = api.get(f"{API}/items", params={"kind": "batch"}).json()
        lots = sorted(i["key"] for i in api.get(f"{API}/items", params={"kind": "material_lot"}).json())
        made = {b["key"]: _lots_of(api, b) for b in batches}
        return {"batches": batches, "lots": lots, "made": made}

    state = _until(
        finished,
        lambda s: s["lots"] and any(s["lots"][0] not in used and used for used in s["made"].values()),
        240,
        "a batch made after the first film lot",
    )
    first_lot = state["lots"][0]
    affected = sorted(k for k, used in state["made"].items() if first_lot in used)
    assert affected and len(affected) < len(state["made"])
    batch = next(b for b in state["batches"] if b["key"] == affected[-1])  # one that may hold two lots

    # the batch's label: its QR URL resolves on an enterprise node serving the demo's records
    node = NodeProcess(
        "enterprise",
        tmp_path,
        "enode",
        "--db",
        f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'gongyun.db').resolve()}",
        "--prefix",
        "88.100",
        "--tenant",
        "platform",
        "--platform-auth",
        "--all-tenants",
        db=False,
        env={"GONGYUN_DATA_DIR": str(tmp_path / "data")},
    )
    try:
        node.wait_ready(120)
        r = api.patch(
            "/api/v1/apps/trace",
            json={"settings": {**settings["installation"]["settings"], "resolver_url": node.url}},
        )
        assert r.status_code == 200, r.text
        label = api.get(f"{API}/labels/{batch['id']}")
        assert label.status_code == 200 and label.headers["content-type"].startswith("image/svg")
        uri = label.headers["x-digital-link"]
        assert uri == node.url + batch["key"]
        _login(page, base, "admin", ADMIN_PASSWORD, "/apps/trace/main")
        opened = page.goto(uri)  # the node answers 307 to the record's URL: the product page
        assert opened is not None and opened.request.redirected_from is not None, page.url
        assert opened.request.redirected_from.url == uri
        assert page.url.startswith(f"{base}/apps/trace/product?key="), page.url
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("[data-testid=product-title]")
        assert batch["key"] in page.locator("[data-testid=product-title]").inner_text()
        page.wait_for_selector("[data-testid=product-process]")  # the telemetry of its window
        assert "packaging-line/fill_weight" in page.locator("[data-testid=product-process]").inner_text()
        _shot(page, tmp_path, "trace-01-product-en")
    finally:
        node.stop()

    # the finished batch traced back to its material lots, as a graph
    page.goto(f"{base}/apps/trace/main#item={batch['id']}&direction=backward")
    page.wait_for_selector("body[data-ready=true]")
    if page.locator("[data-testid=trace-node]").count() == 0:
        page.fill("[data-testid=trace-ref]", str(batch["id"]))
        page.click("[data-testid=trace-run]")
    page.wait_for_selector("[data-testid=trace-node][data-kind=material_lot]")
    drawn = page.locator("[data-testid=trace-node][data-kind=material_lot]").count()
    assert drawn == len(state["made"][batch["key"]]) >= 1
    _shot(page, tmp_path, "trace-02-graph-en")

    # a recall of the first film lot, started from the page, lists every batch made from it
    page.fill("[data-testid=recall-item]", first_lot)
    page.fill("[data-testid=recall-name]", "film lot " + first_lot.rsplit("/", 1)[-1])
    page.click("[data-testid=recall-start]")
    page.wait_for_selector("[data-testid=recall-campaign]")
    page.locator("[data-testid=recall-campaign] summary").first.click()
    listed = sorted(page.locator("[data-testid=recall-batches] li").all_inner_texts())
    assert listed == affected
    # its progress in percent: no other tenant or partner received those batches, so it is complete
    bar = page.locator("[data-testid=recall-progress]").first
    assert bar.get_attribute("data-percent") == "100" and "100 %" in bar.inner_text()
    _shot(page, tmp_path, "trace-03-recall-en")
    _switch(page, "zh-CN")
    page.wait_for_selector("[data-testid=recall-campaign]")
    assert "召回活动" in page.locator("#gy-app-root").inner_text()
    assert "已完成" in page.locator("[data-testid=recall-progress]").first.inner_text()
    _shot(page, tmp_path, "trace-04-recall-zh")
    page.fill("[data-testid=trace-ref]", str(batch["id"]))
    page.click("[data-testid=trace-run]")
    page.wait_for_selector("[data-testid=trace-node][data-status=frozen]")
    _shot(page, tmp_path, "trace-05-graph-zh")
    page.goto(f"{base}/apps/trace/product?key={quote(batch['key'], safe='/')}")
    page.wait_for_selector("[data-testid=product-status]")
    assert page.locator("[data-testid=product-status]").inner_text() == "frozen"
    _shot(page, tmp_path, "trace-06-product-zh")
    assert browser_session.script_errors == []
