"""Part of bench/ingest: the JSON envelope through Mosquitto into a store, beside mosquitto_sub.

Publisher processes send JSON messages (the telemetry consumer's envelope) of many points each to
the Mosquitto at 127.0.0.1:1883; a paho subscriber decodes them with the consumer's ``json_batch``,
validates them against the tags (ingest) and stores them, while ``mosquitto_sub`` subscribes to
the same stream. Also home of :class:`MosquittoSub`, which the Sparkplug part uses too.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gongyun.telemetry.catalog import StaticCatalog, TagSpec
from gongyun.telemetry.consumer import json_batch
from gongyun.telemetry.ingest import Ingestor
from gongyun.telemetry.store import open_store

HOST, PORT = "127.0.0.1", 1883
ADMIN_DSN = os.environ.get("GONGYUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT = "bench"
DEVICES_PER_PUBLISHER = 10


def publisher(idx: int, group: str, messages: int, points: int, base_ms: int, rate: float) -> None:
    """Publish ``messages`` JSON messages of ``points`` samples at ``rate`` msg/s (0: flat out), QoS 0."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    out: list[tuple[str, bytes]] = []  # built before publishing: the broker, not the encoder, sets the pace
    for m in range(messages):
        dev = f"p{idx}d{m % DEVICES_PER_PUBLISHER}"
        ts = base_ms + m  # unique per device and message
        samples = [{"tag": f"{dev}/m{k}", "value": float(k + m % 50), "ts": ts} for k in range(points)]
        out.append((f"gongyun/{group}/json/{dev}", orjson.dumps({"samples": samples})))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{group}-pub{idx}")
    client.max_queued_messages_set(0)
    client.connect(HOST, PORT)
    client.loop_start()
    info = None
    t0 = time.perf_counter()
    for i, (topic, data) in enumerate(out):
        info = client.publish(topic, data)
        if rate and i % 10 == 9:
            ahead = t0 + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    if info is not None:
        info.wait_for_publish(timeout=120)
    client.loop_stop()
    client.disconnect()


def rate_of(out: str) -> tuple[int, float]:
    """Messages and messages/s from mosquitto_sub's ``%U`` receive timestamps."""
    stamps = [float(x) for x in out.split()]
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return len(stamps), 0.0
    return len(stamps), (len(stamps) - 1) / (stamps[-1] - stamps[0])


class MosquittoSub:
    """``mosquitto_sub`` printing receive times into a file (a pipe would fill and stall it)."""

    def __init__(self, topic: str, count: int) -> None:
        self.topic, self.count = topic, count
        self.out = tempfile.NamedTemporaryFile(prefix="gybench-sub-", suffix=".txt")  # noqa: SIM115
        self.proc: asyncio.subprocess.Process | None = None
        self.text = ""

    async def start(self) -> None:
        """Subscribe."""
        self.proc = await asyncio.create_subprocess_exec(
            *("mosquitto_sub", "-h", HOST, "-p", str(PORT), "-t", self.topic),
            *("-C", str(self.count), "-F", "%U", "-W", "300"),
            stdout=self.out,
        )

    async def finish(self, grace_s: float) -> str:
        """Wait up to ``grace_s`` for the last message (QoS 0 may lose some), stop, read the times."""
        if self.out.closed:
            return self.text
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.out.seek(0)
        self.text = self.out.read().decode()
        self.out.close()
        return self.text


def _receiver(group: str, topic: str, inbox: asyncio.Queue[tuple[str, bytes]]) -> Any:
    """A paho subscriber whose network thread drains the socket into ``inbox`` at once.

    Reading in its own thread keeps the broker from dropping QoS 0 messages while the event
    loop is busy ingesting (the backlog waits in memory instead).
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    loop = asyncio.get_running_loop()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{group}-ingest")

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        loop.call_soon_threadsafe(inbox.put_nowait, (msg.topic, msg.payload))

    client.on_message = on_message
    client.connect(HOST, PORT)
    client.subscribe(topic)
    client.loop_start()
    return client


async def run_phase(store_name: str, store_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One store: JSON publishers, the consumer's decoder into ingest, and mosquitto_sub on one stream."""
    group = f"gybench{uuid.uuid4().hex[:8]}"
    topic = f"gongyun/{group}/json/#"
    total_msgs = args.messages * args.publishers
    store = open_store(store_url)
    await store.open()
    specs = [
        TagSpec(f"p{i}d{d}/m{k}")
        for i in range(args.publishers)
        for d in range(DEVICES_PER_PUBLISHER)
        for k in range(args.points)
    ]
    ingestor = Ingestor(store, StaticCatalog({TENANT: specs}))
    await ingestor.start()
    sub = MosquittoSub(topic, total_msgs)
    await sub.start()
    received = 0
    first = last_rx = 0.0
    busy = [0.0, 0.0]  # seconds decoding, seconds submitting (validation + waiting for queue room)
    futures = []
    committed = [0.0]  # when the last batch was stored (publishers may still be shutting down)

    def on_stored(_fut: asyncio.Future[None]) -> None:
        committed[0] = time.perf_counter()

    try:
        inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        client = _receiver(group, topic, inbox)
        try:
            await asyncio.sleep(0.5)  # let both subscriptions settle
            base_ms = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
            ctx = mp.get_context("spawn")
            procs = [
                ctx.Process(
                    target=publisher,
                    args=(i, group, args.messages, args.points, base_ms, args.json_rate / args.publishers),
                )
                for i in range(args.publishers)
            ]
            for p in procs:
                p.start()
            while received < total_msgs:
                try:
                    _topic, payload = inbox.get_nowait()
                except asyncio.QueueEmpty:
                    try:
                        wait_s = 5 if received else 90
                        _topic, payload = await asyncio.wait_for(inbox.get(), timeout=wait_s)
                    except TimeoutError:
                        break
                if not first:
                    first = time.perf_counter()
                t_a = time.perf_counter()
                samples = json_batch(orjson.loads(payload)["samples"])
                t_b = time.perf_counter()
                done = (await ingestor.submit(TENANT, samples)).stored
                done.add_done_callback(on_stored)
                futures.append(done)
                busy[0] += t_b - t_a
                busy[1] += time.perf_counter() - t_b
                received += 1
                last_rx = time.perf_counter()
            for p in procs:
                await asyncio.to_thread(p.join)
        finally:
            client.loop_stop()
            client.disconnect()
        await asyncio.gather(*futures)
        joined_at = time.perf_counter()
        stored_at = committed[0] or joined_at
        await ingestor.stop()
        out = await sub.finish(10.0)
    finally:
        await sub.finish(0.0)  # a no-op once finished
        await store.close()
    sub_msgs, sub_rate = rate_of(out)
    stored = ingestor.stats.stored_points
    dt = stored_at - first
    return {
        "store": store_name,
        "format": "json",
        "messages": received,
        "points_per_message": args.points,
        "points_stored": stored,
        "seconds": round(dt, 3),
        "seconds_until_publishers_exited": round(joined_at - first, 3),
        "points_per_s": stored / dt,
        "msgs_per_s": received / dt,
        "receive_msgs_per_s": received / max(last_rx - first, 1e-9),
        "mosquitto_sub_msgs": sub_msgs,
        "mosquitto_sub_msgs_per_s": sub_rate,
        "rejected": sum(ingestor.stats.rejected.values()),
        "published_messages": total_msgs,
        "lost_messages": total_msgs - received,
        "decode_s": round(busy[0], 2),
        "submit_s": round(busy[1], 2),
    }
