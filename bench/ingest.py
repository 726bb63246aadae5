"""bench/ingest: the product's Sparkplug B receiver path, end to end, beside mosquitto_sub.

A publisher process acts as a gateway's Sparkplug uplink (an NBIRTH declaring ``points`` metrics
``device/tag`` with aliases, then NDATA at QoS 0 carrying every metric by alias with its buffer
sequence number and quality, exactly as :class:`gongyun.edge.uplink.SparkplugUplink` encodes them)
and sends to the Mosquitto at 127.0.0.1:1883 at a stepped-up offered rate. The platform side is the
product's receiver, :class:`gongyun.edge.receiver.UplinkReceiver` (the library's host and decoder),
whose store callback submits to a real :class:`~gongyun.telemetry.ingest.Ingestor` over the DuckDB
store and, when it is running, PostgreSQL (a scratch database), confirming receipt once stored.
``mosquitto_sub`` subscribes to the same NDATA stream in the same run.

Per offered rate: messages published, stored (points stored / points per message) and lost (not
stored within ``--grace`` seconds of the publisher finishing), the same for mosquitto_sub, and how
long storing lagged behind the publisher. Reported: the highest offered rate at which the receiver
lost nothing, beside the highest at which mosquitto_sub lost nothing (">=" when that is the
highest rate tried). Messages are lost where the receiver falls behind: NDATA goes at QoS 0, as
Sparkplug 3.0 wants, and is not redelivered (the real gateway replays what the platform did not
confirm; this publisher does not, so every loss shows). The JSON envelope phase
(``bench/ingest_json.py``) runs after it, as before.

    .venv/bin/python bench/ingest.py [--rates 250,500,1000,2000,4000] [--seconds 3] [--stores duckdb,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing as mp
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gongyun.core.types import Sample
from gongyun.edge.receiver import UplinkReceiver
from gongyun.telemetry.catalog import StaticCatalog, TagSpec
from gongyun.telemetry.ingest import Ingestor
from gongyun.telemetry.store import open_store
from ingest_json import HOST, PORT, MosquittoSub, rate_of, run_phase

ADMIN_DSN = os.environ.get("GONGYUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT = "bench"
DEVICES = 10


def tag_names(points: int) -> list[str]:
    """The ``device/tag`` names of one message's metrics."""
    return [f"dev{k % DEVICES}/m{k // DEVICES}" for k in range(points)]


def uplink_publisher(
    group: str, node: str, messages: int, points: int, base_ms: int, rate: float, out: Any
) -> None:
    """NBIRTH, then ``messages`` NDATA of ``points`` metrics at ``rate`` msg/s, as the gateway's uplink
    encodes them; puts (seconds publishing, messages) on ``out``."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from gongyun.core.types import Quality
    from gongyun.edge.uplink import EPOCH_METRIC, QUALITY_CODE, SEQ_PROP
    from gongyun.sparkplug import payload as spb
    from gongyun.sparkplug.node import BDSEQ, REBIRTH
    from gongyun.sparkplug.values import encode_properties

    names = tag_names(points)
    birth = spb.Payload(timestamp=spb.now_ms(), seq=0)
    for name, dtype, value in [
        (BDSEQ, spb.SpbType.Int64, 0),
        (REBIRTH, spb.SpbType.Boolean, False),
    ]:
        spb.set_metric_value(birth.metrics.add(name=name), value, dtype)
    epoch = birth.metrics.add(name=EPOCH_METRIC, alias=points + 1)
    spb.set_metric_value(epoch, secrets.randbits(62) or 1, spb.SpbType.Int64)
    for alias, name in enumerate(names, 1):
        spb.set_metric_value(birth.metrics.add(name=name, alias=alias), 0.0, spb.SpbType.Double)
    good = QUALITY_CODE[Quality.good]
    data: list[bytes] = []  # built before publishing: the broker and the receiver set the pace
    for m in range(messages):
        ts = base_ms + m  # unique per tag and message
        payload = spb.Payload(timestamp=ts, seq=(m + 1) % 256)
        for k in range(points):
            metric = payload.metrics.add(alias=k + 1, timestamp=ts)
            spb.set_metric_value(metric, float(k + m % 50) + 0.5, spb.SpbType.Double)
            props = {SEQ_PROP: (spb.SpbType.UInt64, m * points + k + 1), "Quality": (spb.SpbType.Int32, good)}
            encode_properties(metric.properties, props)
        data.append(payload.SerializeToString())
    topic = f"spBv1.0/{group}/NDATA/{node}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{group}-{node}")
    client.max_queued_messages_set(0)
    client.connect(HOST, PORT)
    client.loop_start()
    client.publish(f"spBv1.0/{group}/NBIRTH/{node}", birth.SerializeToString(), qos=0).wait_for_publish(10)
    time.sleep(0.3)
    info = None
    t0 = time.perf_counter()
    for i, raw in enumerate(data):
        info = client.publish(topic, raw, qos=0)
        if i % 10 == 9:
            ahead = t0 + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    if info is not None:
        info.wait_for_publish(timeout=120)
    out.put((time.perf_counter() - t0, len(data)))
    client.loop_stop()
    client.disconnect()


async def submit(ingestor: Ingestor, _node: str, samples: list[Sample]) -> Awaitable[object]:
    """The receiver's store callback, as the platform wires it: queue for ingest, stored later."""
    submitted = await ingestor.submit(TENANT, samples)
    stored: Awaitable[object] = submitted.stored
    return stored


async def step(ingestor: Ingestor, rate: float, base_ms: int, args: argparse.Namespace) -> dict[str, Any]:
    """One offered rate: publisher -> Mosquitto -> receiver -> ingest -> store, and mosquitto_sub."""
    group, node = f"gybench{uuid.uuid4().hex[:8]}", "gw1"
    total = max(10, int(rate * args.seconds))
    sub = MosquittoSub(f"spBv1.0/{group}/NDATA/#", total)
    await sub.start()
    receiver = UplinkReceiver((HOST, PORT), group, None, store=functools.partial(submit, ingestor))
    task = asyncio.create_task(receiver.run())
    before = ingestor.stats.stored_points
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    try:
        await asyncio.wait_for(receiver.host.connected.wait(), 10)
        await asyncio.sleep(0.3)  # mosquitto_sub subscribed too
        proc = ctx.Process(
            target=uplink_publisher, args=(group, node, total, args.points, base_ms, rate, out)
        )
        proc.start()
        await asyncio.to_thread(proc.join)
        seconds, sent = await asyncio.to_thread(out.get, True, 5)
        finished = time.perf_counter()
        target, stored_at = before + total * args.points, finished
        last, idle_since = ingestor.stats.stored_points, finished
        while ingestor.stats.stored_points < target and time.perf_counter() - idle_since < args.grace:
            await asyncio.sleep(0.05)
            if ingestor.stats.stored_points != last:
                last, idle_since = ingestor.stats.stored_points, time.perf_counter()
                stored_at = idle_since
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sub_text = await sub.finish(2.0)
    stored = ingestor.stats.stored_points - before
    sub_msgs, sub_rate = rate_of(sub_text)
    return {
        "offered_msgs_per_s": rate,
        "published_msgs_per_s": round(sent / seconds, 1) if seconds else None,
        "messages": total,
        "points_per_message": args.points,
        "points_stored": stored,
        "lost_messages": total - stored // args.points,
        "storing_lag_s": round(max(0.0, stored_at - finished), 3),
        "gaps": receiver.gaps,
        "read_pauses": receiver.host.read_pauses,
        "peak_queued_points": receiver.peak_queued,
        "mosquitto_sub_messages": sub_msgs,
        "mosquitto_sub_lost": total - sub_msgs,
        "mosquitto_sub_msgs_per_s": round(sub_rate, 1),
    }


@contextlib.asynccontextmanager
async def ingest_into(store_name: str, tmp: Path, args: argparse.Namespace) -> AsyncIterator[Ingestor]:
    """A running Ingestor over a fresh store (DuckDB file, or a scratch PostgreSQL database)."""
    db = f"gy_bench_{uuid.uuid4().hex[:10]}"
    if store_name == "duckdb":
        url = f"duckdb://{tmp / 'spb.duckdb'}"
    else:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{db}"')
        url = ADMIN_DSN.rsplit("/", 1)[0] + f"/{db}"
    store = open_store(url)
    await store.open()
    ingestor = Ingestor(store, StaticCatalog({TENANT: [TagSpec(t) for t in tag_names(args.points)]}))
    await ingestor.start()
    try:
        yield ingestor
    finally:
        await ingestor.stop()
        await store.close()
        if store_name != "duckdb":
            with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def postgres_up() -> bool:
    """Whether the PostgreSQL of ADMIN_DSN answers."""
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def best(steps: list[dict[str, Any]], lost_key: str) -> float:
    """The highest offered rate with nothing lost (0 when every rate lost something)."""
    return max((s["offered_msgs_per_s"] for s in steps if s[lost_key] == 0), default=0.0)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="250,500,1000,2000,4000", help="offered msg/s, stepped up")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of publishing per rate")
    ap.add_argument("--points", type=int, default=100, help="points per message")
    ap.add_argument("--grace", type=float, default=5.0, help="seconds without progress before counting lost")
    ap.add_argument("--stores", default="duckdb,postgres")
    ap.add_argument(
        "--json-messages", dest="messages", type=int, default=2000, help="JSON phase, per publisher"
    )
    ap.add_argument("--json-publishers", dest="publishers", type=int, default=2)
    ap.add_argument(
        "--json-rate", dest="json_rate", type=float, default=2000, help="JSON phase offered msg/s"
    )
    ap.add_argument("--no-json", dest="json", action="store_false")
    args = ap.parse_args()
    if shutil.which("mosquitto_sub") is None:
        raise SystemExit("mosquitto_sub not found (apt-get install mosquitto-clients)")
    stores = [s for s in args.stores.split(",") if s != "postgres" or postgres_up()]
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[str, list[dict[str, Any]]] = {}
    json_results: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="gybench-"))
    base = datetime.now(UTC) - timedelta(hours=2)
    try:
        for store_name in stores:
            steps = results[store_name] = []
            async with ingest_into(store_name, tmp, args) as ingestor:
                for i, rate in enumerate(rates):
                    base_ms = int((base + timedelta(seconds=1000 * i)).timestamp() * 1000)
                    s = await step(ingestor, rate, base_ms, args)
                    steps.append(s)
                    print(
                        f"  {store_name:8} offered {rate:,.0f} msg/s "
                        f"(sent {s['published_msgs_per_s']:,.0f}): "
                        f"stored {s['points_stored']:,} points, lost {s['lost_messages']:,} msgs, "
                        f"lag {s['storing_lag_s']:.2f} s, gaps {s['gaps']}; mosquitto_sub lost "
                        f"{s['mosquitto_sub_lost']:,}",
                        flush=True,
                    )
            if args.json:
                url = f"duckdb://{tmp / 'json.duckdb'}"
                if store_name != "duckdb":
                    db = f"gy_bench_{uuid.uuid4().hex[:10]}"
                    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
                        c.execute(f'CREATE DATABASE "{db}"')
                    url = ADMIN_DSN.rsplit("/", 1)[0] + f"/{db}"
                try:
                    r = await run_phase(store_name, url, args)
                finally:
                    if store_name != "duckdb":
                        with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
                            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                json_results.append(r)
                print(
                    f"  {store_name:8} json (MQTT -> consumer json_batch -> ingest): "
                    f"{r['points_per_s']:,.0f} points/s, {r['msgs_per_s']:,.0f} msg/s, lost "
                    f"{r['lost_messages']:,}; mosquitto_sub {r['mosquitto_sub_msgs_per_s']:,.0f} msg/s",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        name: {
            "receiver_msgs_per_s": best(steps, "lost_messages"),
            "mosquitto_sub_msgs_per_s": best(steps, "mosquitto_sub_lost"),
        }
        for name, steps in results.items()
    }
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    Path(__file__).with_name("results").joinpath("ingest.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "sparkplug_receiver": results,
                "summary": summary,
                "json": json_results,
                "at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    first = stores[0]
    n, k = summary[first]["receiver_msgs_per_s"], summary[first]["mosquitto_sub_msgs_per_s"]
    lost = ", ".join(
        f"{name} "
        + " ".join(
            f"{s['offered_msgs_per_s']:,.0f}:{s['lost_messages']}/{s['mosquitto_sub_lost']}" for s in steps
        )
        for name, steps in results.items()
    )
    others = "".join(
        f"; {name} {v['receiver_msgs_per_s']:,.0f} msg/s" for name, v in summary.items() if name != first
    )
    # mosquitto_sub losing nothing at the highest rate tried: its limit is higher still
    bound = ">=" if k == max(rates) else ""
    print(
        f"ingest: sparkplug receiver keeps up to {n:,.0f} msg/s ({n * args.points:,.0f} points/s) "
        f"with 0 lost "
        f"= {n / k if k else 0:.2f} x mosquitto_sub ({bound}{k:,.0f} msg/s) [{first}{others}]; "
        f"lost per rate (msg/s:receiver/mosquitto_sub): {lost}"
    )


if __name__ == "__main__":
    asyncio.run(main())
