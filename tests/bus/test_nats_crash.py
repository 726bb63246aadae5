"""NATS only: a consumer process killed with SIGKILL (no nak, no goodbye) loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid

import pytest

from gongyun.bus import Message, open_bus
from gongyun.errors import BusUnavailable
from tests.services import NATS_URL, require_service

pytestmark = pytest.mark.nats

CONSUMER = """
import asyncio, sys
from gongyun.bus import open_bus

async def main(url, subject, durable):
    bus = open_bus(url)
    await bus.connect()

    async def hold(msg):  # take the message and never ack it
        print(msg.data.decode(), flush=True)

    await bus.subscribe(subject, durable=durable, handler=hold, ack_wait_s=1.0, max_in_flight=8)
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_killed_consumer_messages_are_redelivered() -> None:
    require_service("nats")
    tag = uuid.uuid4().hex[:10]
    stream, subject, durable = f"gy_crash_{tag}", f"gycrash.{tag}.>", f"d_{tag}"
    bus = open_bus(NATS_URL)
    await bus.connect()
    proc: asyncio.subprocess.Process | None = None
    try:
        await bus.ensure_stream(stream, [subject])
        payloads = {f"m{i}" for i in range(20)}
        for p in sorted(payloads):
            await bus.publish(f"gycrash.{tag}.v", p.encode())
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CONSUMER, NATS_URL, subject, durable, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        held: set[str] = set()
        async with asyncio.timeout(20):
            while len(held) < 8:
                line = (await proc.stdout.readline()).decode().strip()
                assert line, "the consumer process exited early"
                if line != "ready":
                    held.add(line)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

        got: dict[str, int] = {}
        all_back = asyncio.Event()

        async def take(msg: Message) -> None:
            got[msg.data.decode()] = msg.num_delivered
            await msg.ack()
            if set(got) == payloads:
                all_back.set()

        await bus.subscribe(subject, durable=durable, handler=take, ack_wait_s=1.0)
        async with asyncio.timeout(15):
            await all_back.wait()
        assert all(got[p] >= 2 for p in held), "the killed consumer's messages came back"
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(BusUnavailable):
            await bus.delete_stream(stream)
        await bus.close()
