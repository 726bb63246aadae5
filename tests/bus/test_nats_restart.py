"""NATS only: a private JetStream server is killed and restarted; the bus reconnects and nothing is lost."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gongyun.bus import Bus, Message, open_bus
from gongyun.errors import BusUnavailable
from tests.services import free_port, port_open, require_path

pytestmark = [pytest.mark.nats, pytest.mark.slow]

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class PrivateNats:
    """A nats-server with JetStream on an ephemeral port and a store under tmp_path."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with asyncio.timeout(10):
            while not port_open("127.0.0.1", self.port, timeout=0.1):
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


@pytest.fixture
async def private_nats(tmp_path: Path) -> AsyncIterator[PrivateNats]:
    require_path(NATS_SERVER, "the nats-server binary")
    server = PrivateNats(tmp_path / "js")
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


async def publish_retrying(bus: Bus, subject: str, data: bytes, msg_id: str) -> None:
    """Publish until the (reconnecting) bus accepts; msg_id makes the retries safe."""
    async with asyncio.timeout(20):
        while True:
            try:
                await bus.publish(subject, data, msg_id=msg_id)
                return
            except BusUnavailable:
                await asyncio.sleep(0.2)


async def test_server_restart_loses_nothing(private_nats: PrivateNats) -> None:
    bus = open_bus(private_nats.url)
    await bus.connect()
    got: dict[bytes, int] = {}
    all_in = asyncio.Event()
    wanted = {f"{i}".encode() for i in range(10)}

    async def take(msg: Message) -> None:
        got[msg.data] = got.get(msg.data, 0) + 1
        await msg.ack()
        if set(got) == wanted:
            all_in.set()

    try:
        await bus.ensure_stream("restart", ["plant.>"])
        await bus.subscribe("plant.>", durable="ingest", handler=take, ack_wait_s=2.0)
        for i in range(5):
            await bus.publish("plant.line1", f"{i}".encode(), msg_id=f"m{i}")
        async with asyncio.timeout(10):
            while len(got) < 5:
                await asyncio.sleep(0.05)

        await private_nats.kill()
        await asyncio.sleep(0.5)
        await private_nats.start()  # same port, same store: streams and the durable survive

        for i in range(5, 10):
            await publish_retrying(bus, "plant.line1", f"{i}".encode(), f"m{i}")
        async with asyncio.timeout(20):
            await all_in.wait()
        assert set(got) == wanted
        await bus.ping()
    finally:
        await bus.close()
