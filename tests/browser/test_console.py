"""The console in a real browser against the real server.

Headless Debian Chromium (never a Playwright-downloaded browser) logs in, switches to
简体中文 and back, manages users and API keys on the admin page, and the created key is
then used against the API; a viewer changes their own password. Screenshots land in the
test's temporary directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.console.htmltext import ZH_ALLOWED_WORDS, foreign_words
from tests.services import free_port, require_path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "console-Test-pass-42"

pytestmark = pytest.mark.browser


def _server_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("gongyun")
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from gongyun.cli.main import run; run()", *args]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real ``gongyun serve`` on a free port with a fresh data directory."""
    port = free_port()
    env = {
        **os.environ,
        "GONGYUN_DATA_DIR": str(tmp_path / "data"),
        "GONGYUN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GONGYUN_LOG_FORMAT": "json",
        # Short-lived access tokens: the console must refresh them (it does so 30 s before expiry).
        "GONGYUN_ACCESS_TOKEN_TTL_S": "20",
    }
    env.pop("GONGYUN_CONFIG", None)
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        _server_command(port), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@dataclass
class Session:
    """A browser page plus what went wrong in it: script errors and HTTP failures."""

    page: Any
    script_errors: list[str] = field(default_factory=list)
    api_calls: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def http_failures(self) -> list[tuple[str, str, int]]:
        """API calls answered 4xx/5xx."""
        return [call for call in self.api_calls if call[2] >= 400]

    def watch(self) -> None:
        """Record uncaught exceptions, console errors and every 4xx/5xx response."""
        self.page.on("pageerror", lambda exc: self.script_errors.append(f"pageerror: {exc}"))
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, msg: Any) -> None:
        # Chromium also logs each failed HTTP response; those are checked via http_failures.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.script_errors.append(msg.text)

    def _response(self, response: Any) -> None:
        path = urlsplit(response.url).path
        if response.status >= 400 or path.startswith("/api/"):
            self.api_calls.append((response.request.method, path, response.status))


@pytest.fixture
def browser_session() -> Iterator[Session]:
    """A Playwright page in Debian's headless Chromium (Playwright never downloads a browser)."""
    require_path(CHROMIUM, "Debian's chromium")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
            context.grant_permissions(["clipboard-read", "clipboard-write"])
            page = context.new_page()
            page.set_default_timeout(15_000)
            session = Session(page)
            session.watch()
            yield session
        finally:
            browser.close()


def _ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready=true]")


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def _login(page: Any, base: str, tmp_path: Path) -> None:
    page.goto(base + "/")
    page.wait_for_url(re.compile(r"/login\?next="))
    assert page.locator("h1").inner_text() == "Sign in"
    _shot(page, tmp_path, "01-login-en")
    page.fill("#username", "admin")
    page.fill("#password", "wrong-password")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(".alert-error")
    assert "Wrong username or password." in page.locator("#gy-flash").inner_text()
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/overview")
    _ready(page)


def _switch(page: Any, lang: str) -> None:
    page.click(f".lang-switch a[data-lang='{lang}']")
    page.wait_for_function("lang => document.documentElement.lang === lang", arg=lang)
    _ready(page)


def _switch_public(page: Any, lang: str) -> None:
    page.click(f".lang-switch a[data-lang='{lang}']")
    page.wait_for_function("lang => document.documentElement.lang === lang", arg=lang)


def _check_all_chinese(page: Any, data: set[str]) -> None:
    """Everything shown is Chinese except data (names, ids) and allowed product names."""
    text = page.locator("body").inner_text()
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    avatar = page.locator("#gy-user .user-avatar").inner_text()  # the user's initial
    assert foreign_words(text, ZH_ALLOWED_WORDS | {avatar}) == set()


def test_console_end_to_end(server: str, browser_session: Session, tmp_path: Path) -> None:
    page, base = browser_session.page, server
    _login(page, base, tmp_path)
    assert page.locator("#gy-user-name").inner_text() == "admin"
    assert page.locator("#ov-welcome").inner_text() == "Welcome, admin"
    page.wait_for_selector("#ov-health-api .badge-ok")
    _shot(page, tmp_path, "02-overview-en")

    # To Chinese: the server renders in the chosen language, the script translates what it adds.
    _switch(page, "zh-CN")
    assert page.locator("h1").inner_text() == "概览"
    assert page.locator("#ov-welcome").inner_text() == "欢迎，admin"
    assert page.locator("#gy-logout").inner_text() == "退出登录"
    assert page.locator("[data-nav=admin]").inner_text() == "系统管理"
    assert page.evaluate("localStorage.getItem('gy_lang')") == "zh-CN"
    assert {"name": "gy_lang", "value": "zh-CN"}.items() <= next(
        c for c in page.context.cookies() if c["name"] == "gy_lang"
    ).items()
    page.wait_for_selector("#ov-health-api .badge-ok")
    me = httpx.get(base + "/api/v1/me", headers=_bearer(page)).json()
    _check_all_chinese(page, {"admin", me["tenant_name"], "0.1.0"})
    _shot(page, tmp_path, "03-overview-zh")

    page.click("[data-nav=admin]")
    page.wait_for_url(base + "/admin")
    _ready(page)
    page.wait_for_selector("#users-table table")
    page.wait_for_selector("#tenants-table table")
    assert page.locator("#admin-keys h2").inner_text() == "API 密钥"
    users = httpx.get(base + "/api/v1/users", headers=_bearer(page)).json()
    shown_data = {u["username"] for u in users} | {u["display_name"] for u in users if u["display_name"]}
    _check_all_chinese(page, shown_data | {me["tenant_name"], me["tenant_id"], "0.1.0"})
    _shot(page, tmp_path, "04-admin-zh")

    page.click("[data-nav=security]")
    _ready(page)
    assert page.locator("#sec-map-card h2").inner_text() == "通信关系图"  # situational awareness
    _shot(page, tmp_path, "05-security-zh")

    page.click("[data-nav=apps]")
    _ready(page)
    assert page.locator("#apps-catalogue h2").inner_text() == "应用目录"
    # the built-in apps, titled in Chinese (none installed in this tenant yet)
    page.wait_for_selector("#apps-cards .app-card[data-app=maintenance]")
    titles = page.locator("#apps-cards").inner_text()
    assert all(t in titles for t in ("设备健康", "设备综合效率", "智能排产", "产品追溯")), titles
    _shot(page, tmp_path, "05-apps-zh")

    # A cleared cookie is restored from localStorage.
    page.context.clear_cookies()
    page.goto(base + "/assets")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    _ready(page)
    assert page.locator("h1").inner_text() == "资产"

    # And back to English.
    page.goto(base + "/admin")
    _ready(page)
    _switch(page, "en")
    assert page.locator("h1").inner_text() == "Administration"
    assert page.locator("#gy-logout").inner_text() == "Sign out"
    assert page.evaluate("localStorage.getItem('gy_lang')") == "en"
    _admin_flow(page, base, tmp_path)

    page.click("#gy-logout")
    page.wait_for_url(re.compile(r"/login\?reason=signed_out"))
    assert "You have signed out." in page.locator("#gy-flash").inner_text()
    assert page.evaluate("sessionStorage.getItem('gy_access')") is None
    page.goto(base + "/admin")
    page.wait_for_url(re.compile(r"/login\?next=%2Fadmin"))
    _switch_public(page, "zh-CN")
    assert page.locator("h1").inner_text() == "登录"
    assert page.locator("#login-form button[type=submit]").inner_text() == "登录"
    _shot(page, tmp_path, "09-login-zh")

    # A viewer sees the admin sections closed (in Chinese); the page asks the API nothing it may not.
    page.fill("#username", "wang.view")
    page.fill("#password", "Viewer-pass-9")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/admin")
    _ready(page)
    assert page.locator("#gy-user-meta").inner_text().endswith("只读用户")
    for section in ("admin-users", "admin-keys", "admin-tenants"):
        assert page.locator(f"#{section} .section-denied").inner_text() == "您的角色无权访问此部分。"
        assert page.locator(f"#{section} .section-body").is_hidden()
    _shot(page, tmp_path, "10-admin-viewer-zh")

    # Any user changes their own password there, and must give the current one.
    assert page.locator("#admin-password h2").inner_text() == "我的密码"
    page.fill("#current-password", "not-my-password")
    page.fill("#new-password", "Viewer-pass-10")
    page.click("#change-password")
    page.wait_for_selector(".alert-error")
    assert "当前密码错误。" in page.locator("#gy-flash").inner_text()
    page.fill("#current-password", "Viewer-pass-9")
    page.click("#change-password")
    page.wait_for_url(re.compile(r"/login\?next=%2Fadmin&reason=password_changed"))
    assert "密码已修改，请使用新密码登录。" in page.locator("#gy-flash").inner_text()
    _shot(page, tmp_path, "11-password-changed-zh")
    page.fill("#username", "wang.view")
    page.fill("#password", "Viewer-pass-10")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/admin")
    _ready(page)

    assert browser_session.script_errors == []
    calls = {(method, path) for method, path, _ in browser_session.api_calls}
    assert ("POST", "/api/v1/auth/refresh") in calls
    assert ("POST", "/api/v1/auth/logout") in calls
    # The only failed request was the wrong password: no page asked for anything it may not have.
    assert browser_session.http_failures == [
        ("POST", "/api/v1/auth/token", 401),
        ("POST", "/api/v1/me/password", 403),
    ]


def _bearer(page: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + page.evaluate("sessionStorage.getItem('gy_access')")}


def _admin_flow(page: Any, base: str, tmp_path: Path) -> None:
    page.wait_for_selector("#users-table table")

    # Create a user, then disable it.
    page.fill("#new-user-name", "li.gong")
    page.fill("#new-user-display", "李工")
    page.fill("#new-user-password", "Engineer-pass-7")
    page.select_option("#new-user-role", "engineer")
    page.click("#create-user")
    page.wait_for_selector("#users-table button[data-user='li.gong']")
    assert "User li.gong was created." in page.locator("#gy-flash").inner_text()
    row = page.locator("#users-table tr", has_text="li.gong")
    assert "Engineer" in row.inner_text()
    row.locator("button").click()
    page.wait_for_selector("#users-table tr:has-text('li.gong') .badge-muted")
    assert httpx.post(
        base + "/api/v1/auth/token", data={"username": "li.gong", "password": "Engineer-pass-7"}
    ).status_code in {401, 403}

    # A second user, used at the end to sign in with a small role.
    page.fill("#new-user-name", "wang.view")
    page.fill("#new-user-password", "Viewer-pass-9")
    page.click("#create-user")
    page.wait_for_selector("#users-table button[data-user='wang.view']")
    assert "Viewer" in page.locator("#users-table tr", has_text="wang.view").inner_text()

    # Create an API key: shown once, copyable, and it works against the API.
    page.fill("#new-key-name", "line-3 collector")
    page.select_option("#new-key-role", "operator")
    page.fill("#new-key-days", "30")
    page.click("#create-key")
    page.wait_for_selector("#key-once:not([hidden])")
    key = page.input_value("#key-once-value")
    assert key.startswith("gy_")
    page.click("#key-once-copy")
    page.wait_for_function("() => document.getElementById('key-once-copy').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == key
    page.wait_for_selector("#keys-table button[data-key='line-3 collector']")
    _shot(page, tmp_path, "06-admin-key-created-en")

    me = httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "operator"
    assert httpx.get(base + "/api/v1/me", headers={"X-API-Key": key}).status_code == 200

    # The key is not shown again after "Done" or a reload.
    page.click("#key-once-done")
    assert page.locator("#key-once").is_hidden()
    page.reload()
    _ready(page)
    page.wait_for_selector("#keys-table table")
    assert key not in page.content()

    # Revoke it through the confirmation dialog; the API then refuses it.
    page.click("#keys-table button[data-key='line-3 collector']")
    page.wait_for_selector("#gy-confirm[open]")
    assert "line-3 collector" in page.locator("#gy-confirm-text").inner_text()
    _shot(page, tmp_path, "07-admin-revoke-dialog-en")
    page.click("#gy-confirm-ok")
    page.wait_for_selector("#keys-table tr:has-text('line-3 collector') .badge-muted")
    assert "API key line-3 collector was revoked." in page.locator("#gy-flash").inner_text()
    assert httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    _shot(page, tmp_path, "08-admin-revoked-en")
