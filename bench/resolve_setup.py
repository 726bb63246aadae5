"""bench-resolve's fixtures: the records, the databases, nginx's files, wrk scripts, processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

from gongyun.db import Database, upgrade  # noqa: E402
from gongyun.idres import prefixes as pfx  # noqa: E402
from gongyun.idres.bulk import import_records  # noqa: E402
from gongyun.idres.registry import Registry  # noqa: E402
from gongyun.idres.schemes.gs1 import check_digit  # noqa: E402
from gongyun.idres.values import HandleValue, site_value, string_value  # noqa: E402

PREFIX = "88.100.1"
TENANT = "default"
SECRET = "bench-secret"
PG_ADMIN = os.environ.get("GONGYUN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("GONGYUN_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gtin(i: int) -> str:
    """The i-th benchmark GTIN-14."""
    body = f"0950{i:09d}"
    return body + str(check_digit(body))


def oid(i: int) -> str:
    """The i-th benchmark OID."""
    return f"1.2.156.99.{i}"


def ecode(i: int) -> str:
    """The i-th benchmark Ecode (V1, NSI 0001)."""
    return f"10001{i:010d}"


def record(i: int) -> tuple[str, list[HandleValue]]:
    """The i-th benchmark record."""
    suffix = f"R{i:07d}"
    return f"{PREFIX}/{suffix}", [
        string_value(1, "URL", f"https://plant.example/products/{suffix}"),
        string_value(2, "GY_NAME", f"Pump SN-{i:09d}"),
        string_value(3, "GS1_GTIN", gtin(i)),
        string_value(4, "OID", oid(i)),
        string_value(5, "ECODE", ecode(i)),
    ]


async def fill(url: str, count: int) -> None:
    """Migrate a database and import the records (with the served prefix and its admin)."""
    from gongyun.idres.nodes import NodeConfig, Role, prepare

    await upgrade(url)
    db = Database(url)
    try:
        async with db.session() as s:
            await pfx.submit(s, TENANT, PREFIX, "enterprise", status=pfx.FilingStatus.active)
        t0 = time.perf_counter()
        stats = await import_records(db, TENANT, [record(i) for i in range(count)], batch_size=20_000)
        took = time.perf_counter() - t0
        print(f"imported {stats.inserted:,} records into {db.dialect} in {took:.1f} s", file=sys.stderr)
    finally:
        await db.dispose()
    await prepare(NodeConfig(role=Role.enterprise, db_url=url, prefixes=[PREFIX], admin_secret=SECRET))


def build_sqlite(data: Path, count: int) -> Path:
    """The SQLite node database and nginx's static files (cached in ``data`` once complete)."""
    marker = data / "complete"
    static = data / "static" / "api" / "handles" / PREFIX
    if marker.exists():
        return data / "node.db"
    if data.exists():
        shutil.rmtree(data)
    static.mkdir(parents=True)
    asyncio.run(fill(f"sqlite+aiosqlite:///{data / 'node.db'}", count))
    conn = sqlite3.connect(data / "node.db")
    try:  # nginx serves exactly the bytes the node answers
        rows = conn.execute(
            "SELECT handle, COALESCE(public_json, values_json) FROM idres_records WHERE prefix_norm = ?",
            (PREFIX,),
        )
        for handle, public_json in rows:
            body = b'{"responseCode":1,"handle":' + json.dumps(handle).encode() + b',"values":'
            (static / handle.split("/", 1)[1]).write_bytes(body + public_json.encode() + b"}")
    finally:
        conn.close()
    marker.write_text(str(count))
    return data / "node.db"


def postgres_database(count: int) -> str:
    """A fresh PostgreSQL database holding the records (dropped by ``drop_postgres``)."""
    import psycopg

    name = f"gy_bench_resolve_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    asyncio.run(fill(url, count))
    return url


def drop_postgres(url: str) -> None:
    """Drop the benchmark's PostgreSQL database."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def drop_redis_keys(deployment_id: str) -> None:
    """Delete the resolution cache keys one deployment left in the benchmark's Redis."""
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"gy:{deployment_id}:idres:*", count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    except redis.RedisError:
        pass
    finally:
        client.close()


def refer(db_path: Path, port: int) -> None:
    """Make the SQLite node its own root: ``0.NA/88.100.1`` refers to it (for recursive nodes)."""

    async def go() -> None:
        db = Database(f"sqlite+aiosqlite:///{db_path}")
        try:
            await Registry(db).put(
                TENANT, f"0.NA/{PREFIX}", [site_value("127.0.0.1", port, ttl=86_400)], overwrite=True
            )
        finally:
            await db.dispose()

    asyncio.run(go())


def paths_script(tmp: Path, name: str, paths: list[str], header: str | None = None) -> Path:
    """A wrk script requesting random paths of a list (one file per path kind)."""
    listing = tmp / f"{name}.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = tmp / f"{name}.lua"
    hdr = f'wrk.headers["Authorization"] = "{header}"\n' if header else ""
    script.write_text(
        f"""{hdr}local paths = {{}}
for line in io.lines("{listing}") do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", paths[math.random(1, #paths)])
end
"""
    )
    return script


def sweep_script(tmp: Path, name: str, paths: list[str], threads: int) -> Path:
    """A wrk script walking the paths in order, each thread its own stride (every path once)."""
    listing = tmp / f"{name}.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = tmp / f"{name}.lua"
    script.write_text(
        f"""local counter = 0
setup = function(thread)
  thread:set("offset", counter)
  counter = counter + 1
end
local paths = {{}}
local n = 0
init = function(args)
  for line in io.lines("{listing}") do paths[#paths + 1] = line end
  n = offset
end
request = function()
  local p = paths[(n % #paths) + 1]
  n = n + {threads}
  return wrk.format("GET", p)
end
"""
    )
    return script


def run_wrk(url: str, script: Path, seconds: int, connections: int, threads: int) -> dict[str, float]:
    """Run wrk (under ``nice``) and parse requests/s, p99, max and non-2xx/3xx answers."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
    p99_raw = re.search(r"99%\s+([\d.]+)(us|ms|s|m)", out)
    lat = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99_raw.group(1)) * scale[p99_raw.group(2)] if p99_raw else float("nan"),
        "max_ms": float(lat.group(1)) * scale[lat.group(2)] if lat else float("nan"),
        "non_2xx_3xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def wait_http(url: str, timeout: float = 180.0) -> None:
    """Block until the URL answers (any status below 500)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def node(
    args: list[str], port: int, workers: int, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start an identifier node (``gongyun idnode``) with ``workers`` processes."""
    cmd = [sys.executable, "-m", "gongyun.cli.idres", *args, "--port", str(port), "--workers", str(workers)]
    env = dict(os.environ, PYTHONPATH=str(ROOT.parent / "src"), GONGYUN_IDNODE_SECRET=SECRET)
    env.update(extra_env or {})
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process we started (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


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
