"""The filled console areas: their pages load the right scripts, the chart library is vendored."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gongyun.console import PAGES, mount_console, pages
from gongyun.console.i18n import CATALOGUES
from gongyun.console.pages import STATIC_DIR, ConsoleRenderer

AREAS = {"overview", "assets", "devices", "identifiers", "alarms"}
CHARTED = {"overview", "assets", "devices"}
VENDOR = STATIC_DIR / "vendor"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    mount_console(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as c:
        yield c


def _scripts(html: str) -> list[str]:
    return [
        s.split("?")[0].removeprefix("/console/static/") for s in re.findall(r'<script src="([^"]+)"', html)
    ]


def test_areas_are_ready_with_their_own_templates() -> None:
    ready = {p.slug: p for p in PAGES if p.ready}
    assert set(ready) >= AREAS
    for slug in AREAS:
        assert ready[slug].template == f"{slug}.html"
        assert (STATIC_DIR / f"{slug}.js").is_file()
        assert f"pages.{slug} = " in (STATIC_DIR / f"{slug}.js").read_text(encoding="utf-8")


@pytest.mark.parametrize("slug", sorted(AREAS))
async def test_area_loads_its_script_after_the_shell(client: httpx.AsyncClient, slug: str) -> None:
    html = (await client.get(f"/{slug}")).text
    scripts = _scripts(html)
    assert scripts[:2] == ["console.js", "api.js"]
    assert scripts[-1] == f"{slug}.js"
    if slug in CHARTED:
        assert scripts[2:4] == ["vendor/uPlot.iife.min.js", "charts.js"]
        assert "vendor/uPlot.min.css" in html
    else:
        assert "uPlot" not in html
    for name in scripts:
        response = await client.get(f"/console/static/{name}")
        assert response.status_code == 200
        assert "javascript" in response.headers["content-type"]


async def test_every_page_has_the_alarm_banner(client: httpx.AsyncClient) -> None:
    for page in PAGES:
        html = (await client.get(f"/{page.slug}")).text
        banner = re.search(r'<a id="gy-alarm-banner"[^>]*>', html)
        assert banner is not None, page.slug
        assert 'href="/alarms"' in banner.group(0) and " hidden" in banner.group(0)
    assert "gy-alarm-banner" not in (await client.get("/login")).text


def test_chart_library_is_vendored_with_its_licence() -> None:
    script = (VENDOR / "uPlot.iife.min.js").read_text(encoding="utf-8")
    assert script.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    licence = (VENDOR / "uPlot.LICENSE").read_text(encoding="utf-8")
    assert "The MIT License" in licence and "Leon Sorokin" in licence
    assert (VENDOR / "uPlot.min.css").stat().st_size > 500
    # Nothing is fetched from elsewhere at run time: no network calls in the library, no URLs in ours.
    assert not re.search(r"\bfetch\(|XMLHttpRequest|importScripts|WebSocket", script)
    for own in STATIC_DIR.glob("*.js"):
        assert not re.search(r"https?://", own.read_text(encoding="utf-8")), own.name


def test_content_hash_covers_vendored_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vendor").mkdir()
    (tmp_path / "console.js").write_text("1")
    (tmp_path / "vendor" / "lib.js").write_text("a")
    monkeypatch.setattr(pages, "STATIC_DIR", tmp_path)
    first = pages._asset_version()
    (tmp_path / "vendor" / "lib.js").write_text("b")
    assert pages._asset_version() != first
    renderer = ConsoleRenderer()
    assert renderer.static_url("vendor/x.css") == f"/console/static/vendor/x.css?v={renderer.version}"


def test_area_keys_exist_in_both_languages() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in STATIC_DIR.glob("*.js"))
    for prefix in ("alarm.state.", "alarm.priority.", "level.", "filing.", "clean.reason.", "live."):
        used = set(re.findall(r'"(' + re.escape(prefix) + r'[a-z0-9_]+)"', sources))
        assert used, prefix
        for lang in CATALOGUES.values():
            assert used <= set(lang), prefix
    # Every ISA-18.2 state the alarm engine knows has a label.
    from gongyun.alarms.states import Priority, State

    for state in State:
        assert f"alarm.state.{state.value}" in CATALOGUES["zh-CN"]
    for priority in Priority:
        assert f"alarm.priority.{priority.value}" in CATALOGUES["zh-CN"]
