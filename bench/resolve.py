"""bench-resolve: Gongyun's resolution endpoint vs nginx serving the same records as static files.

Builds (once, cached in /tmp) an enterprise node database of N identifiers and, for nginx,
one static JSON file per identifier holding exactly the body Gongyun answers. Then, in the
same run, wrk (Debian) fetches random identifiers out of the N from nginx and from a
``gongyun idnode --role enterprise`` process, both with the same number of worker
processes. Writes bench/results/resolve.json and prints one summary line last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

from gongyun.db import Database, upgrade  # noqa: E402
from gongyun.idres import prefixes as pfx  # noqa: E402
from gongyun.idres.bulk import import_records  # noqa: E402
from gongyun.idres.registry import encode_row  # noqa: E402
from gongyun.idres.syntax import Handle  # noqa: E402
from gongyun.idres.values import HandleValue, string_value  # noqa: E402

PREFIX = "88.100.1"
TENANT = "default"


def free_port() -> int:
    """An unused loopback port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record(i: int) -> tuple[str, list[HandleValue]]:
    """The i-th benchmark record."""
    suffix = f"R{i:07d}"
    return f"{PREFIX}/{suffix}", [
        string_value(1, "URL", f"https://plant.example/products/{suffix}"),
        string_value(2, "GY_SERIAL", f"SN-{i:09d}"),
    ]


def fresh_dirs(data: Path) -> Path | None:
    """Recreate the data directory unless a complete build is there; the static files' directory."""
    if (data / "complete").exists():
        return None
    if data.exists():
        shutil.rmtree(data)
    static = data / "static" / "api" / "handles" / PREFIX
    static.mkdir(parents=True)
    return static


async def build(data: Path, count: int) -> None:
    """Create the SQLite database and the static files (skipped when already complete)."""
    static = fresh_dirs(data)
    if static is None:
        return
    marker = data / "complete"
    url = f"sqlite+aiosqlite:///{data / 'node.db'}"
    await upgrade(url)
    db = Database(url)
    async with db.session() as s:
        await pfx.submit(s, TENANT, PREFIX, "enterprise", status=pfx.FilingStatus.active)
    rows = [record(i) for i in range(count)]
    t0 = time.perf_counter()
    stats = await import_records(db, TENANT, rows, batch_size=20_000)
    print(f"imported {stats.inserted:,} records in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    await db.dispose()
    for handle, values in rows:
        h = Handle(PREFIX, handle.split("/", 1)[1])
        row = encode_row(TENANT, h, values)
        body = b'{"responseCode":1,"handle":' + json.dumps(handle).encode() + b',"values":'
        (static / h.suffix).write_bytes(body + row["public_json"].encode() + b"}")
    marker.write_text(str(count))


def nginx_conf(tmp: Path, static: Path, port: int, workers: int) -> Path:
    """A minimal nginx configuration serving the static files."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {static};
        default_type application/json;
    }}
}}
"""
    )
    return conf


def wrk_script(tmp: Path, count: int) -> Path:
    """A wrk Lua script requesting random identifiers."""
    script = tmp / "random.lua"
    script.write_text(
        f"""math.randomseed(os.time())
request = function()
  return wrk.format("GET", string.format("/api/handles/{PREFIX}/R%07d", math.random(0, {count - 1})))
end
"""
    )
    return script


def run_wrk(url: str, script: Path, seconds: int, connections: int, threads: int) -> dict[str, float]:
    """Run wrk and parse requests/s, p99 and errors."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99_raw = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99 = float(p99_raw.group(1)) * scale[p99_raw.group(2)] if p99_raw else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99_ms": p99, "non_2xx": float(non2xx.group(1)) if non2xx else 0.0}


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Block until the URL answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process we started (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="worker processes for both nginx and Gongyun")
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / f"gongyun-bench-resolve-{args.count}"
    asyncio.run(build(data, args.count))
    tmp = Path(tempfile.mkdtemp(prefix="gy-bench-resolve-"))
    script = wrk_script(tmp, args.count)
    nginx_port, node_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, float]] = {}
    try:
        conf = nginx_conf(tmp, data / "static", nginx_port, args.workers)
        procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL))
        node_cmd = [
            sys.executable, "-m", "gongyun.cli.idres", "--role", "enterprise",
            "--db", f"sqlite+aiosqlite:///{data / 'node.db'}", "--prefix", PREFIX,
            "--port", str(node_port), "--workers", str(args.workers),
            "--cache-size", str(min(args.count, 1_000_000)),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(ROOT.parent / "src"))
        procs.append(subprocess.Popen(node_cmd, env=env))
        probe = f"/api/handles/{PREFIX}/R0000000"
        wait_http(f"http://127.0.0.1:{nginx_port}{probe}")
        wait_http(f"http://127.0.0.1:{node_port}/health")
        targets = (("nginx", nginx_port), ("gongyun", node_port))
        for _, port in targets:
            run_wrk(f"http://127.0.0.1:{port}", script, 3, args.connections, args.threads)  # warm-up
        for name, port in targets:
            url = f"http://127.0.0.1:{port}"
            results[name] = run_wrk(url, script, args.seconds, args.connections, args.threads)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    g, n = results["gongyun"], results["nginx"]
    ratio = g["rps"] / n["rps"]
    out = {
        "benchmark": "resolve",
        "identifiers": args.count,
        "seconds": args.seconds,
        "connections": args.connections,
        "workers": args.workers,
        "gongyun": g,
        "nginx": n,
        "ratio": ratio,
        "target_ratio": 0.4,
    }
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "resolve.json").write_text(json.dumps(out, indent=2))
    print(
        f"resolve: {g['rps']:,.0f} req/s = {ratio:.2f} x nginx ({n['rps']:,.0f} req/s), "
        f"p99 {g['p99_ms']:.1f} ms (nginx p99 {n['p99_ms']:.1f} ms, {args.count:,} identifiers)"
    )


if __name__ == "__main__":
    main()
