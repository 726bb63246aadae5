"""Run the operator commands of docs/operations.md as written, block by block, in one shell state.

Each ``<!-- ops-test:NAME -->`` comment marks the fenced ``sh`` block after it. ``DocShell`` runs
a block with bash (``-euo pipefail``) after sourcing the variables the previous blocks exported,
so the blocks behave as if typed one after the other into one terminal. The only things a test
changes are the documented placeholder variables (``GONGYUN_DB``, ``GONGYUN_HOME``, the ports,
``GONGYUN_BACKUP``...), ``HOME`` (``~/.pgpass``) and ``PATH`` (this environment's ``gongyun``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.services import IN_CI, POSTGRES_ADMIN_DSN, free_port, require_service

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
_BLOCK = re.compile(r"<!-- ops-test:([a-z0-9-]+) -->\s*\n```sh\n(.*?)\n```", re.S)


def doc_blocks(path: Path = DOC) -> dict[str, str]:
    """The marked ``sh`` blocks of the document by name, in document order."""
    blocks: dict[str, str] = {}
    for name, body in _BLOCK.findall(path.read_text(encoding="utf-8")):
        assert name not in blocks, f"two blocks are marked ops-test:{name}"
        blocks[name] = body
    return blocks


class DocShell:
    """Runs documented blocks one after another, carrying exported variables between them."""

    def __init__(self, work: Path, variables: dict[str, str]) -> None:
        self.blocks = doc_blocks()
        self.work = work
        self.state = work / "shell-state.sh"
        self.state.write_text("")
        home = work / "home"
        home.mkdir()
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("GONGYUN_", "PG"))}
        admin = urlsplit(POSTGRES_ADMIN_DSN)
        self.base_env = {
            **keep,
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PGHOST": admin.hostname or "127.0.0.1",
            "PGPORT": str(admin.port or 5432),
            "PGUSER": admin.username or "postgres",
            "GONGYUN_LOG_LEVEL": "WARNING",
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            **variables,
        }
        self.ran: list[str] = []

    def run(self, name: str, timeout: float = 180.0) -> str:
        """Run the block ``name`` as documented; fail the test with its output when it fails."""
        body = self.blocks[name]
        script = f". {self.state}\nset -euo pipefail\n{body}\nexport -p > {self.state}\n"
        proc = subprocess.run(
            ["bash", "-c", script],
            env=self.base_env,
            cwd=self.work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.ran.append(name)
        assert proc.returncode == 0, (
            f"docs/operations.md block ops-test:{name} failed ({proc.returncode}):\n{body}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
        return proc.stdout

    def env(self) -> dict[str, str]:
        """The environment the next block would see (documented variables included)."""
        out = subprocess.run(
            ["bash", "-c", f". {self.state}\nenv -0"],
            env=self.base_env,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()
        return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)

    def secrets(self) -> dict[str, str]:
        """The ``KEY=value`` lines of the documented ``secrets.env``."""
        path = Path(self.env()["GONGYUN_HOME"]) / "secrets.env"
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def require_tools() -> None:
    """Skip (locally) or fail (CI) when the PostgreSQL client tools or curl are missing."""
    import shutil

    missing = [
        t for t in ("psql", "createdb", "pg_dump", "pg_restore", "curl", "openssl") if not shutil.which(t)
    ]
    if not missing:
        return
    if IN_CI:
        pytest.fail(f"missing tools: {missing}")
    pytest.skip(f"missing tools: {missing}")


def _admin(sql: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.encode())  # names made by this module, not user input


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM ``pid``, wait for it to go, SIGKILL it after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    # not our child when a documented shell block started it: init reaps it then
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def pid_gone(pid: int) -> bool:
    """Whether the process ``pid`` has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextmanager
def doc_deployment(tmp_path: Path) -> Iterator[DocShell]:
    """A DocShell with a unique database/role name, home and ports; everything dropped after."""
    require_service("postgres")
    require_service("nats")
    require_tools()
    name = f"gy_ops_{uuid.uuid4().hex[:10]}"
    home = tmp_path / "srv"
    shell = DocShell(
        tmp_path,
        {
            "GONGYUN_DB": name,
            "GONGYUN_HOME": str(home),
            "GONGYUN_PORT_1": str(free_port()),
            "GONGYUN_PORT_2": str(free_port()),
            "GONGYUN_IDNODE_PORT": str(free_port()),
            "GONGYUN_BACKUP": str(tmp_path / "backup" / f"{name}.dump"),
            "GONGYUN_RESTORE_DB": f"{name}_restored",
        },
    )
    try:
        yield shell
    finally:
        for pidfile in home.glob("*.pid") if home.exists() else []:
            text = pidfile.read_text().strip()
            if text.isdigit():
                stop_pid(int(text), timeout=10)
        _admin(f'DROP DATABASE IF EXISTS "{name}_restored" WITH (FORCE)')
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin(f'DROP ROLE IF EXISTS "{name}"')


def wait_ready(base: str, timeout: float = 90.0, pid: int | None = None) -> None:
    """Poll ``base``/readyz until it answers 200 (a loaded machine may take a while to start)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if pid is not None and pid_gone(pid):
            raise AssertionError(f"the process behind {base} exited")
        try:
            r = httpx.get(f"{base}/readyz", timeout=5, trust_env=False)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise AssertionError(f"{base} not ready after {timeout} s: {last}")


def login(base: str, password: str) -> dict[str, str]:
    """Sign in as ``admin``; the bearer header."""
    r = httpx.post(
        f"{base}/api/v1/auth/token",
        data={"username": "admin", "password": password},
        timeout=30,
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
