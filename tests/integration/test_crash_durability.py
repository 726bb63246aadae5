"""kill -9 the server during a burst of writes: every write answered 2xx survives."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from tests.apphelp import ADMIN_PASSWORD
from tests.integration.crashhelp import start_server as _start
from tests.integration.crashhelp import wait_ready as _wait_ready
from tests.services import free_port


@pytest.mark.slow
async def test_kill_9_during_write_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path / "var", port)
    try:
        _wait_ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            token = (
                await client.post(
                    "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
                )
            ).json()["access_token"]
            key = (
                await client.post(
                    "/api/v1/apikeys",
                    json={"name": "burst", "role": "platform-admin"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).json()["key"]
            headers = {"X-API-Key": key}
            acknowledged: list[str] = []
            counter = iter(range(100_000))

            async def writer() -> None:
                while True:
                    name = f"t-{next(counter):06d}"
                    try:
                        resp = await client.post("/api/v1/tenants", json={"name": name}, headers=headers)
                    except httpx.HTTPError:
                        return
                    if resp.status_code == 201:
                        acknowledged.append(name)

            tasks = [asyncio.create_task(writer()) for _ in range(8)]
            while len(acknowledged) < 150:
                await asyncio.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        assert len(acknowledged) >= 150
        proc = _start(tmp_path / "var", port)
        _wait_ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            listed = await client.get("/api/v1/tenants", headers=headers)
            assert listed.status_code == 200
            names = {t["name"] for t in listed.json()}
        lost = [n for n in acknowledged if n not in names]
        assert not lost, f"{len(lost)} acknowledged writes lost after kill -9: {lost[:5]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
