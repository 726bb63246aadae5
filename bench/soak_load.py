"""bench/soak's load: HTTP batch writers in worker processes, and Sparkplug B edge nodes.

The writers run in ``--writer-processes`` processes of their own (each an event loop with its
share of the devices), so that the load generator is not what saturates first; each returns what
it saw: the acknowledged timestamps per (tenant, tag), latencies and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

MQTT_HOST = "127.0.0.1"


@dataclass
class Stats:
    """What the writers saw: acknowledged timestamps per (tenant id, tag), latencies, errors."""

    acked: dict[tuple[str, str], array[int]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    rejected: int = 0
    sp_published: int = 0
    failed_at: dict[int, int] = field(default_factory=dict)  # failures per 5 s of wall-clock time

    def fail(self) -> None:
        """Count a failed request, and when it happened."""
        self.failed += 1
        slot = int(time.time() // 5 * 5)
        self.failed_at[slot] = self.failed_at.get(slot, 0) + 1

    def merge(self, other: Stats) -> None:
        """Add another writer process's figures (its devices are its own)."""
        self.acked.update(other.acked)
        self.latencies.extend(other.latencies)
        self.requests += other.requests
        self.failed += other.failed
        self.rejected += other.rejected
        self.sp_published += other.sp_published
        for slot, n in other.failed_at.items():
            self.failed_at[slot] = self.failed_at.get(slot, 0) + n


@dataclass(frozen=True)
class WriterPlan:
    """One writer process's share: its devices as (index, tenant id, device/tag), and when to stop."""

    bases: list[str]
    auth: str
    devices: list[tuple[int, str, str]]
    total_devices: int
    period: float
    batch: int
    connections: int
    deadline: float  # time.time() at which to stop
    stop_file: str  # stops earlier when this file exists


def run_writers(plan: WriterPlan) -> Stats:
    """Entry of a writer process: run its devices until the deadline; what they saw."""
    stats = Stats()
    asyncio.run(_writers(plan, stats))
    return stats


async def _watch_stop(plan: WriterPlan, stop: asyncio.Event) -> None:
    # another process asks through a file: there is no event to wait on across processes
    while time.time() < plan.deadline and not Path(plan.stop_file).exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.2)
    stop.set()


async def _writers(plan: WriterPlan, stats: Stats) -> None:
    """Each device posts a batch every ``period`` s (staggered), alternating between processes."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_stop(plan, stop))
    limits = httpx.Limits(max_connections=plan.connections, max_keepalive_connections=plan.connections)
    async with httpx.AsyncClient(timeout=10, limits=limits, trust_env=False) as client:

        async def one_device(k: int, tenant_id: str, tag: str) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), plan.period * k / plan.total_devices)
            headers = {"Authorization": plan.auth, "x-tenant": tenant_id}
            acked = stats.acked.setdefault((tenant_id, tag), array("q"))
            turn = k
            while not stop.is_set():
                now_us = time.time_ns() // 1000
                ts_us = [now_us - plan.batch + i for i in range(plan.batch)]
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
                    base = plan.bases[(turn + attempt) % len(plan.bases)]
                    t0 = time.perf_counter()
                    stats.requests += 1
                    try:
                        r = await client.post(f"{base}/api/v1/telemetry/ingest", json=body, headers=headers)
                    except httpx.HTTPError:
                        stats.fail()
                        continue
                    if not 200 <= r.status_code < 300:
                        stats.fail()
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
                    await asyncio.wait_for(stop.wait(), plan.period)

        await asyncio.gather(*(one_device(k, tid, tag) for k, tid, tag in plan.devices))
    watcher.cancel()


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


@dataclass
class Checked:
    """Acknowledged alarm excursions and identifier registrations, per tenant id."""

    raises: dict[str, list[int]] = field(default_factory=dict)  # µs of each acknowledged high point
    handles: dict[str, list[str]] = field(default_factory=dict)
    failed: int = 0


async def alarm_and_identifier_writers(
    bases: list[str],
    auth: str,
    prefixes: dict[str, str],
    period: float,
    stop: asyncio.Event,
    checked: Checked,
) -> None:
    """Per tenant, every ``period`` s: one batch of ``alarm/v`` that goes below and then above the
    limit of the rule ``soak high`` (so each acknowledged batch must raise the alarm exactly once),
    and every ``period / 5`` s the registration of a new identifier in the tenant's prefix."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:

        async def post(
            k: int, method: str, path: str, tenant: str, body: dict[str, Any]
        ) -> httpx.Response | None:
            for attempt in range(2):
                base = bases[(k + attempt) % len(bases)]
                try:
                    r = await client.request(
                        method,
                        f"{base}{path}",
                        json=body,
                        headers={"Authorization": auth, "x-tenant": tenant},
                    )
                except httpx.HTTPError:
                    checked.failed += 1
                    continue
                if 200 <= r.status_code < 300:
                    return r
                checked.failed += 1
                if r.status_code < 500:
                    return None  # refused: another attempt would be refused too (or is a duplicate)
            return None

        async def excursions(k: int, tenant: str) -> None:
            raises = checked.raises.setdefault(tenant, [])
            while not stop.is_set():
                high_us = time.time_ns() // 1000
                body = {
                    "samples": [
                        {"tag": "alarm/v", "value": v, "ts": datetime.fromtimestamp(t / 1e6, UTC).isoformat()}
                        for t, v in ((high_us - 1000, 10.0), (high_us, 90.0))
                    ]
                }
                r = await post(k, "POST", "/api/v1/telemetry/ingest", tenant, body)
                if r is not None and r.json().get("accepted") == 2:
                    raises.append(high_us)
                k += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), period)

        async def registrations(k: int, tenant: str, prefix: str) -> None:
            handles = checked.handles.setdefault(tenant, [])
            n = 0
            while not stop.is_set():
                n += 1
                handle = f"{prefix}/soak-{k}-{n}"
                value = {
                    "index": 1,
                    "type": "URL",
                    "data": {"format": "string", "value": f"https://example.com/{n}"},
                }
                r = await post(
                    k + n, "PUT", f"/api/v1/identifiers/records/{handle}", tenant, {"values": [value]}
                )
                if r is not None and r.json().get("created") is True:
                    handles.append(handle)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), period / 5)

        jobs = [excursions(k, t) for k, t in enumerate(prefixes)]
        jobs += [registrations(k, t, p) for k, (t, p) in enumerate(prefixes.items())]
        await asyncio.gather(*jobs)
