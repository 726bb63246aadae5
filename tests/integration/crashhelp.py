"""Start ``gongyun serve`` as a real subprocess, wait for it, kill it with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.apphelp import ADMIN_PASSWORD

GONGYUN = str(Path(sys.executable).with_name("gongyun"))


def start_server(data_dir: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """``gongyun serve`` on 127.0.0.1:port over ``data_dir``; extra ``GONGYUN_*`` settings by name."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("GONGYUN_")}
    env = {
        **keep,
        "GONGYUN_DATA_DIR": str(data_dir),
        "GONGYUN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GONGYUN_LOG_LEVEL": "WARNING",
        "no_proxy": "127.0.0.1,localhost",
        **{f"GONGYUN_{k.upper()}": v for k, v in settings.items()},
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir.parent / f"serve-{port}.log").open("ab")
    return subprocess.Popen(
        [GONGYUN, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll ``/healthz`` until it answers 200; fail when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the server if it still runs (test clean-up)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
