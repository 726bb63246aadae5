"""The Apps page in a real browser: a scaffolded, pip-installed app shows in the catalogue in
English and Simplified Chinese, a tenant administrator enables and configures it, and its own
console page runs inside the shell. Screenshots land in the test's temporary directory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.helpers import installed_app
from tests.browser.test_areas import ADMIN_PASSWORD, Platform
from tests.browser.test_console import Session, _shot, browser_session

__all__ = ["browser_session"]  # the fixture, imported for use here

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NAME = "pumpnotes"
CARD = f"article.app-card[data-app={NAME}]"


@pytest.fixture
def platform_with_app(tmp_path: Path) -> Iterator[Platform]:
    """``gongyun serve`` with the scaffolded app installed (its Chinese title set by its developer)."""
    with installed_app(NAME, tmp_path / "app-project", zh_title="泵站笔记"):
        server = Platform(tmp_path)
        try:
            server.start()
            yield server
        finally:
            server.api.close()
            server.stop()


def _ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready=true]")


def _sign_in(page: Any, base: str) -> None:
    page.goto(base + "/login?next=/apps")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/apps")
    _ready(page)


def _switch(page: Any, lang: str) -> None:
    page.click(f".lang-switch a[data-lang='{lang}']")
    page.wait_for_function("lang => document.documentElement.lang === lang", arg=lang)
    _ready(page)


def test_the_app_is_catalogued_enabled_configured_and_opened(
    platform_with_app: Platform, browser_session: Session, tmp_path: Path
) -> None:
    page, base = browser_session.page, platform_with_app.base
    _sign_in(page, base)
    card = page.locator(CARD)
    card.wait_for()
    assert card.locator(".app-title").inner_text() == "Pumpnotes"
    assert card.locator(".app-desc").inner_text() == "Keeps notes per tenant."
    assert card.get_attribute("data-state") == "not_installed"
    assert "Not installed" in card.inner_text() and "Running" in card.inner_text()
    assert "0.1.0" in card.inner_text() and "Assets · read" in card.inner_text()
    _shot(page, tmp_path, "apps-01-catalogue-en")

    card.locator("button[data-action=enable]").click()
    page.wait_for_selector(f"{CARD}[data-state=enabled]")
    assert "Pumpnotes was enabled." in page.locator("#gy-flash").inner_text()
    card = page.locator(CARD)
    assert "Enabled" in card.inner_text()

    card.locator("button[data-action=configure]").click()
    dialog = page.locator("#app-settings")
    dialog.wait_for()
    assert dialog.locator("input[name=greeting]").input_value() == "Hello from pumpnotes"
    dialog.locator("input[name=greeting]").fill("")
    dialog.locator("#app-settings-save").click()  # the server refuses it and names the field
    errors = dialog.locator("#app-settings-errors")
    errors.wait_for()
    assert errors.inner_text().startswith("greeting: String should have at least 1 character")
    assert dialog.is_visible()
    dialog.locator("input[name=greeting]").fill("Good morning, pump hall")
    dialog.locator("#app-settings-save").click()
    page.locator("#gy-flash .alert-success", has_text="The settings of Pumpnotes were saved.").wait_for()
    assert not dialog.is_visible()
    _shot(page, tmp_path, "apps-02-enabled-en")

    page.locator(CARD).locator("a[data-page=main]").click()
    page.wait_for_url(re.compile(rf"/apps/{NAME}/main$"))
    _ready(page)
    assert page.locator(f"#{NAME}-hello").inner_text() == "Good morning, pump hall"
    assert page.locator(".nav-item.active").get_attribute("data-nav") == "apps"
    _shot(page, tmp_path, "apps-03-app-page-en")

    _switch(page, "zh-CN")
    assert page.locator("#page-title").inner_text() == "泵站笔记"
    _shot(page, tmp_path, "apps-04-app-page-zh")
    page.goto(base + "/apps")
    _ready(page)
    card = page.locator(CARD)
    assert card.locator(".app-title").inner_text() == "泵站笔记"
    assert card.locator(".app-desc").inner_text() == "按租户记录笔记。"
    assert "已启用" in card.inner_text() and "运行中" in card.inner_text()
    assert card.locator("button[data-action=disable]").inner_text() == "禁用"
    assert page.locator("#page-title").inner_text() == "工业应用"
    _shot(page, tmp_path, "apps-05-catalogue-zh")

    card.locator("button[data-action=disable]").click()
    page.wait_for_selector(f"{CARD}[data-state=disabled]")
    assert "已禁用 泵站笔记。" in page.locator("#gy-flash").inner_text()
    assert platform_with_app.api.get(f"/api/v1/apps/{NAME}/hello").status_code == 404
    _shot(page, tmp_path, "apps-06-disabled-zh")

    assert browser_session.script_errors == []
    assert browser_session.http_failures == [("PATCH", f"/api/v1/apps/{NAME}", 422)]  # the empty greeting
