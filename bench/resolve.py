"""bench-resolve: every resolution path of Gongyun beside nginx serving the same records.

In one run, with the same worker count and wrk settings for all (2 workers, ``wrk -t2 -c64``,
100,000 identifiers by default): nginx serving one static JSON file per identifier (measured
first and last; the anchor is their mean), then an enterprise node on SQLite and on
PostgreSQL (``/api/handles``), GS1 Digital Link ``/01/{gtin}`` (307), ``/oid/`` and
``/ecode/`` on the SQLite node, authenticated reads (Basic ``300:88.100.1/admin``), and
recursive nodes: a cache miss per request (beside its upstream, the SQLite node's fast path,
measured right before and right after it: the ratio is to their mean),
then hot with a memory and with a Redis cache (each warmed by a sweep over every identifier).
A sample of every path's answers is checked first. Authenticated reads report p99 and the
longest request as well (``--paths auth --seconds 120 --credential-ttl 20``: two minutes that
span several expiries of the remembered credential, each re-checked in the background).

Last, the SQLite node's valid throughput is measured again while bad input arrives: malformed
identifiers, 12 kB request targets (414), unknown identifiers (404) in turn, and 200
slowloris-style sockets trickling a header line every 2 s (reopened when the node times them
out), beside the same node's clean rate measured just before each such run. The flood runs at
a stated fixed rate first: 20 connections, each sending its next bad request 4 ms after the
previous answer (at most 5,000/s, about a tenth of what the node answers on this kind of
machine and far beyond what a node's own clients send by mistake: the attack share this
benchmark holds the node to; the rate reached is printed). Then as an unlimited flood
(``wrk -t1 -c16`` as fast as it goes): its own load generator competes with the node and the
valid load for the same cores, so that figure measures the machine as much as the node. Both
are reported (``--bad-rates 5000,0``, the default; ``0`` is the unlimited flood). Writes
bench/results/resolve.json; the last line is the summary.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resolve_setup as rs

ORDER = (
    "sqlite",
    "postgres",
    "gs1",
    "oid",
    "ecode",
    "recursive-memory",
    "recursive-redis",
    "recursive-miss",
    "auth",
)


def check(name: str, base: str, count: int, static: Path, auth: tuple[str, str] | None = None) -> int:
    """Compare 20 random answers of a path with what they must be; the number checked."""
    rng = random.Random(7)
    with httpx.Client(base_url=base, trust_env=False, timeout=30, follow_redirects=False) as c:
        for _ in range(20):
            i = rng.randrange(count)
            handle, values = rs.record(i)
            suffix = handle.split("/", 1)[1]
            if name == "gs1":
                r = c.get(f"/01/{rs.gtin(i)}")
                ok = r.status_code == 307 and r.headers["location"] == values[0].value
            elif name in {"oid", "ecode"}:
                r = c.get(f"/oid/{rs.oid(i)}" if name == "oid" else f"/ecode/{rs.ecode(i)}")
                ok = r.status_code == 200 and r.json()["handle"] == handle
            else:
                r = c.get(f"/api/handles/{handle}", auth=auth)
                expected = (static / suffix).read_bytes()
                ok = r.status_code == 200 and (r.content == expected or _same(r.json(), json.loads(expected)))
            if not ok:
                raise SystemExit(f"{name}: wrong answer for {handle}: {r.status_code} {r.text[:200]}")
    return 20


def _same(a: dict[str, object], b: dict[str, object]) -> bool:
    """The same record apart from the values' timestamps (another database imported it later)."""

    def strip(doc: dict[str, object]) -> object:
        values = doc.get("values")
        rows = (
            [{k: v for k, v in x.items() if k != "timestamp"} for x in values]
            if isinstance(values, list)
            else values
        )
        return {**doc, "values": rows}

    return strip(a) == strip(b)


def slowloris(port: int, stop: threading.Event, dropped: list[int], sockets: int = 200) -> None:
    """Hold ``sockets`` connections with requests that never finish (a header line every 2 s);
    a socket the node closes is counted in ``dropped`` and opened again."""

    def opened() -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET /api/handles/88.100.1/R0000001 HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            return s
        except OSError:
            return None

    held = [s for s in (opened() for _ in range(sockets)) if s is not None]
    while not stop.wait(2.0):
        for i, s in enumerate(held):
            try:
                if s.recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                pass  # nothing from the node: still held
            except OSError:
                dropped[0] += 1
                s.close()
                held[i] = opened() or s
                continue
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                dropped[0] += 1
                s.close()
                held[i] = opened() or s
    for s in held:
        s.close()


BAD_DELAY_MS = 4  # each flood connection waits this long between requests at a fixed rate


def bad_script(tmp: Path, rate: int) -> tuple[Path, int]:
    """Malformed identifiers, oversized paths and unknown identifiers, in turn; the script and
    its connections (``rate`` requests/s when above 0, else as fast as 16 connections go)."""
    connections = 16 if rate <= 0 else max(1, round(rate * BAD_DELAY_MS / 1000))
    script = tmp / f"bad-{rate}.lua"
    pace = f"delay = function() return {BAD_DELAY_MS} end\n" if rate > 0 else ""
    script.write_text(
        pace
        + """local n = 0
request = function()
  n = n + 1
  local k = n % 3
  if k == 0 then return wrk.format("GET", "/api/handles/%zz/%ff" .. n) end
  if k == 1 then return wrk.format("GET", "/api/handles/88.100.1/" .. string.rep("A", 12000)) end
  return wrk.format("GET", string.format("/api/handles/88.100.1/NOPE%09d", n))
end
"""
    )
    return script, connections


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warm", type=int, default=5, help="seconds of warm-up per path")
    ap.add_argument(
        "--max-sweep", type=int, default=90, help="longest warm-up sweep of a recursive cache (s)"
    )
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="worker processes of nginx and of every node")
    ap.add_argument("--paths", default=",".join(ORDER), help="comma-separated subset of: " + ", ".join(ORDER))
    ap.add_argument("--no-bad-input", action="store_true", help="skip the bad-input-under-load run")
    ap.add_argument(
        "--bad-rates",
        default="5000,0",
        help="bad requests/s of each bad-input run (0: an unlimited flood), comma-separated",
    )
    ap.add_argument(
        "--credential-ttl", type=float, default=60.0, help="seconds the SQLite node remembers a credential"
    )
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    wanted = [p for p in args.paths.split(",") if p]
    n, w, c, t = args.count, args.workers, args.connections, args.threads
    data = args.data or Path(tempfile.gettempdir()) / f"gongyun-bench-resolve-v2-{n}"
    db_path = rs.build_sqlite(data, n)
    static = data / "static" / "api" / "handles" / rs.PREFIX
    tmp = Path(tempfile.mkdtemp(prefix="gy-bench-resolve-"))
    ports = {k: rs.free_port() for k in ("nginx", "sqlite", "postgres", "rec-mem", "rec-redis", "rec-miss")}
    rs.refer(db_path, ports["sqlite"])
    pg_url = rs.postgres_database(n) if "postgres" in wanted else None
    root = f"http://127.0.0.1:{ports['sqlite']}"
    enterprise = ["--role", "enterprise", "--prefix", rs.PREFIX, "--cache-size", str(min(n, 1_000_000))]
    recursive = ["--role", "recursive", "--root", root, "--cache-size", str(min(n, 1_000_000) * 2)]
    # the Redis cache of this run only: entries (referrals to other runs' ports) are not inherited
    own_keys = {"GONGYUN_DEPLOYMENT_ID": f"bench-resolve-{tmp.name[-8:]}"}
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, float]] = {}
    checked = 0
    try:
        conf = rs.nginx_conf(tmp, data / "static", ports["nginx"], w)
        procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL))
        starts = {
            "sqlite": [
                *enterprise,
                "--db",
                f"sqlite+aiosqlite:///{db_path}",
                "--credential-ttl",
                str(args.credential_ttl),
            ],
            "rec-mem": [*recursive, "--cache", "memory"],
            "rec-redis": [*recursive, "--cache", rs.REDIS, "--max-ttl", "900"],
            "rec-miss": [*recursive, "--cache", "memory"],
        }
        if pg_url is not None:
            starts["postgres"] = [*enterprise, "--db", pg_url]
        for name, argv in starts.items():
            env = own_keys if name == "rec-redis" else None
            procs.append(rs.node(argv, ports[name], w, tmp / f"{name}.log", env))
        rs.wait_http(f"http://127.0.0.1:{ports['nginx']}/api/handles/{rs.PREFIX}/R0000000")
        for name in starts:
            rs.wait_http(f"http://127.0.0.1:{ports[name]}/health")
        url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        handles = [f"/api/handles/{rs.record(i)[0]}" for i in range(n)]
        scripts = {
            "handles": rs.paths_script(tmp, "handles", handles),
            "gs1": rs.paths_script(tmp, "gs1", [f"/01/{rs.gtin(i)}" for i in range(n)]),
            "oid": rs.paths_script(tmp, "oid", [f"/oid/{rs.oid(i)}" for i in range(n)]),
            "ecode": rs.paths_script(tmp, "ecode", [f"/ecode/{rs.ecode(i)}" for i in range(n)]),
            "sweep": rs.sweep_script(tmp, "sweep", handles, t),
        }
        import base64

        token = base64.b64encode(f"300:{rs.PREFIX}/admin:{rs.SECRET}".encode()).decode()
        scripts["auth"] = rs.paths_script(tmp, "auth", handles, header=f"Basic {token}")
        admin = (f"300:{rs.PREFIX}/admin", rs.SECRET)

        # correctness first: a sample of every path
        targets = {
            "sqlite": ("handles", url["sqlite"]),
            "postgres": ("handles", url["postgres"]),
            "gs1": ("gs1", url["sqlite"]),
            "oid": ("oid", url["sqlite"]),
            "ecode": ("ecode", url["sqlite"]),
            "auth": ("auth", url["sqlite"]),
            "recursive-memory": ("handles", url["rec-mem"]),
            "recursive-redis": ("handles", url["rec-redis"]),
        }
        for name in wanted:
            if name in targets:
                checked += check(name, targets[name][1], n, static, admin if name == "auth" else None)

        def measure(name: str, script: str, base: str, warm: int) -> dict[str, float]:
            if warm:
                rs.run_wrk(base, scripts[script], warm, c, t)
            res = rs.run_wrk(base, scripts[script], args.seconds, c, t)
            print(
                f"  {name}: {res['rps']:,.0f} req/s, p99 {res['p99_ms']:.1f} ms, max {res['max_ms']:.0f} ms",
                file=sys.stderr,
            )
            return res

        nginx_runs = [measure("nginx", "handles", url["nginx"], args.warm)]
        for name in wanted:
            if name in targets and not name.startswith("recursive"):
                results[name] = measure(name, targets[name][0], targets[name][1], args.warm)
        upstream_runs: list[dict[str, float]] = []
        if "recursive-miss" in wanted:  # a fresh cache and a walk over new identifiers: every request misses
            # its upstream (the SQLite node's fast path) right before and right after, as nginx
            upstream_runs.append(measure("upstream", "handles", url["sqlite"], args.warm))
            results["recursive-miss"] = measure("recursive-miss", "sweep", url["rec-miss"], 0)
            upstream_runs.append(measure("upstream", "handles", url["sqlite"], 0))
        for name, port in (("recursive-memory", "rec-mem"), ("recursive-redis", "rec-redis")):
            if name in wanted:  # every identifier fetched once: the sweep's rate says how long that takes
                probe = rs.run_wrk(url[port], scripts["sweep"], 3, c, t)["rps"]
                sweep = int(min(args.max_sweep, n / max(probe, 1.0) * 1.3 + 2))
                rs.run_wrk(url[port], scripts["sweep"], sweep, c, t)
                results[name] = measure(name, "handles", url[port], args.warm)
        bad: dict[str, dict[str, float]] = {}
        rates = [] if args.no_bad_input else [int(r) for r in args.bad_rates.split(",") if r.strip()]
        for rate in rates:
            # the clean run just before: on a shared machine the rate drifts within minutes
            clean = measure("sqlite (clean, just before)", "handles", url["sqlite"], 0)
            results.setdefault("sqlite", clean)
            stop_flag = threading.Event()
            dropped = [0]
            loris = threading.Thread(
                target=slowloris, args=(ports["sqlite"], stop_flag, dropped), daemon=True
            )
            loris.start()
            script, conns = bad_script(tmp, rate)
            cmd = ["wrk", "-t1", f"-c{conns}", f"-d{args.seconds + args.warm + 2}s", "-s", str(script)]
            flood = subprocess.Popen([*cmd, url["sqlite"]], stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            under = measure(
                f"sqlite under bad input ({rate or 'unlimited'}/s)", "handles", url["sqlite"], args.warm
            )
            flood_out = flood.communicate()[0]
            stop_flag.set()
            loris.join(10)
            found = re.search(r"Requests/sec:\s+([\d.]+)", flood_out)
            bad[str(rate)] = {
                "valid_rps": under["rps"],
                "clean_rps": clean["rps"],
                "ratio": under["rps"] / clean["rps"],
                "p99_ms": under["p99_ms"],
                "bad_rps": float(found.group(1)) if found else float("nan"),
                "slowloris_timed_out": float(dropped[0]),
            }
        nginx_runs.append(measure("nginx", "handles", url["nginx"], 0))
    finally:
        for proc in reversed(procs):
            rs.stop(proc)
        if pg_url is not None:
            rs.drop_postgres(pg_url)
        if "recursive-redis" in wanted:
            rs.drop_redis_keys(own_keys["GONGYUN_DEPLOYMENT_ID"])
        shutil.rmtree(tmp, ignore_errors=True)
    anchor = statistics.mean(r["rps"] for r in nginx_runs)
    ratios = {k: results[k]["rps"] / anchor for k in ORDER if k in results}
    upstream = None
    if upstream_runs:
        upstream = results["recursive-miss"]["rps"] / statistics.mean(r["rps"] for r in upstream_runs)
    out = {
        "benchmark": "resolve",
        "identifiers": n,
        "seconds": args.seconds,
        "connections": c,
        "threads": t,
        "workers": w,
        "nginx_runs": nginx_runs,
        "nginx_rps": anchor,
        "paths": results,
        "ratios": ratios,
        "recursive_miss_vs_upstream": upstream,
        "upstream_runs": upstream_runs,
        "bad_input": bad,
        "answers_checked": checked,
        "credential_ttl": args.credential_ttl,
        "target": {
            "every_path": 0.3,
            "sqlite": 0.6,
            "recursive_miss_vs_upstream": 0.5,
            "bad_input": 0.8,
            "auth_p99_ms": 10,
            "auth_max_ms": 100,
        },
    }
    (rs.ROOT / "results").mkdir(exist_ok=True)
    (rs.ROOT / "results" / "resolve.json").write_text(json.dumps(out, indent=2))
    if upstream is not None:
        print(f"recursive miss: {upstream:.2f} x its upstream (the SQLite node's fast path, before/after)")
    for rate, b in bad.items():
        what = (
            f"{b['bad_rps']:,.0f} bad req/s (fixed rate {int(rate):,}/s)"
            if rate != "0"
            else (f"an unlimited flood ({b['bad_rps']:,.0f} bad req/s)")
        )
        print(
            f"bad input under load: valid requests at {b['ratio']:.2f} x the clean run with {what} "
            f"and 200 slowloris sockets ({b['slowloris_timed_out']:.0f} timed out by the node)"
        )
    if "auth" in results:
        a = results["auth"]
        print(
            f"auth over {args.seconds} s: p99 {a['p99_ms']:.1f} ms, max {a['max_ms']:.0f} ms "
            f"(credential remembered {args.credential_ttl:g} s, re-checked ahead)"
        )
    parts = ", ".join(f"{k} {v:.2f} x" for k, v in ratios.items())
    worst = min(ratios.values(), default=float("nan"))
    print(f"resolve: {parts} nginx (nginx {anchor:,.0f} req/s); worst {worst:.2f} x")


if __name__ == "__main__":
    main()
