"""bench/soak: load and soak of the server profile with kill -9 faults, checked for loss and duplicates.

Starts a scratch PostgreSQL database (trust auth on 127.0.0.1:5432) and two API processes
(``gongyun --config server.toml serve --port P``, server profile, the local NATS at 4222), the
first with ``sparkplug_receiver = "on"`` and a Sparkplug group of the first tenant. It creates
``--tenants`` tenants and ``--devices`` devices (one tag ``v`` each; ``--sparkplug-share`` of them
Sparkplug metrics, the rest HTTP writers) spread over them, then for
``--duration`` seconds:

- HTTP batch writers: every device posts ``--batch`` samples every ``--period`` seconds to
  ``POST /api/v1/telemetry/ingest``, alternating between the two processes (the other one
  when a process does not answer). Only samples acknowledged by a 2xx answer (and not listed as
  rejected) are counted.
- Sparkplug B: ``--sparkplug-nodes`` edge nodes publish NBIRTH/NDATA through that Mosquitto,
  encoded as the gateway's uplink encodes them, to the receiver in the first process. NDATA
  goes at QoS 0 and this publisher gets no confirmations, so these points are reported
  (published, stored) but are not part of the loss check.
- Faults: ``--faults`` times, evenly spaced, in turn ``kill -9`` of the second API process and
  its restart (the writers keep going against the first), and ``kill -9`` of the private
  Mosquitto the harness started (on a free port) and its restart (the nodes birth again).

At the end it waits for the store to catch up (the ingest lag), then checks in PostgreSQL that
every acknowledged HTTP sample is stored exactly once (per tag and ``ts``), and prints
throughput, p50/p99 API latency, the lag and each process's RSS over time (``/proc``); the
figures go to ``bench/results/soak.json`` and one summary line is printed last. Processes and
the scratch database are removed whatever happens.

    .venv/bin/python bench/soak.py [--duration 600] [--devices 1000] [--tenants 10] [--faults 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ADMIN_DSN = os.environ.get("GONGYUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("GONGYUN_TEST_NATS", "nats://127.0.0.1:4222")
MQTT_HOST = "127.0.0.1"
RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
GONGYUN = Path(sys.executable).parent / "gongyun"
ADMIN_PASSWORD = secrets.token_hex(12)


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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

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


@dataclass
class Stats:
    """What the writers saw: acknowledged timestamps per (tenant id, tag), latencies, errors."""

    acked: dict[tuple[str, str], array[int]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    rejected: int = 0
    sp_published: int = 0


def admin_db(sql: str) -> None:
    """Run one statement on the maintenance database (names made here, not user input)."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.encode())


def setup_server(home: Path, db: str, group: str, sp_tenant: str, mqtt_port: int) -> tuple[Api, Api]:
    """server.toml, secrets and the migrated database; the two (not yet started) processes."""
    common = (
        'profile = "server"\n'
        f'database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"\n'
        f'bus_url = "{NATS_URL}"\n'
        f'deployment_id = "{db}"\n'
        f'mqtt_url = "mqtt://{MQTT_HOST}:{mqtt_port}"\n'
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
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Tenants, devices and tags; (tenant name -> id, [(tenant id, device/tag)] of the HTTP devices)."""
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
    return {"__auth__": auth["Authorization"], **ids}, http_tags


async def http_writers(
    apis: list[Api],
    auth: str,
    tags: list[tuple[str, str]],
    args: argparse.Namespace,
    stats: Stats,
    stop: asyncio.Event,
) -> None:
    """Each device posts a batch every ``--period`` s (staggered), alternating between processes."""
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(timeout=10, limits=limits, trust_env=False) as client:

        async def one_device(k: int, tenant_id: str, tag: str) -> None:
            await asyncio.sleep(args.period * k / len(tags))
            headers = {"Authorization": auth, "x-tenant": tenant_id}
            acked = stats.acked.setdefault((tenant_id, tag), array("q"))
            turn = k
            while not stop.is_set():
                now_us = time.time_ns() // 1000
                ts_us = [now_us - args.batch + i for i in range(args.batch)]
                body = {
                    "samples": [
                        {
                            "tag": tag,
                            "value": float(t % 1000),
                            "ts": datetime.fromtimestamp(t / 1e6, UTC).isoformat(),
                        }
                        for t in ts_us
                    ]
                }
                for attempt in range(2):  # the other process when this one does not answer
                    api = apis[(turn + attempt) % len(apis)]
                    t0 = time.perf_counter()
                    stats.requests += 1
                    try:
                        r = await client.post(
                            f"{api.base}/api/v1/telemetry/ingest", json=body, headers=headers
                        )
                    except httpx.HTTPError:
                        stats.failed += 1
                        continue
                    if not 200 <= r.status_code < 300:
                        stats.failed += 1
                        continue
                    stats.latencies.append(time.perf_counter() - t0)
                    answer = r.json()
                    rejected = len(answer.get("rejected", []))
                    stats.rejected += rejected
                    if rejected == 0 and answer.get("accepted") == len(ts_us):
                        acked.extend(ts_us)  # a batch with rejections is not counted at all
                    break
                turn += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.period)

        await asyncio.gather(*(one_device(k, tid, tag) for k, (tid, tag) in enumerate(tags)))


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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.1)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        """``kill -9`` (a crash, not a clean shutdown) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def sparkplug_nodes(
    group: str, nodes: int, tags: list[str], period: float, port: int, stats: Stats, stop: threading.Event
) -> None:
    """Edge nodes: NBIRTH on every (re)connect, then NDATA of every metric every ``period`` s,
    encoded as the gateway's uplink does; only NDATA handed to a connected client is counted."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from gongyun.core.types import Quality
    from gongyun.edge.uplink import EPOCH_METRIC, QUALITY_CODE, SEQ_PROP
    from gongyun.sparkplug import payload as spb
    from gongyun.sparkplug.node import BDSEQ, REBIRTH
    from gongyun.sparkplug.values import encode_properties

    per_node = [tags[n::nodes] for n in range(nodes)]
    epochs = [secrets.randbits(62) or 1 for _ in range(nodes)]
    seq = [0] * nodes  # the Sparkplug message sequence, 0 at each birth
    births = [0] * nodes

    def birth(client: Any, n: int) -> None:
        names = per_node[n]
        payload = spb.Payload(timestamp=spb.now_ms(), seq=0)
        spb.set_metric_value(payload.metrics.add(name=BDSEQ), births[n] % 256, spb.SpbType.Int64)
        spb.set_metric_value(payload.metrics.add(name=REBIRTH), False, spb.SpbType.Boolean)
        epoch = payload.metrics.add(name=EPOCH_METRIC, alias=len(names) + 1)
        spb.set_metric_value(epoch, epochs[n], spb.SpbType.Int64)
        for alias, name in enumerate(names, 1):
            spb.set_metric_value(payload.metrics.add(name=name, alias=alias), 0.0, spb.SpbType.Double)
        births[n] += 1
        seq[n] = 0
        client.publish(f"spBv1.0/{group}/NBIRTH/n{n}", payload.SerializeToString(), qos=0)

    clients = []
    for n in range(nodes):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{group}-n{n}")
        client.on_connect = lambda c, _u, _f, _rc, _p, n=n: birth(c, n)
        client.reconnect_delay_set(1, 2)
        client.connect(MQTT_HOST, port)
        client.loop_start()
        clients.append(client)
    good = QUALITY_CODE[Quality.good]
    m = 0
    while not stop.wait(period):
        m += 1
        ts = spb.now_ms()
        for n, (client, names) in enumerate(zip(clients, per_node, strict=True)):
            if not client.is_connected():
                continue
            seq[n] = (seq[n] + 1) % 256
            payload = spb.Payload(timestamp=ts, seq=seq[n])
            for k in range(len(names)):
                metric = payload.metrics.add(alias=k + 1, timestamp=ts)
                spb.set_metric_value(metric, float(m % 100), spb.SpbType.Double)
                props = {
                    SEQ_PROP: (spb.SpbType.UInt64, (m - 1) * len(names) + k + 1),
                    "Quality": (spb.SpbType.Int32, good),
                }
                encode_properties(metric.properties, props)
            info = client.publish(f"spBv1.0/{group}/NDATA/n{n}", payload.SerializeToString(), qos=0)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                stats.sp_published += len(names)
    for client in clients:
        client.loop_stop()
        client.disconnect()


def stored_total(db: str) -> int:
    """Points stored in the scratch database."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}") as conn:
        row = conn.execute("SELECT count(*) FROM ts_raw_points").fetchone()
        return int(row[0]) if row else 0


def verify(db: str, stats: Stats, sp_tenant_id: str) -> dict[str, int]:
    """Acknowledged HTTP samples missing from the store, and duplicate (tenant, tag, ts) rows."""
    buf = io.StringIO()
    for (tenant, tag), ts in stats.acked.items():
        for t in ts:
            buf.write(f"{tenant}\t{tag}\t{t}\n")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}") as conn:
        conn.execute("CREATE TEMP TABLE acked (tenant TEXT, tag TEXT, ts BIGINT)")
        with conn.cursor().copy("COPY acked FROM STDIN") as copy:
            copy.write(buf.getvalue())
        lost = conn.execute(
            """SELECT count(*) FROM acked a WHERE NOT EXISTS (
                 SELECT 1 FROM ts_raw_points p JOIN ts_series s USING (sid)
                 WHERE s.tenant = a.tenant AND s.tag = a.tag AND p.ts = a.ts)"""
        ).fetchone()
        dup = conn.execute(
            """SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM ts_raw_points p
                 JOIN ts_series s USING (sid) GROUP BY s.tenant, s.tag, p.ts HAVING count(*) > 1) d"""
        ).fetchone()
        acked_dup = conn.execute("SELECT count(*) - count(DISTINCT (tenant, tag, ts)) FROM acked").fetchone()
        sp = conn.execute(
            "SELECT count(*) FROM ts_raw_points p JOIN ts_series s USING (sid)"
            " WHERE s.tenant = %s AND s.tag LIKE 'sp%%'",
            (sp_tenant_id,),
        ).fetchone()
        everything = conn.execute("SELECT count(*) FROM ts_raw_points").fetchone()
        stored_sp = int(sp[0]) if sp else 0
        stored_http = (int(everything[0]) if everything else 0) - stored_sp
    return {
        "lost": int(lost[0]) if lost else -1,
        "duplicated": int(dup[0]) if dup else -1,
        "acked_twice": int(acked_dup[0]) if acked_dup else -1,
        "stored_http": stored_http,
        "stored_sp": stored_sp,
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


async def soak(args: argparse.Namespace, home: Path, db: str) -> dict[str, Any]:
    """Run the load with its faults; the figures."""
    run = uuid.uuid4().hex[:8]
    tenants = [f"soak-{run}-{i}" for i in range(args.tenants)]
    group, sp_tenant = f"soak{run}", tenants[0]  # the Sparkplug devices belong to the first tenant
    sp_count = round(args.devices * args.sparkplug_share)
    sp_tags = [f"sp{i:05d}/v" for i in range(sp_count)]
    broker = Broker(home)
    _BROKERS.append(broker)
    broker.start()
    apis = list(setup_server(home, db, group, sp_tenant, broker.port))
    stats = Stats()
    # the Sparkplug group's tenant must exist before the receiver's process starts
    apis[1].start()
    apis[1].wait_ready()
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        ids, http_tags = await provision(
            client, apis[1].base, tenants, args.devices - sp_count, sp_tenant, sp_tags
        )
    apis[0].start()
    apis[0].wait_ready()
    print(
        f"soak: {len(http_tags)} HTTP devices, {len(sp_tags)} Sparkplug points, "
        f"{args.tenants} tenants; running {args.duration} s"
    )
    stop = asyncio.Event()
    sp_stop = threading.Event()
    t_start = time.monotonic()
    sp_thread = threading.Thread(
        target=sparkplug_nodes,
        args=(group, args.sparkplug_nodes, sp_tags, args.period, broker.port, stats, sp_stop),
        daemon=True,
    )
    if sp_tags:
        sp_thread.start()
    writers = asyncio.create_task(http_writers(apis, ids["__auth__"], http_tags, args, stats, stop))
    faults: list[dict[str, Any]] = []
    fault_at = [args.duration * (i + 1) / (args.faults + 1) for i in range(args.faults)]
    next_rss = 0.0
    interrupted = asyncio.Event()  # Ctrl-C or SIGTERM: end the load now, still check and clean up
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    while (elapsed := time.monotonic() - t_start) < args.duration and not interrupted.is_set():
        if elapsed >= next_rss:
            for api in apis:
                api.sample_rss(elapsed)
            next_rss = elapsed + args.rss_every
        if fault_at and elapsed >= fault_at[0]:
            fault_at.pop(0)
            if len(faults) % 2 == 0 or not sp_tags:  # kill -9 of api-2, then a broker crash, in turn
                victim = apis[1]
                victim.kill9()
                victim.start()
                back = await asyncio.to_thread(victim.wait_ready)
                kind, name = "kill -9", victim.name
            else:
                t0 = time.monotonic()
                broker.stop()
                await asyncio.sleep(1.0)
                await asyncio.to_thread(broker.start)
                back, kind, name = time.monotonic() - t0, "kill -9 + restart", "mosquitto"
            faults.append(
                {"at_s": round(elapsed, 1), "kind": kind, "process": name, "back_after_s": round(back, 2)}
            )
            print(f"soak: {elapsed:.0f} s {kind} {name}, back after {back:.1f} s", flush=True)
        await asyncio.sleep(0.5)
    stop.set()
    sp_stop.set()
    await writers
    wrote_s = time.monotonic() - t_start
    if sp_tags:
        sp_thread.join(30)
    acked = sum(len(v) for v in stats.acked.values())
    # ingest lag: until every acknowledged HTTP sample plus the Sparkplug ones are counted (or 120 s)
    t_end = time.monotonic()
    total = before = -1
    while time.monotonic() - t_end < args.grace:
        total = await asyncio.to_thread(stored_total, db)
        if total >= acked + stats.sp_published or (total == before and time.monotonic() - t_end > 5):
            break
        before = total
        await asyncio.sleep(0.5)
    lag = time.monotonic() - t_end
    for api in apis:
        api.sample_rss(time.monotonic() - t_start)
    check = await asyncio.to_thread(verify, db, stats, ids[sp_tenant])
    sp_stored = check["stored_sp"]
    growth = {api.name: rss_growth(api, args.warmup) for api in apis}
    return {
        "devices": args.devices,
        "tenants": args.tenants,
        "duration_s": round(wrote_s, 1),
        "faults": faults,
        "http": {
            "requests": stats.requests,
            "failed_requests": stats.failed,
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
        "sparkplug": {"points": len(sp_tags), "published": stats.sp_published, "stored": sp_stored},
        "duplicated": check["duplicated"],
        "ingest_lag_s": round(lag, 2),
        "rss_kib": {api.name: api.rss for api in apis},
        "rss_growth_pct": growth,
    }


def summary(r: dict[str, Any]) -> str:
    """The one-line summary."""
    samples = r["http"]["acknowledged"] + r["sparkplug"]["stored"]
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
        f"{human} samples, {r['http']['lost']} lost, {r['duplicated']} duplicated; "
        f"p99 API {r['http']['latency_ms']['p99']:.0f} ms; {rss}"
    )


def main() -> int:
    """Parse arguments, run, always clean up; exit 1 when anything acknowledged was lost or duplicated."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--devices", type=int, default=1000, help="simulated devices (HTTP and Sparkplug)")
    p.add_argument("--tenants", type=int, default=10)
    p.add_argument("--faults", type=int, default=4, help="kill -9 + restart of api-2, evenly spaced")
    p.add_argument("--batch", type=int, default=10, help="samples per HTTP batch")
    p.add_argument("--period", type=float, default=5.0, help="seconds between a device's batches")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--sparkplug-nodes", type=int, default=4)
    p.add_argument("--sparkplug-share", type=float, default=0.1, help="part of the devices on Sparkplug")
    p.add_argument("--rss-every", type=float, default=5.0)
    p.add_argument(
        "--warmup", type=float, default=60.0, help="seconds of each process not counted in RSS growth"
    )
    p.add_argument("--grace", type=float, default=120.0, help="longest wait for the store to catch up")
    args = p.parse_args()
    db = f"gy_soak_{uuid.uuid4().hex[:10]}"
    admin_db(f'CREATE DATABASE "{db}"')
    home = Path(tempfile.mkdtemp(prefix="gy-soak-"))
    try:
        result = asyncio.run(soak(args, home, db))
    finally:
        _stop_children(home)
        admin_db(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rss_kib"}, indent=2))
    print(summary(result))
    bad = result["http"]["lost"] or result["duplicated"] or result["http"]["acknowledged_twice"]
    return 1 if bad else 0


_RUNNING: list[Api] = []
_BROKERS: list[Broker] = []


def _stop_children(home: Path) -> None:
    """Stop every API process this run started (registered in ``_RUNNING``), bounded in time."""
    for api in _RUNNING:
        api.stop()
    _RUNNING.clear()
    for broker in _BROKERS:
        broker.stop()
    _BROKERS.clear()
    with contextlib.suppress(OSError):
        subprocess.run(["rm", "-rf", str(home)], check=False, timeout=30)


if __name__ == "__main__":
    sys.exit(main())
