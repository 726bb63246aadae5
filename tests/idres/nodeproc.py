"""Start identifier nodes as separate processes on free loopback ports; always stop them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.services import free_port


class NodeProcess:
    """One ``gongyun idnode`` process (``db``: its own SQLite file, no database, or this URL)."""

    def __init__(
        self,
        role: str,
        tmp: Path,
        name: str,
        *args: str,
        db: bool | str = True,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "gongyun.cli.idres", "--role", role, "--port", str(self.port), *args]
        if isinstance(db, str):
            cmd += ["--db", db]
        elif db:
            cmd += ["--db", f"sqlite+aiosqlite:///{tmp / (name + '.db')}"]
        environ = dict(
            os.environ, GONGYUN_IDNODE_TOKEN="op-token", GONGYUN_IDNODE_SECRET="s3cret", **(env or {})
        )
        self.log = (tmp / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=environ)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until /health answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: see {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node {self.url} did not start")

    def stop(self) -> None:
        """Terminate (then kill) the process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
