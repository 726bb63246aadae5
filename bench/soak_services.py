"""bench/soak's processes: the API processes and the private Mosquitto, NATS and PostgreSQL it faults.

Each service runs on its own free loopback port with its data in the run's scratch directory, so a
soak never touches the machine's own services; each can be crashed (``kill -9``, or PostgreSQL's
immediate shutdown, which skips the checkpoint like a crash) and started again on the same data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

GONGYUN = Path(sys.executable).parent / "gongyun"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB from ``/proc/<pid>/status`` (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_port(port: int, what: str, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on the loopback ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port}")


def _kill9(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


@dataclass
class Api:
    """One API process: its port, log and current incarnation."""

    name: str
    port: int
    env: dict[str, str]
    home: Path
    config: str = "server.toml"
    proc: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (t, incarnation, KiB)

    @property
    def base(self) -> str:
        """The process's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start ``gongyun --config server.toml serve --port P`` (output to its log)."""
        log = (self.home / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [str(GONGYUN), "--config", self.config, "serve", "--port", str(self.port)],
            cwd=self.home,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.incarnation += 1

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Poll ``/readyz`` until 200; seconds it took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see its log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=3, trust_env=False).status_code == 200:
                    return time.monotonic() - t0
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout} s")

    def kill9(self) -> None:
        """``kill -9`` the process and reap it."""
        _kill9(self.proc)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill9()

    def sample_rss(self, t: float) -> None:
        """Record the current RSS of this incarnation."""
        if self.proc is not None and self.proc.poll() is None:
            kib = rss_kib(self.proc.pid)
            if kib is not None:
                self.rss.append((t, self.incarnation, kib))


class Broker:
    """A private Mosquitto on its own loopback port, which the harness restarts as a fault."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.conf = home / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = home / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_port(self.port, "mosquitto")

    def stop(self) -> None:
        """``kill -9`` (a crash, not a clean shutdown) and reap."""
        _kill9(self.proc)


class PrivateNats:
    """A NATS server with JetStream on its own port and store directory (the deployment's bus)."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.store = home / "nats"
        self.log = home / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it on the same store (JetStream keeps its streams across restarts)."""
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_port(self.port, "nats-server")

    def stop(self) -> None:
        """``kill -9`` and reap."""
        _kill9(self.proc)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in the scratch directory, trust auth on loopback)."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.data = home / "pg"
        self.log = home / "postgres.log"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL of one of its databases."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        subprocess.run([*self._as_postgres, *argv], check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        """initdb (the server keeps fsync on: a committed write survives a crash)."""
        self.data.mkdir(mode=0o700)
        self.log.touch()
        if self._as_postgres:  # PostgreSQL refuses to run as root
            os.chmod(self.data.parent, 0o755)
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.log, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        """Start it (replaying its WAL after a crash) and wait until it accepts connections."""
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "120", "start")
        wait_port(self.port, "postgres")

    def crash(self) -> None:
        """Stop at once, no checkpoint (``-m immediate``): the next start recovers, as after a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop it for good (fast shutdown), ignoring a cluster that is not running."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
