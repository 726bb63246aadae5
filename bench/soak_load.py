"""bench/soak's load: HTTP batch writers in worker processes, and Sparkplug B edge nodes.

The writers run in ``--writer-processes`` processes of their own (each an event loop with its
share of the devices), so that the load generator is not what saturates first; each returns what
it saw: the acknowledged timestamps per (tenant, tag), latencies and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
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


@dataclass
class GatewayLog:
    """What the soak's gateways sent: every sample appended to each buffer, and what was confirmed."""

    appended: dict[str, list[tuple[int, str, int]]] = field(default_factory=dict)  # node -> (seq, tag, µs)
    confirmed: dict[str, int] = field(default_factory=dict)  # node -> last confirmed seq
    replays: int = 0

    def confirmed_points(self) -> list[tuple[str, int]]:
        """(tag, µs) of every sample the platform confirmed to its gateway."""
        return [
            (tag, us)
            for node, rows in self.appended.items()
            for seq, tag, us in rows
            if seq <= self.confirmed.get(node, 0)
        ]


def sparkplug_gateways(
    home: Path,
    group: str,
    nodes: int,
    tags: list[str],
    period: float,
    port: int,
    host_id: str,
    stop: threading.Event,
    out: GatewayLog,
) -> None:
    """Gateways as Gongyun's edge runs them: each a store-and-forward buffer (SQLite) and the
    Sparkplug B uplink that publishes it and deletes what the platform's receiver confirms.
    Every ``period`` s each gateway buffers one sample of each of its metrics."""
    asyncio.run(_gateways(home, group, nodes, tags, period, port, host_id, stop, out))


async def _gateways(
    home: Path,
    group: str,
    nodes: int,
    tags: list[str],
    period: float,
    port: int,
    host_id: str,
    stop: threading.Event,
    out: GatewayLog,
) -> None:
    from gongyun.core.types import Quality, Sample, TagRef
    from gongyun.edge.buffer import Buffer
    from gongyun.edge.uplink import SparkplugUplink
    from gongyun.sparkplug import payload as spb

    per_node = [tags[n::nodes] for n in range(nodes)]
    gateways = []
    for n, names in enumerate(per_node):
        buffer = Buffer(home / f"gateway-{n}.db")
        types = dict.fromkeys(names, spb.SpbType.Double)
        uplink = SparkplugUplink(
            buffer, ("127.0.0.1", port), group, f"gw{n}", types, primary_host=host_id, batch=500
        )
        gateways.append((f"gw{n}", names, buffer, uplink))
    tasks = [asyncio.create_task(uplink.run()) for _, _, _, uplink in gateways]
    m = 0
    try:
        while not stop.is_set():
            m += 1
            now = datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, UTC)  # whole ms, as sent
            for node, names, buffer, uplink in gateways:
                samples = [Sample(TagRef.parse(name), float(m % 100), now, Quality.good) for name in names]
                written = buffer.append(samples)
                us = int(now.timestamp() * 1_000_000)
                out.appended.setdefault(node, []).extend((int(x.seq or 0), str(x.tag), us) for x in written)
                uplink.wake()
            await asyncio.to_thread(stop.wait, period)
        await asyncio.sleep(3.0)  # confirmations of the last messages on the way
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node, _, buffer, uplink in gateways:
            out.confirmed[node] = buffer.acked
            out.replays += uplink.replays
            buffer.close()


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
