"""gongyun demo on a machine without Mosquitto: the embedded broker carries the packaging line."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gongyun.edge.broker import EmbeddedBroker, broker_answers
from gongyun.platform.demo import start_demo
from tests.apphelp import admin_headers, running_app
from tests.services import free_port


async def test_demo_runs_the_packaging_line_on_the_embedded_broker(tmp_path: Path) -> None:
    port = free_port()  # nothing answers here, as on a fresh machine
    async with running_app(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{port}") as (client, runtime):
        broker = runtime.broker
        assert isinstance(broker, EmbeddedBroker) and broker.address == ("127.0.0.1", port)
        demo = await start_demo(runtime, time_scale=20)
        assert demo.factory.packaging is not None
        assert demo.factory.packaging.mqtt_port == port
        headers = await admin_headers(client)
        deadline = time.monotonic() + 30
        latest: dict[str, Any] = {}
        while time.monotonic() < deadline:
            latest = (await client.get("/api/v1/telemetry/latest", headers=headers)).json()
            if "packaging-line/count" in latest:
                break
            await asyncio.sleep(0.5)
        assert "packaging-line/count" in latest, f"no packaging sample stored; got {sorted(latest)}"
        status = (await client.get("/api/v1/devices/status", headers=headers)).json()
        assert any(d["device"] == "packaging-line" and d["connected"] for d in status), status
    assert not broker_answers("127.0.0.1", port)  # stopped with the runtime
