"""``gongyun serve`` as a real subprocess on a free loopback port, with its data in a temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.apphelp import ADMIN_PASSWORD
from tests.services import free_port

START_TIMEOUT_S = 60.0


@contextmanager
def gongyun_serve(data_dir: Path, **settings: str) -> Iterator[str]:
    """Start ``gongyun serve`` (embedded profile, memory bus, no MQTT); yield its base URL.

    ``settings`` are extra ``GONGYUN_*`` variables (``access_token_ttl_s="3"`` ...).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONGYUN_")}
    env.update(
        GONGYUN_DATA_DIR=str(data_dir / "var"),
        GONGYUN_ADMIN_PASSWORD=ADMIN_PASSWORD,
        GONGYUN_SECRET_KEY="live-server-secret-key-0123456789abcdef",
        GONGYUN_BUS_URL="memory://",
        GONGYUN_MQTT_EMBEDDED="off",
        GONGYUN_SPARKPLUG_RECEIVER="off",
        GONGYUN_LOG_LEVEL="WARNING",
        GONGYUN_LOG_FORMAT="console",
    )
    env.update({f"GONGYUN_{k.upper()}": v for k, v in settings.items()})
    log = (data_dir / "server.log").open("wb")
    cmd = [sys.executable, "-c", "from gongyun.cli.main import run_cli; run_cli()"]
    proc = subprocess.Popen(
        [*cmd, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=data_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gongyun serve exited: {(data_dir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gongyun serve did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
