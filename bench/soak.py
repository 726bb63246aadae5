"""bench/soak: load and soak of the server profile with faults, checked for loss and duplicates.

Starts its own PostgreSQL cluster, NATS server (JetStream) and Mosquitto on free loopback ports
(data in a scratch directory), and two API processes (``gongyun --config server.toml serve
--port P``, server profile), the first with ``sparkplug_receiver = "on"`` and a Sparkplug group of
the first tenant. It creates ``--tenants`` tenants and ``--devices`` devices (one tag ``v`` each;
``--sparkplug-share`` of them Sparkplug metrics, the rest HTTP writers) spread over them, then for
``--duration`` seconds:

- HTTP batch writers, in ``--writer-processes`` processes: every device posts ``--batch``
  samples every ``--period`` seconds to ``POST /api/v1/telemetry/ingest``, alternating between
  the two API processes (the other one when a process does not answer). Only samples
  acknowledged by a 2xx answer (and not listed as rejected) are counted.
- Sparkplug B: ``--sparkplug-nodes`` gateways as Gongyun's edge runs them (a store-and-forward
  buffer and the Sparkplug uplink) publish through that Mosquitto to the receiver in the first
  process, which confirms what it stored; every point confirmed to a gateway must be stored.
- Faults: ``--faults`` times, evenly spaced, in turn: ``kill -9`` of the second API process and
  its restart (the writers keep going against the first); ``kill -9`` of Mosquitto and its
  restart (the nodes birth again); ``kill -9`` of the NATS server and its restart on the same
  store; an immediate shutdown of PostgreSQL (no checkpoint: WAL recovery on start, as after a
  crash) and its restart.

Every ``--sample-every`` seconds it records each API process's RSS (``/proc``) and its ingest lag
(from the processes' own ``gongyun_telemetry_ingest_lag_seconds`` histograms). At the end it waits
for the store to catch up, then checks in PostgreSQL that every acknowledged HTTP sample is stored
exactly once (per tag and ``ts``), and prints throughput, p50/p99 API latency, the lag over time
and each process's memory growth; the figures go to ``bench/results/soak.json`` and one summary
line is printed last. It exits 1 when an acknowledged sample is lost or duplicated, and (unless
``--lenient``) when a process's memory grew more than ``--max-rss-growth`` percent after warm-up
or when fewer than half of the requests were served. Processes and data are removed whatever happens.

    .venv/bin/python bench/soak.py [--duration 600] [--devices 1000] [--tenants 10] [--faults 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import multiprocessing
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_load import (
    Checked,
    GatewayLog,
    Stats,
    WriterPlan,
    alarm_and_identifier_writers,
    run_writers,
    sparkplug_gateways,
)
from soak_services import GONGYUN, Api, Broker, PrivateNats, PrivatePostgres, free_port

RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
ADMIN_PASSWORD = secrets.token_hex(12)
DATABASE = "gongyun"
FAULT_KINDS = ("api", "mosquitto", "nats", "postgres")
LAG_METRIC = "gongyun_telemetry_ingest_lag_seconds"
HOST_ID = (
    "gongyun"  # the receiver's Sparkplug host id (setting sparkplug_host_id), the gateways' primary host
)


def admin_db(pg: PrivatePostgres, sql: str) -> None:
    """Run one statement on the cluster's maintenance database (names made here, not user input)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.encode())


def setup_server(
    home: Path, pg: PrivatePostgres, nats: PrivateNats, group: str, sp_tenant: str, mqtt_port: int
) -> tuple[Api, Api]:
    """server.toml, secrets and the migrated database; the two (not yet started) processes."""
    common = (
        'profile = "server"\n'
        f'database_url = "postgresql+psycopg://postgres@127.0.0.1:{pg.port}/{DATABASE}"\n'
        f'bus_url = "{nats.url}"\n'
        'deployment_id = "soak"\n'
        f'mqtt_url = "mqtt://127.0.0.1:{mqtt_port}"\n'
        'host = ["127.0.0.1"]\n'
        'log_format = "json"\n'
    )
    (home / "server.toml").write_text(common + f'data_dir = "{home / "var-2"}"\nsparkplug_receiver = "off"\n')
    (home / "server-sp.toml").write_text(
        common + f'data_dir = "{home / "var-1"}"\nsparkplug_receiver = "on"\n'
        f'sparkplug_groups = {{ {group} = "{sp_tenant}" }}\n'
    )
    keep = {k: v for k, v in os.environ.items() if not k.startswith("GONGYUN_")}
    env = {
        **keep,
        "GONGYUN_SECRET_KEY": secrets.token_hex(32),
        "GONGYUN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GONGYUN_LOG_LEVEL": "WARNING",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    subprocess.run(
        [str(GONGYUN), "--config", "server.toml", "db", "upgrade"],
        cwd=home,
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    one = Api("api-1", free_port(), env, home, "server-sp.toml")
    two = Api("api-2", free_port(), env, home)
    _RUNNING.extend([one, two])
    return one, two


async def provision(
    client: httpx.AsyncClient, base: str, tenants: list[str], devices: int, sp_tenant: str, sp_tags: list[str]
) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str]]:
    """Tenants, devices, tags and each tenant's alarm rule: (tenant name -> id, [(tenant id,
    device/tag)] of the HTTP devices, tenant id -> identifier prefix)."""
    token = await client.post(
        f"{base}/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    token.raise_for_status()
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    ids: dict[str, str] = {}
    for name in tenants:
        r = await client.post(f"{base}/api/v1/tenants", json={"name": name}, headers=auth)
        r.raise_for_status()
        ids[name] = str(r.json()["id"])
    sem = asyncio.Semaphore(8)

    async def device(tenant_id: str, name: str, tags: list[str]) -> None:
        headers = {**auth, "x-tenant": tenant_id}
        async with sem:
            r = await client.post(f"{base}/api/v1/assets/devices", json={"name": name}, headers=headers)
            if r.status_code != 201:
                raise RuntimeError(f"creating device {name}: {r.status_code} {r.text}")
            dev_id = r.json()["id"]
            for tag in tags:
                t = await client.post(
                    f"{base}/api/v1/assets/devices/{dev_id}/tags", json={"name": tag}, headers=headers
                )
                t.raise_for_status()

    prefixes: dict[str, str] = {}
    for name in tenants:  # one device per tenant whose tag the rule "soak high" watches
        headers = {**auth, "x-tenant": ids[name]}
        r = await client.post(f"{base}/api/v1/assets/devices", json={"name": "alarm"}, headers=headers)
        r.raise_for_status()
        prefixes[ids[name]] = str(r.json()["identifier"]).split("/")[0]
        t = await client.post(
            f"{base}/api/v1/assets/devices/{r.json()['id']}/tags", json={"name": "v"}, headers=headers
        )
        t.raise_for_status()
        rule = {"kind": "threshold", "name": "soak high", "tag": "alarm/v", "limit": 50.0}
        (await client.post(f"{base}/api/v1/alarms/rules", json=rule, headers=headers)).raise_for_status()
    http_tags = [(ids[tenants[i % len(tenants)]], f"d{i:05d}/v") for i in range(devices)]
    jobs = [device(tid, ref.split("/")[0], ["v"]) for tid, ref in http_tags]
    sp_devices: dict[str, list[str]] = {}
    for ref in sp_tags:
        dev, tag = ref.split("/")
        sp_devices.setdefault(dev, []).append(tag)
    jobs += [device(ids[sp_tenant], dev, tags) for dev, tags in sp_devices.items()]
    # one tenant at a time first: concurrent first devices of several tenants race for their
    # identifier prefixes and give up after a few attempts (identifier_prefix_not_served)
    first: set[str] = set()
    rest = []
    for job, tid in zip(jobs, [t for t, _ in http_tags] + [ids[sp_tenant]] * len(sp_devices), strict=True):
        if tid in first:
            rest.append(job)
        else:
            first.add(tid)
            await job
    await asyncio.gather(*rest)
    return {"__auth__": auth["Authorization"], **ids}, http_tags, prefixes


def stored_total(dsn: str) -> int:
    """Points stored in the scratch database."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM ts_raw_points").fetchone()
        return int(row[0]) if row else 0


def verify(dsn: str, stats: Stats, sp_tenant_id: str, gateways: GatewayLog) -> dict[str, int]:
    """Acknowledged HTTP samples and confirmed Sparkplug points missing from the store, and
    duplicate (tenant, tag, ts) rows."""
    buf = io.StringIO()
    for (tenant, tag), ts in stats.acked.items():
        for t in ts:
            buf.write(f"http\t{tenant}\t{tag}\t{t}\n")
    for tag, t in gateways.confirmed_points():
        buf.write(f"sp\t{sp_tenant_id}\t{tag}\t{t}\n")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE acked (kind TEXT, tenant TEXT, tag TEXT, ts BIGINT)")
        with conn.cursor().copy("COPY acked FROM STDIN") as copy:
            copy.write(buf.getvalue())
        lost: dict[str, int] = dict(
            conn.execute(
                """SELECT kind, count(*) FROM acked a WHERE NOT EXISTS (
                     SELECT 1 FROM ts_raw_points p JOIN ts_series s USING (sid)
                     WHERE s.tenant = a.tenant AND s.tag = a.tag AND p.ts = a.ts) GROUP BY kind"""
            ).fetchall()
        )
        dup = conn.execute(
            """SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM ts_raw_points p
                 JOIN ts_series s USING (sid) GROUP BY s.tenant, s.tag, p.ts HAVING count(*) > 1) d"""
        ).fetchone()
        acked_dup = conn.execute("SELECT count(*) - count(DISTINCT (tenant, tag, ts)) FROM acked").fetchone()
        stored: dict[str, int] = dict(
            conn.execute(
                "SELECT CASE WHEN s.tag LIKE 'sp%%' THEN 'sp' ELSE 'http' END, count(*)"
                " FROM ts_raw_points p JOIN ts_series s USING (sid)"
                " WHERE s.tag NOT LIKE 'alarm/%%' GROUP BY 1"
            ).fetchall()
        )
    return {
        "lost": int(lost.get("http", 0)),
        "lost_sp": int(lost.get("sp", 0)),
        "duplicated": int(dup[0]) if dup else -1,
        "acked_twice": int(acked_dup[0]) if acked_dup else -1,
        "stored_http": int(stored.get("http", 0)),
        "stored_sp": int(stored.get("sp", 0)),
    }


def verify_alarms_and_identifiers(dsn: str, checked: Checked, grace: float) -> dict[str, dict[str, int]]:
    """Each acknowledged excursion raised its tenant's alarm exactly once (an ``unack_active``
    transition at the high point's time); each acknowledged registration is stored."""
    acked = {(tenant, t) for tenant, ts in checked.raises.items() for t in ts}
    deadline = time.monotonic() + grace
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:  # the engine evaluates and saves shortly after the points are stored
            rows = conn.execute(
                "SELECT tenant_id, (extract(epoch FROM ts) * 1000000)::bigint, count(*) FROM alarm_events"
                " WHERE name = 'soak high' AND after = 'unack_active' GROUP BY 1, 2"
            ).fetchall()
            raised = {(tenant, int(us)): int(n) for tenant, us, n in rows}
            missing = [key for key in acked if key not in raised]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        handles = [h for hs in checked.handles.values() for h in hs]
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT handle FROM idres_records WHERE handle = ANY(%s)", (handles,)
            ).fetchall()
        }
    return {
        "alarms": {
            "acknowledged_excursions": len(acked),
            "raised": sum(raised.values()),
            "lost": len(missing),
            "raised_twice": sum(n - 1 for key, n in raised.items() if n > 1 and key in acked),
        },
        "identifiers": {
            "acknowledged": len(handles),
            "stored": len(stored),
            "lost": len(set(handles) - stored),
        },
    }


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_growth(api: Api, warmup: float) -> float | None:
    """Percent RSS change of the last incarnation from after warm-up to the end."""
    last = [(t, kib) for t, inc, kib in api.rss if inc == api.incarnation]
    if len(last) < 4:
        return None
    start = last[0][0] + warmup
    later = [kib for t, kib in last if t >= start] or [kib for _, kib in last[len(last) // 2 :]]
    return 100.0 * (later[-1] - later[0]) / later[0]


async def scrape_lag(api: Api, auth: str) -> tuple[float, float] | None:
    """(sum, count) of the process's ingest-lag histogram, None when it does not answer."""
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=3, trust_env=False) as client:
            r = await client.get(f"{api.base}/metrics", headers={"Authorization": auth})
            if r.status_code == 200:
                found = dict(re.findall(rf"^{LAG_METRIC}_(sum|count) ([0-9.e+-]+)$", r.text, re.MULTILINE))
                if "sum" in found and "count" in found:
                    return float(found["sum"]), float(found["count"])
    return None


class LagSeries:
    """Mean ingest lag of each sampling interval, per process (from the histogram's sum and count)."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[int, float, float]] = {}
        self.points: dict[str, list[tuple[float, float]]] = {}

    def add(self, api: Api, t: float, scraped: tuple[float, float] | None) -> None:
        """Record the interval since the previous scrape of the same incarnation."""
        if scraped is None:
            return
        prev = self.last.get(api.name)
        self.last[api.name] = (api.incarnation, *scraped)
        if prev is None or prev[0] != api.incarnation:
            return
        n = scraped[1] - prev[2]
        if n > 0:
            mean = (scraped[0] - prev[1]) / n
            self.points.setdefault(api.name, []).append((round(t, 1), round(mean, 3)))

    def worst(self) -> float:
        """The largest interval mean seen (0 without any)."""
        return max((lag for pts in self.points.values() for _, lag in pts), default=0.0)


async def inject(kind: str, apis: list[Api], broker: Broker, nats: PrivateNats, pg: PrivatePostgres) -> float:
    """One fault and the recovery from it; seconds until the service was back."""
    t0 = time.monotonic()
    if kind == "api":
        apis[1].kill9()
        apis[1].start()
        return await asyncio.to_thread(apis[1].wait_ready)
    if kind == "mosquitto":
        broker.stop()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.start)
    elif kind == "nats":
        nats.stop()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(nats.start)
    else:
        await asyncio.to_thread(pg.crash)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(pg.start)
    return time.monotonic() - t0


def writer_plans(
    args: argparse.Namespace, apis: list[Api], auth: str, tags: list[tuple[str, str]], stop_file: Path
) -> list[WriterPlan]:
    """The HTTP devices dealt out to the writer processes."""
    devices = [(k, tid, tag) for k, (tid, tag) in enumerate(tags)]
    n = max(1, args.writer_processes)
    deadline = time.time() + args.duration
    return [
        WriterPlan(
            bases=[api.base for api in apis],
            auth=auth,
            devices=devices[i::n],
            total_devices=len(devices),
            period=args.period,
            batch=args.batch,
            connections=max(4, args.connections // n),
            deadline=deadline,
            stop_file=str(stop_file),
        )
        for i in range(n)
    ]


async def soak(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Start the services, run the load with its faults; the figures."""
    run = uuid.uuid4().hex[:8]
    tenants = [f"soak-{run}-{i}" for i in range(args.tenants)]
    group, sp_tenant = f"soak{run}", tenants[0]  # the Sparkplug devices belong to the first tenant
    sp_count = round(args.devices * args.sparkplug_share)
    sp_tags = [f"sp{i:05d}/v" for i in range(sp_count)]
    pg, nats, broker = PrivatePostgres(home), PrivateNats(home), Broker(home)
    _SERVICES.extend([broker, nats, pg])
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    admin_db(pg, f'CREATE DATABASE "{DATABASE}"')
    nats.start()
    broker.start()
    dsn = pg.dsn(DATABASE)
    apis = list(setup_server(home, pg, nats, group, sp_tenant, broker.port))
    stats = Stats()
    # the Sparkplug group's tenant must exist before the receiver's process starts
    apis[1].start()
    apis[1].wait_ready()
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        ids, http_tags, prefixes = await provision(
            client, apis[1].base, tenants, args.devices - sp_count, sp_tenant, sp_tags
        )
    auth = ids["__auth__"]
    apis[0].start()
    apis[0].wait_ready()
    print(
        f"soak: {len(http_tags)} HTTP devices in {args.writer_processes} writer processes, "
        f"{len(sp_tags)} Sparkplug points, {args.tenants} tenants; running {args.duration} s",
        flush=True,
    )
    stop_file = home / "stop-writers"
    sp_stop, gateway_log = threading.Event(), GatewayLog()
    t_start, wall_start = time.monotonic(), time.time()
    sp_thread = threading.Thread(
        target=sparkplug_gateways,
        args=(
            home,
            group,
            args.sparkplug_nodes,
            sp_tags,
            args.period,
            broker.port,
            "gongyun",
            sp_stop,
            gateway_log,
        ),
        daemon=True,
    )
    if sp_tags:
        sp_thread.start()
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(
        len(plans := writer_plans(args, apis, auth, http_tags, stop_file)),
        mp_context=multiprocessing.get_context("spawn"),
    )
    writers = [loop.run_in_executor(pool, run_writers, plan) for plan in plans]
    checked, stop_checked = Checked(), asyncio.Event()
    checked_writers = asyncio.create_task(
        alarm_and_identifier_writers(
            [a.base for a in apis], auth, prefixes, args.period, stop_checked, checked
        )
    )
    faults: list[dict[str, Any]] = []
    fault_at = [args.duration * (i + 1) / (args.faults + 1) for i in range(args.faults)]
    lag = LagSeries()
    next_sample = 0.0
    interrupted = asyncio.Event()  # Ctrl-C or SIGTERM: end the load now, still check and clean up
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    while (elapsed := time.monotonic() - t_start) < args.duration and not interrupted.is_set():
        if elapsed >= next_sample:
            for api in apis:
                api.sample_rss(elapsed)
                lag.add(api, elapsed, await scrape_lag(api, auth))
            next_sample = elapsed + args.sample_every
        if fault_at and elapsed >= fault_at[0]:
            fault_at.pop(0)
            kinds = [k for k in FAULT_KINDS if k != "mosquitto" or sp_tags]
            kind = kinds[len(faults) % len(kinds)]
            back = await inject(kind, apis, broker, nats, pg)
            faults.append({"at_s": round(elapsed, 1), "kind": kind, "back_after_s": round(back, 2)})
            print(f"soak: {elapsed:.0f} s crash of {kind}, back after {back:.1f} s", flush=True)
        await asyncio.sleep(0.5)
    stop_file.touch()
    stop_checked.set()
    sp_stop.set()
    await checked_writers
    for done in await asyncio.gather(*writers):
        stats.merge(done)
    pool.shutdown()
    wrote_s = time.monotonic() - t_start
    if sp_tags:
        sp_thread.join(60)
    sp_sent = sum(len(rows) for rows in gateway_log.appended.values())
    acked = sum(len(v) for v in stats.acked.values())
    # catching up: until every acknowledged HTTP sample plus the Sparkplug ones are counted (or --grace)
    t_end = time.monotonic()
    total = before = -1
    while time.monotonic() - t_end < args.grace:
        total = await asyncio.to_thread(stored_total, dsn)
        if total >= acked + sp_sent or (total == before and time.monotonic() - t_end > 5):
            break
        before = total
        await asyncio.sleep(0.5)
    catch_up = time.monotonic() - t_end
    for api in apis:
        api.sample_rss(time.monotonic() - t_start)
    check = await asyncio.to_thread(verify, dsn, stats, ids[sp_tenant], gateway_log)
    check_ac = await asyncio.to_thread(verify_alarms_and_identifiers, dsn, checked, args.grace)
    growth = {api.name: rss_growth(api, args.warmup) for api in apis}
    return {
        "devices": args.devices,
        "tenants": args.tenants,
        "duration_s": round(wrote_s, 1),
        "faults": faults,
        "http": {
            "requests": stats.requests,
            "failed_requests": stats.failed,
            "failed_at_s": {round(slot - wall_start): n for slot, n in sorted(stats.failed_at.items())},
            "acknowledged": acked,
            "rejected": stats.rejected,
            "stored": check["stored_http"],
            "lost": check["lost"],
            "acknowledged_twice": check["acked_twice"],
            "throughput_per_s": round(acked / wrote_s, 1),
            "latency_ms": {
                "p50": round(1000 * percentile(stats.latencies, 0.5), 1),
                "p99": round(1000 * percentile(stats.latencies, 0.99), 1),
                "max": round(1000 * max(stats.latencies, default=0.0), 1),
            },
        },
        "sparkplug": {
            "points": len(sp_tags),
            "buffered": sp_sent,
            "confirmed": len(gateway_log.confirmed_points()),
            "stored": check["stored_sp"],
            "lost": check["lost_sp"],
            "replays": gateway_log.replays,
        },
        "duplicated": check["duplicated"],
        "alarms": check_ac["alarms"],
        "identifiers": check_ac["identifiers"],
        "ingest_lag_s": {"worst_interval_mean": round(lag.worst(), 3), "series": lag.points},
        "catch_up_s": round(catch_up, 2),
        "rss_kib": {api.name: api.rss for api in apis},
        "rss_growth_pct": growth,
    }


def summary(r: dict[str, Any]) -> str:
    """The one-line summary."""
    samples = r["http"]["acknowledged"] + r["sparkplug"]["confirmed"]
    human = (
        f"{samples / 1e6:.1f}M"
        if samples >= 1e6
        else f"{samples / 1e3:.0f}k"
        if samples >= 1e4
        else str(samples)
    )
    growth = [g for g in r["rss_growth_pct"].values() if g is not None]
    rss = f"RSS {max(growth, key=abs):+.0f} %" if growth else "RSS n/a"
    return (
        f"soak: {r['devices']:,} devices, {r['tenants']} tenants, "
        f"{r['duration_s']:.0f} s, {len(r['faults'])} faults; "
        f"{human} samples, {r['http']['lost'] + r['sparkplug']['lost']} lost, {r['duplicated']} duplicated; "
        f"{r['alarms']['acknowledged_excursions']} alarms, {r['alarms']['lost']} lost, "
        f"{r['alarms']['raised_twice']} twice; {r['identifiers']['acknowledged']} registrations, "
        f"{r['identifiers']['lost']} lost; "
        f"p99 API {r['http']['latency_ms']['p99']:.0f} ms; "
        f"lag {r['ingest_lag_s']['worst_interval_mean']:.1f} s; {rss}"
    )


def failures(r: dict[str, Any], max_growth: float) -> tuple[list[str], list[str]]:
    """Why this run fails: (lost or duplicated data, expectations of a healthy run not met)."""
    fatal, unmet = [], []
    if r["http"]["lost"] or r["duplicated"] or r["http"]["acknowledged_twice"]:
        fatal.append("acknowledged samples lost or duplicated")
    if r["sparkplug"]["lost"]:
        fatal.append(f"points confirmed to a gateway are not stored: {r['sparkplug']}")
    if r["alarms"]["lost"] or r["alarms"]["raised_twice"]:
        fatal.append(f"alarm excursions lost or raised twice: {r['alarms']}")
    if r["identifiers"]["lost"]:
        fatal.append(f"acknowledged identifier registrations lost: {r['identifiers']}")
    grown = {k: round(g, 1) for k, g in r["rss_growth_pct"].items() if g is not None and g > max_growth}
    if grown:
        unmet.append(f"memory grew more than {max_growth:g} % after warm-up: {grown}")
    if r["http"]["requests"] and r["http"]["failed_requests"] > r["http"]["requests"] / 2:
        unmet.append("fewer than half of the requests were served")
    return fatal, unmet


def main() -> int:
    """Parse arguments, run, always clean up; exit 1 when the run failed (see the module's docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--devices", type=int, default=1000, help="simulated devices (HTTP and Sparkplug)")
    p.add_argument("--tenants", type=int, default=10)
    p.add_argument("--faults", type=int, default=4, help="crashes, evenly spaced: " + ", ".join(FAULT_KINDS))
    p.add_argument("--batch", type=int, default=10, help="samples per HTTP batch")
    p.add_argument("--period", type=float, default=10.0, help="seconds between a device's batches")
    p.add_argument("--connections", type=int, default=64, help="HTTP connections over all writer processes")
    p.add_argument("--writer-processes", type=int, default=2)
    p.add_argument("--sparkplug-nodes", type=int, default=4)
    p.add_argument("--sparkplug-share", type=float, default=0.1, help="part of the devices on Sparkplug")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS and lag samples")
    p.add_argument(
        "--warmup", type=float, default=120.0, help="seconds of each process not counted in RSS growth"
    )
    p.add_argument("--max-rss-growth", type=float, default=10.0, help="percent, after warm-up")
    p.add_argument("--grace", type=float, default=120.0, help="longest wait for the store to catch up")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="fail only on lost or duplicated data; memory growth and failed requests are warnings",
    )
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="gy-soak-"))
    try:
        result = asyncio.run(soak(args, home))
    finally:
        _stop_children(home)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("rss_kib", "ingest_lag_s")}, indent=2))
    print(f"ingest lag, mean per {args.sample_every:g} s interval: {result['ingest_lag_s']['series']}")
    fatal, unmet = failures(result, args.max_rss_growth)
    for reason in fatal:
        print(f"soak: FAILED: {reason}")
    for reason in unmet:
        print(f"soak: {'WARNING' if args.lenient else 'FAILED'}: {reason}")
    print(summary(result))
    return 1 if fatal or (unmet and not args.lenient) else 0


_RUNNING: list[Api] = []
_SERVICES: list[Broker | PrivateNats | PrivatePostgres] = []


def _stop_children(home: Path) -> None:
    """Stop every process this run started, bounded in time, and remove its data."""
    for api in _RUNNING:
        api.stop()
    _RUNNING.clear()
    for service in _SERVICES:
        service.stop()
    _SERVICES.clear()
    with contextlib.suppress(OSError):
        subprocess.run(["rm", "-rf", str(home)], check=False, timeout=30)


if __name__ == "__main__":
    sys.exit(main())
