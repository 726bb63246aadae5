"""Acknowledging an alarm whose engine runs in another process, in a real browser.

Two runtimes share PostgreSQL and NATS JetStream, as two server processes would: the engine's,
and an API-only one that uvicorn serves to headless Debian Chromium. With the engine's command
consumer stopped, the console's acknowledge is answered 202: the row shows "pending" while the
console polls the command; once the consumer is back the engine applies it, and the row moves
to acknowledged without a reload. Screenshots land in tmp_path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from gongyun.api.app import create_app
from gongyun.platform import Platform, prepare_database, start_platform
from gongyun.telemetry.store import Point
from gongyun.telemetry.store.base import to_us
from tests.apphelp import ADMIN_PASSWORD, make_settings
from tests.browser.test_console import Session, _shot, browser_session
from tests.services import (
    NATS_URL,
    free_port,
    fresh_alarm_streams,
    require_service,
    scratch_postgres_database,
)

__all__ = ["browser_session"]  # the fixture, imported for use here

pytestmark = pytest.mark.browser
T = TypeVar("T")
RULE = "Boiler temperature high"
TAG = "boiler/temp"


class TwoProcesses:
    """The engine's runtime and an API-only runtime served over HTTP, on an event loop in a thread."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        common: dict[str, Any] = {"bus_url": NATS_URL, "profile": "server"}
        self.engine_settings = make_settings(tmp_path / "engine", db_url, **common)
        self.api_settings = make_settings(tmp_path / "api", db_url, **common)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="two-processes", daemon=True)
        self.engine_rt: Platform | None = None
        self.api_rt: Platform | None = None
        self.server: uvicorn.Server | None = None
        self.serving: asyncio.Task[None] | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the runtimes' loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        await prepare_database(self.engine_settings)
        self.engine_rt = await start_platform(self.engine_settings)  # telemetry and the alarm engine
        self.api_rt = await start_platform(self.api_settings, services=False)
        app = create_app(self.api_settings, platform=self.api_rt)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.serving = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            if self.serving.done():
                self.serving.result()
            await asyncio.sleep(0.05)

    async def _stop(self) -> None:
        if self.server is not None and self.serving is not None:
            self.server.should_exit = True
            await asyncio.wait_for(self.serving, 15)
        if self.api_rt is not None:
            await self.api_rt.close()
        if self.engine_rt is not None:
            await self.engine_rt.close()

    def start(self) -> None:
        """Start the loop, both runtimes and the HTTP server."""
        self.thread.start()
        self.call(self._start(), timeout=90)

    def stop(self) -> None:
        """Stop the server and both runtimes, then the loop."""
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(15)

    def worker_running(self, running: bool) -> None:
        """Stop or start the engine's command consumer (its sweep included)."""
        assert self.engine_rt is not None
        worker = self.engine_rt.running_telemetry().commands
        assert worker is not None
        self.call(worker.start() if running else worker.stop())

    def raise_alarm(self, tenant: str, rule_id: str) -> None:
        """Wait for the engine to load the rule, then feed it a sample above the limit."""
        assert self.engine_rt is not None
        engine = self.engine_rt.running_telemetry().alarms

        async def feed() -> None:
            while not any(a["rule_id"] == rule_id for a in engine.alarms(tenant)):
                await asyncio.sleep(0.05)
            await engine.on_points(tenant, [Point(TAG, to_us(datetime.now(UTC)), 95.0)])

        self.call(feed(), timeout=30)


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[TwoProcesses]:
    """Both runtimes on a scratch PostgreSQL database and NATS; always stopped afterwards."""
    require_service("nats")
    asyncio.run(fresh_alarm_streams())
    require_service("postgres")
    with scratch_postgres_database() as url:
        procs = TwoProcesses(tmp_path, url)
        try:
            procs.start()
            yield procs
        finally:
            procs.stop()


def test_ack_answered_202_shows_pending_then_applies(
    two_processes: TwoProcesses, browser_session: Session, tmp_path: Path
) -> None:
    page, base = browser_session.page, two_processes.base
    with httpx.Client(base_url=base, timeout=15) as api:
        r = api.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        api.headers["Authorization"] = "Bearer " + r.json()["access_token"]
        tenant = api.get("/api/v1/me").json()["tenant_id"]
        rule = {"kind": "threshold", "name": RULE, "tag": TAG, "limit": 80, "priority": "high"}
        r = api.post("/api/v1/alarms/rules", json=rule)
        assert r.status_code == 201, r.text
        rule_id = r.json()["id"]
        two_processes.raise_alarm(tenant, rule_id)

        page.goto(f"{base}/login?next=/alarms")
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(base + "/alarms")
        page.wait_for_selector("body[data-ready=true]")
        row = page.locator(f"#alarms-table tr[data-rule='{rule_id}']")
        row.wait_for()
        assert row.get_attribute("data-state") == "unack_active"

        # The engine's consumer is down: the request is kept, answered 202, and shown as pending.
        two_processes.worker_running(False)
        row.locator("button[data-action=ack]").click()
        page.wait_for_selector(f"#alarms-table tr[data-rule='{rule_id}'][data-pending=ack]", timeout=20_000)
        assert "Pending" in row.inner_text()
        assert row.locator("button[data-action=shelve]").is_disabled()
        flash = page.locator("#gy-flash").inner_text()
        assert f"Request for alarm {RULE} sent; waiting for the alarm engine" in flash
        assert row.get_attribute("data-state") == "unack_active"
        _shot(page, tmp_path, "01-alarm-ack-pending-en")

        # Back: the engine applies it, the console's poll sees it and the row is acknowledged.
        two_processes.worker_running(True)
        page.wait_for_selector(
            f"#alarms-table tr[data-rule='{rule_id}'][data-state=ack_active]:not([data-pending])",
            timeout=40_000,
        )
        assert f"Alarm {RULE} was acknowledged." in page.locator("#gy-flash").inner_text()
        state = next(a for a in api.get("/api/v1/alarms").json() if a["rule_id"] == rule_id)["state"]
        assert state == "ack_active"
        _shot(page, tmp_path, "02-alarm-ack-applied-en")

    assert browser_session.script_errors == []
    # The API-only process has no engine to stream live transitions from.
    assert set(browser_session.http_failures) <= {("GET", "/api/v1/alarms/stream", 503)}
