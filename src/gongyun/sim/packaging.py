"""Packaging line as a Sparkplug B edge node (group ``Gongyun``, node ``PackLine1``, device ``Filler``).

Metrics of ``Filler``: ``Count``, ``Good``, ``Rejects`` (Int64), ``State`` (String),
``FillWeight`` (Double, g), ``Speed`` (Double, packs/min, writable through DCMD).
Protocol faults for tests: :meth:`send_garbage` (a payload that is not protobuf) and
:meth:`skip_sequence` (the next DDATA jumps its seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from gongyun.edge import spb
from gongyun.edge.spnode import EdgeNode, Point
from gongyun.sim.physics import PackagingLine

log = logging.getLogger(__name__)
DEVICE = "Filler"
METRICS = {
    "Count": spb.SpbType.Int64,
    "Good": spb.SpbType.Int64,
    "Rejects": spb.SpbType.Int64,
    "State": spb.SpbType.String,
    "FillWeight": spb.SpbType.Double,
    "Speed": spb.SpbType.Double,
}


@dataclass
class PackagingServer:
    """Runs the packaging line model and publishes it as a Sparkplug B edge node."""

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    group: str = "Gongyun"
    node: str = "PackLine1"
    seed: int = 3
    time_scale: float = 1.0
    interval: float = 1.0
    model: PackagingLine = field(init=False)
    edge: EdgeNode = field(init=False)
    published: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = PackagingLine(seed=self.seed)
        self.edge = EdgeNode(self.group, self.node, self.mqtt_host, self.mqtt_port, on_command=self._command)
        for name, dtype in METRICS.items():
            self.edge.define(DEVICE, name, dtype, self._values()[name])

    def _values(self) -> dict[str, Any]:
        m = self.model
        return {
            "Count": m.count,
            "Good": m.good,
            "Rejects": m.rejects,
            "State": m.state,
            "FillWeight": round(m.fill_weight, 3),
            "Speed": m.rate_per_min,
        }

    async def _command(self, device: str | None, name: str, value: Any, props: dict[str, Any]) -> None:
        if device == DEVICE and name == "Speed" and isinstance(value, int | float) and 0 <= value <= 600:
            self.model.rate_per_min = float(value)
        elif device == DEVICE and name == "State" and value in ("RUNNING", "STOPPED"):
            self.model.state = str(value)

    async def _loop(self) -> None:
        last = time.monotonic()
        previous: dict[str, Any] = {}
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.model.step((now - last) * self.time_scale)
            last = now
            values = self._values()
            changed = [
                Point(name, value, spb.now_ms())
                for name, value in values.items()
                if previous.get(name) != value
            ]
            if not changed:
                continue
            try:
                await self.edge.publish(DEVICE, changed)
            except Exception as exc:  # offline: the line keeps producing, values are re-sent on change
                log.debug("packaging line not published: %s", exc)
                continue
            previous = values
            self.published += 1

    async def start(self) -> None:
        """Connect to the broker and start publishing."""
        self._tasks = [asyncio.create_task(self.edge.run()), asyncio.create_task(self._loop())]
        await asyncio.wait_for(self.edge.online.wait(), 10)
        log.info(
            "packaging line (Sparkplug B) %s/%s on %s:%d",
            self.group,
            self.node,
            self.mqtt_host,
            self.mqtt_port,
        )

    async def send_garbage(self) -> None:
        """Publish a DDATA whose payload is not protobuf (fault injection)."""
        assert self.edge.client is not None
        await self.edge.client.publish(self.edge.topic("DDATA", DEVICE), b"\xff\xfenot protobuf{", qos=1)

    def skip_sequence(self, by: int = 5) -> None:
        """Make the next message's seq jump (fault injection for gap detection)."""
        self.edge.seq = (self.edge.seq + by) % 256

    async def stop(self) -> None:
        """Publish NDEATH and disconnect."""
        await self.edge.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
