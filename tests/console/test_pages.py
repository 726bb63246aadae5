"""Console pages render in both languages, show no untranslated text and stay on-site."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from gongyun.console import PAGES, PUBLIC_ROUTES, mount_console
from gongyun.console.apppages import build_app_pages_router
from gongyun.console.i18n import CATALOGUES
from gongyun.console.pages import ConsoleRenderer, build_router, safe_next
from tests.console.htmltext import ZH_ALLOWED_WORDS, foreign_words, visible_strings

PATHS = ["/login", *(f"/{p.slug}" for p in PAGES)]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    mount_console(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as c:
        yield c


async def _get(client: httpx.AsyncClient, path: str, lang: str) -> httpx.Response:
    client.cookies.set("gy_lang", lang)
    response = await client.get(path)
    assert response.status_code == 200, (path, lang)
    return response


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
async def test_page_renders_without_untranslated_keys(
    client: httpx.AsyncClient, path: str, lang: str
) -> None:
    response = await _get(client, path, lang)
    html = response.text
    assert f'<html lang="{lang}">' in html
    assert response.headers["content-language"] == lang
    shown = visible_strings(html)
    assert shown
    keys = set(CATALOGUES[lang])
    leaked = [s for s in shown if s in keys or re.fullmatch(r"[a-z]+(\.[a-z0-9_-]+)+", s)]
    assert leaked == []
    # The page title and the navigation are in the chosen language.
    assert CATALOGUES[lang]["app.name"] in html


@pytest.mark.parametrize("path", PATHS)
async def test_chinese_pages_show_no_english(client: httpx.AsyncClient, path: str) -> None:
    html = (await _get(client, path, "zh-CN")).text
    strays = {s: foreign_words(s, ZH_ALLOWED_WORDS) for s in visible_strings(html)}
    assert {s: w for s, w in strays.items() if w} == {}


@pytest.mark.parametrize("path", PATHS)
async def test_english_pages_show_no_chinese(client: httpx.AsyncClient, path: str) -> None:
    html = (await _get(client, path, "en")).text
    shown = [s for s in visible_strings(html) if s != CATALOGUES["en"]["lang.zh-CN"]]
    assert [s for s in shown if CJK.search(s)] == []


async def test_script_gets_the_catalogue_of_the_page_language(client: httpx.AsyncClient) -> None:
    html = (await _get(client, "/admin", "zh-CN")).text
    blob = re.search(r'<script id="gy-i18n" type="application/json">(.*?)</script>', html, re.S)
    assert blob is not None
    import json

    assert json.loads(blob.group(1)) == CATALOGUES["zh-CN"]


async def test_accept_language_is_used_without_cookie(client: httpx.AsyncClient) -> None:
    response = await client.get("/overview", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert '<html lang="zh-CN">' in response.text
    assert "<title>概览 · 工云</title>" in response.text
    response = await client.get("/overview", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in response.text


async def test_root_redirects_to_overview(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/overview"


async def test_language_switch_sets_cookie_and_returns(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/lang/zh-CN", params={"next": "/admin?x=1"})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin?x=1"
    assert "gy_lang=zh-CN" in response.headers["set-cookie"]
    assert "Max-Age=31536000" in response.headers["set-cookie"]
    page = await client.get("/admin")
    assert '<html lang="zh-CN">' in page.text


async def test_language_switch_ignores_unknown_language(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/lang/xx", params={"next": "/assets"})
    assert response.status_code == 303
    assert response.headers["location"] == "/assets"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "", "/a\r\nb"],
)
async def test_language_switch_never_leaves_the_site(client: httpx.AsyncClient, target: str) -> None:
    response = await client.get("/console/lang/en", params={"next": target})
    assert response.headers["location"] == "/"


def test_safe_next_keeps_local_paths() -> None:
    assert safe_next("/admin?tab=keys#x") == "/admin?tab=keys#x"
    assert safe_next(None) == "/overview"


async def test_pages_send_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    # No inline scripts other than JSON data blocks, so the CSP needs no 'unsafe-inline'.
    tags = re.findall(r"<script([^>]*)>", response.text)
    assert all("src=" in t or 'type="application/json"' in t for t in tags)
    assert not re.search(r"\son[a-z]+=", response.text)


async def test_static_files_are_served_and_local(client: httpx.AsyncClient) -> None:
    html = (await client.get("/overview")).text
    assets = re.findall(r'(?:href|src)="(/console/static/[^"]+)"', html)
    names = {a.split("?")[0].removeprefix("/console/static/") for a in assets}
    assert names == {
        "console.css",
        "console.js",
        "api.js",
        "overview.js",
        "favicon.svg",
        "charts.js",
        "vendor/uPlot.iife.min.js",
        "vendor/uPlot.min.css",
    }
    for asset in assets:
        assert (await client.get(asset)).status_code == 200
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    css = (await client.get("/console/static/console.css")).text
    assert "@import" not in css and "url(http" not in css


async def test_pages_stay_out_of_openapi() -> None:
    app = FastAPI()
    mount_console(app)
    assert not any(p.startswith(("/login", "/overview", "/console")) for p in app.openapi()["paths"])


async def test_public_routes_cover_every_console_route(client: httpx.AsyncClient) -> None:
    renderer = ConsoleRenderer()
    routes = [*build_router(renderer).routes, *build_app_pages_router(renderer).routes]
    assert {("GET", getattr(r, "path", "")) for r in routes} | {("GET", "/console/static/{path}")} == set(
        PUBLIC_ROUTES
    )
    for _, path in PUBLIC_ROUTES:
        if "{app}" in path:
            continue  # apps' pages: served once an app is installed (tests/apps/test_scaffold.py)
        concrete = path.replace("{code}", "en").replace("{path}", "console.js")
        assert (await client.get(concrete)).status_code in {200, 303, 307}, path


async def test_language_links_keep_the_query_string(client: httpx.AsyncClient) -> None:
    html = (await client.get("/login", params={"next": "/admin", "reason": "expired"})).text
    link = re.search(r'href="(/console/lang/zh-CN\?[^"]+)"', html)
    assert link is not None
    response = await client.get(link.group(1).replace("&amp;", "&"))
    assert response.headers["location"] == "/login?next=%2Fadmin&reason=expired"
