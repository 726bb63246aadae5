"""Backpressure on the Sparkplug uplink: a slow store bounds what the platform holds and loses
nothing (the broker and the gateway's buffer hold the rest); the gateway's safe defaults."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.edge.buffer import Buffer
from gongyun.edge.config import UplinkSection, load_config
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.edge.uplink import SparkplugUplink
from gongyun.sim.pump import PumpServer
from gongyun.sparkplug import payload as spb
from tests.edge.conftest import PROFILES, wait_for
from tests.edge.mqttbroker import Broker
from tests.services import require_service

TAGS = 4


class SlowStore:
    """A store that takes one batch every ``delay`` seconds and records the sequence numbers."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.seqs: list[int] = []

    async def __call__(self, _key: str, samples: list[Sample]) -> Awaitable[object]:
        await asyncio.sleep(self.delay)
        self.seqs.extend(s.seq or 0 for s in samples)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _buffer(path: Path, n: int) -> Buffer:
    buffer = Buffer(path)
    now = datetime.now(UTC)
    buffer.append([Sample(TagRef("dev", f"t{i % TAGS}"), i, now, Quality.good) for i in range(n)])
    return buffer


@contextlib.asynccontextmanager
async def _running(*coros: Awaitable[None]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _drain(
    tmp_path: Path, port: int, n: int, batch: int, bound: int, delay: float
) -> tuple[UplinkReceiver, SlowStore]:
    """A gateway with ``n`` buffered samples uplinks to a receiver whose store is slow."""
    group = f"t{uuid.uuid4().hex[:10]}"
    host = f"host-{group}"
    store = SlowStore(delay)
    receiver = UplinkReceiver(("127.0.0.1", port), group, None, host_id=host, store=store, max_queued=bound)
    receiver.host.rebirth_holdoff = 0.2
    buffer = _buffer(tmp_path / "buffer.db", n)
    types = {f"dev/t{i}": spb.SpbType.Int64 for i in range(TAGS)}
    uplink = SparkplugUplink(
        buffer, ("127.0.0.1", port), group, "gw1", types, primary_host=host, batch=batch, replay_after=1.0
    )
    try:
        async with _running(receiver.run()):
            await asyncio.wait_for(receiver.host.connected.wait(), 10)
            async with _running(uplink.run()):
                await wait_for(lambda: buffer.acked == n, timeout=90, step=0.1)
    finally:
        buffer.close()
    return receiver, store


async def test_slow_store_pauses_reading_instead_of_holding_samples(tmp_path: Path) -> None:
    """240 messages against a store taking 25 samples every 10 ms and a bound of 100: the receiver
    stops reading from Mosquitto (more messages than the client's incoming cap would hold, yet no
    gap), never holds more than the bound, and stores every sample once, in order."""
    require_service("mqtt")
    n, bound = 6000, 100
    receiver, store = await _drain(tmp_path, 1883, n, batch=25, bound=bound, delay=0.01)
    assert store.seqs == list(range(1, n + 1))
    assert receiver.peak_queued <= bound
    assert receiver.peak_queued >= bound - 25  # the bound was reached: backpressure did engage
    assert receiver.host.read_pauses > 0 and receiver.gaps == 0 and receiver.store_failures == 0
    assert receiver.queued == 0


async def test_messages_lost_while_the_receiver_is_disconnected_are_replayed(tmp_path: Path) -> None:
    """NDATA goes at QoS 0 (Sparkplug 3.0): what the broker receives while the platform's connection
    is down never reaches it. The receiver, reconnected, asks the gateway for a rebirth, and the
    gateway's replay from its last confirmation fills the hole: every sample stored once, in order."""
    broker = Broker(tmp_path)
    broker.start()
    group = f"t{uuid.uuid4().hex[:10]}"
    host = f"host-{group}"
    n = 3000
    store = SlowStore(0.005)
    receiver = UplinkReceiver(("127.0.0.1", broker.port), group, None, host_id=host, store=store)
    receiver.host.rebirth_holdoff = 0.2
    buffer = _buffer(tmp_path / "buffer.db", n)
    types = {f"dev/t{i}": spb.SpbType.Int64 for i in range(TAGS)}
    uplink = SparkplugUplink(
        buffer, ("127.0.0.1", broker.port), group, "gw1", types, primary_host=host, batch=25, replay_after=1.0
    )
    try:
        async with _running(receiver.run()):
            await asyncio.wait_for(receiver.host.connected.wait(), 10)
            async with _running(uplink.run()):
                await wait_for(lambda: len(store.seqs) >= n // 3, timeout=30)
                client = receiver.host.client
                assert client is not None
                client._client.socket().shutdown(socket.SHUT_RDWR)  # a lost connection, not a DISCONNECT
                await wait_for(lambda: buffer.acked == n, timeout=90, step=0.1)
    finally:
        buffer.close()
        broker.kill()
    assert receiver.host.rebirths_requested >= 1 and uplink.edge.births >= 2
    assert store.seqs == list(range(1, n + 1))  # replayed, yet stored once and in order


def test_uplink_defaults_wait_for_the_platform_and_opt_out() -> None:
    default = UplinkSection()
    assert default.primary_host == "gongyun" and default.confirm is True
    opted_out = UplinkSection(primary_host="", confirm=False)
    assert opted_out.primary_host is None and opted_out.confirm is False
    with pytest.raises(ValueError, match="primary_host"):
        UplinkSection(primary_host="a/b")


async def test_default_gateway_buffers_until_the_platform_confirms(tmp_path: Path, pump: PumpServer) -> None:
    """An ``[uplink]`` with only the broker and group: nothing leaves the buffer while no platform
    host is online; once one is (as ``gongyun``), samples are acknowledged only as it confirms."""
    broker = Broker(tmp_path)  # a private broker: the host id "gongyun" is not shared with others
    broker.start()
    group = f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "buffer.db"}"\n\n'
        f'[uplink]\nurl = "mqtt://127.0.0.1:{broker.port}"\ngroup = "{group}"\n\n'
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
    )
    config, profiles = load_config(path)
    assert config.uplink.primary_host == "gongyun" and config.uplink.confirm
    gateway = Gateway(config, profiles)
    await gateway.start()
    got: list[Sample] = []
    confirmed: list[int] = []
    try:
        await wait_for(lambda: gateway.buffer.depth > 30, timeout=20)
        await asyncio.sleep(0.5)
        assert gateway.buffer.acked == 0 and not gateway.status()["uplink"]["online"]  # kept, not sent
        receiver = UplinkReceiver(
            ("127.0.0.1", broker.port), group, lambda _k, s: got.extend(s), host_id="gongyun"
        )
        receiver.confirm = False  # hold the confirmations back: the buffer must not move on its own
        async with _running(receiver.run()):
            await wait_for(lambda: len(got) > 30, timeout=20)
            await asyncio.sleep(0.5)
            assert gateway.buffer.acked == 0  # published (and PUBACKed by the broker), not confirmed
            receiver.confirm = True
            await wait_for(lambda: gateway.buffer.acked > 30, timeout=20)
            confirmed.append(gateway.buffer.acked)
        assert confirmed[0] <= max(s.seq or 0 for s in got)  # never ahead of what the platform took
        assert [s.seq for s in got] == list(range(1, len(got) + 1))  # the backlog, in order, once
    finally:
        await gateway.stop()
        broker.kill()
