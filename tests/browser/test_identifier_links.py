"""The console pages identifier records point to (``URL`` values) open on their object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.test_areas import ADMIN_PASSWORD, Platform, _login, _post, platform
from tests.browser.test_console import Session, _shot, browser_session

__all__ = ["browser_session", "platform"]  # the fixtures, imported for use here


def _url(platform: Platform, identifier: str) -> str:
    r = platform.api.get(f"/api/v1/identifiers/records/{identifier}")
    assert r.status_code == 200, r.text
    values: list[dict[str, Any]] = r.json()["values"]
    url = next(v["data"]["value"] for v in values if v["type"] == "URL")
    assert isinstance(url, str) and url.startswith(platform.base + "/")
    return url


def test_record_urls_open_the_object(platform: Platform, browser_session: Session, tmp_path: Path) -> None:
    page, api = browser_session.page, platform.api
    parent = None
    for level in ("enterprise", "site", "area", "line", "equipment"):
        node = _post(api, "/api/v1/assets", {"level": level, "name": f"N-{level}", "parent_id": parent})
        parent = node["id"]
    other = _post(
        api, "/api/v1/assets", {"level": "equipment", "name": "Other", "parent_id": node["parent_id"]}
    )
    device = _post(api, "/api/v1/assets/devices", {"name": "press1", "equipment_id": node["id"]})
    _post(api, "/api/v1/assets/devices", {"name": "press0"})
    tag = _post(api, f"/api/v1/assets/devices/{device['id']}/tags", {"name": "force", "unit": "kN"})
    _login(page, platform.base, "admin", ADMIN_PASSWORD, "/overview")

    page.goto(_url(platform, other["identifier"]))
    page.wait_for_selector(f".tree-node.active[data-node='{other['id']}']")
    assert page.locator("#asset-identifier").inner_text() == other["identifier"]

    page.goto(_url(platform, tag["identifier"]))  # a tag opens on its equipment
    page.wait_for_selector(f".tree-node.active[data-node='{node['id']}']")
    page.wait_for_selector("button[data-tag='press1/force']")
    _shot(page, tmp_path, "identifier-link-tag")

    page.goto(_url(platform, device["identifier"]))
    page.wait_for_selector(f".device-block.linked[data-device-id='{device['id']}']")
    assert page.locator(".device-block.linked").count() == 1
    assert browser_session.script_errors == []
