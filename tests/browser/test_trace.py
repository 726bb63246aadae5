"""The trace pages in a real browser, in English and Simplified Chinese: a finished batch traced back
to its material lots as a graph; a label's product page; a recall of one material lot that shows
every affected batch. Screenshots land in the test's temporary directory. Seeded through the API
(not `gongyun demo`), and run by `make test-trace-browser` rather than `make test`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_apps import _ready, _switch
from tests.browser.test_areas import ADMIN_PASSWORD, _post, platform
from tests.browser.test_console import Session, _shot, browser_session

__all__ = ["browser_session", "platform"]  # the fixtures, imported for use here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("GONGYUN_TRACE_BROWSER") != "1", reason="run with make test-trace-browser"
    ),
]
API = "/api/v1/apps/trace"


def _seed(api: Any) -> dict[str, Any]:
    r = api.patch("/api/v1/apps/trace", json={"enabled": True})
    assert r.status_code == 200, r.text
    _post(
        api,
        f"{API}/templates",
        {
            "name": "lots",
            "kind": "material_lot",
            "scheme": "gtin_lot",
            "gtin": "09506000134352",
            "pattern": "RESIN-{seq:03d}",
        },
    )
    _post(
        api,
        f"{API}/templates",
        {"name": "batches", "kind": "batch", "scheme": "own", "pattern": "PK-{seq:04d}"},
    )
    _post(
        api,
        f"{API}/templates",
        {
            "name": "units",
            "kind": "serial",
            "scheme": "gtin_serial",
            "gtin": "04012345000016",
            "pattern": "BT{seq:05d}",
        },
    )
    lots = _post(api, f"{API}/mint", {"template": "lots", "count": 3})["ids"]
    batches = _post(api, f"{API}/mint", {"template": "batches", "count": 3, "machine": "packer"})["ids"]
    units = _post(api, f"{API}/mint", {"template": "units", "count": 12})["ids"]
    for parents, children in (
        (lots[:2], batches[:1]),
        (lots[1:], batches[1:2]),
        (lots[2:], batches[2:]),
        (batches[:1], units[:4]),
        (batches[1:2], units[4:8]),
        (batches[2:], units[8:]),
    ):
        _post(
            api,
            f"{API}/links",
            {
                "parents": [str(p) for p in parents],
                "children": [str(c) for c in children],
                "machine": "packer",
            },
        )
    return {"lots": lots, "batches": batches, "units": units}


def test_trace_graph_product_page_and_recall(platform: Any, browser_session: Session, tmp_path: Path) -> None:
    api, page, base = platform.api, browser_session.page, platform.base
    seeded = _seed(api)
    unit = api.get(f"{API}/items/{seeded['units'][0]}").json()
    page.goto(base + f"/login?next=/apps/trace/main%23item={seeded['batches'][0]}%26direction=backward")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/apps/trace/main*")
    _ready(page)
    if page.locator("[data-testid=trace-node]").count() == 0:  # the hash may not survive the login redirect
        page.fill("[data-testid=trace-ref]", str(seeded["batches"][0]))
        page.click("[data-testid=trace-run]")
    page.wait_for_selector("[data-testid=trace-node][data-kind=material_lot]")
    assert page.locator("[data-testid=trace-node][data-kind=material_lot]").count() == 2
    _shot(page, tmp_path, "trace-01-graph-en")

    # the label's URL leads to the product page
    label = api.get(f"{API}/labels/{unit['id']}")
    assert label.status_code == 200 and label.headers["x-digital-link"].endswith(unit["key"])
    page.goto(base + f"/apps/trace/product?key={unit['key']}")
    _ready(page)
    page.wait_for_selector("[data-testid=product-title]")
    assert unit["key"] in page.locator("[data-testid=product-title]").inner_text()
    _shot(page, tmp_path, "trace-02-product-en")

    # a recall of one material lot from the page shows every affected batch
    page.goto(base + "/apps/trace/main")
    _ready(page)
    page.fill("[data-testid=recall-item]", str(seeded["lots"][1]))
    page.fill("[data-testid=recall-name]", "resin RESIN-002")
    page.click("[data-testid=recall-start]")
    page.wait_for_selector("[data-testid=recall-campaign]")
    page.locator("[data-testid=recall-campaign] summary").click()
    batches = page.locator("[data-testid=recall-batches] li").all_inner_texts()
    assert sorted(batches) == ["own:PK-0001", "own:PK-0002"]
    _shot(page, tmp_path, "trace-03-recall-en")
    _switch(page, "zh-CN")
    page.wait_for_selector("[data-testid=recall-campaign]")
    assert "召回活动" in page.locator("#gy-app-root").inner_text()
    _shot(page, tmp_path, "trace-04-recall-zh")
    page.fill("[data-testid=trace-ref]", str(seeded["batches"][0]))
    page.click("[data-testid=trace-run]")
    page.wait_for_selector("[data-testid=trace-node][data-status=frozen]")
    _shot(page, tmp_path, "trace-05-graph-zh")
    assert browser_session.script_errors == []
