"""Packaging line as a Sparkplug B edge node (group ``Gongyun``, node ``PackLine1``, device ``Filler``).

Metrics of ``Filler``: ``Count``, ``Good``, ``Rejects`` (Int64), ``State`` (String),
``FillWeight`` (Double, g), ``Speed`` (Double, packs/min, writable through DCMD), ``Recipe``
(an instance of the node's Template definition ``Recipe``: ``Product`` String, ``TargetWeight``
and ``Tolerance`` Double, parameter ``Line``) and ``Weighings`` (a DataSet of the last packs:
``Pack`` Int64, ``Weight`` Double, ``Good`` Boolean), ``Batch`` and ``MaterialLot`` (Int64: the
numbers of the batch being filled and of the material lot loaded, numbered on from the minute the
line started, ``yymmddHHMM`` × 1000, so a restarted line never repeats a number).
Protocol faults for tests: :meth:`send_garbage` (a payload that is not protobuf),
:meth:`skip_sequence` (the next DDATA jumps its seq) and :meth:`send_malformed` (a DDATA whose
DataSet or Template is invalid next to a valid metric).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gongyun.sim.physics import PackagingLine
from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.node import EdgeNode, Point
from gongyun.sparkplug.values import DataSet, Member, Template, encode_dataset, encode_template

log = logging.getLogger(__name__)
DEVICE = "Filler"
METRICS = {
    "Count": spb.SpbType.Int64,
    "Good": spb.SpbType.Int64,
    "Rejects": spb.SpbType.Int64,
    "State": spb.SpbType.String,
    "FillWeight": spb.SpbType.Double,
    "Speed": spb.SpbType.Double,
    "Recipe": spb.SpbType.Template,
    "Weighings": spb.SpbType.DataSet,
    "Batch": spb.SpbType.Int64,
    "MaterialLot": spb.SpbType.Int64,
}
RECIPE = Template(
    [
        Member("Product", spb.SpbType.String, "water 500 g"),
        Member("TargetWeight", spb.SpbType.Double, 500.0),
        Member("Tolerance", spb.SpbType.Double, 7.5),
    ],
    is_definition=True,
    version="1",
    parameters={"Line": (spb.SpbType.String, "PackLine1")},
)
WEIGHINGS = (("Pack", spb.SpbType.Int64), ("Weight", spb.SpbType.Double), ("Good", spb.SpbType.Boolean))
KEEP_WEIGHINGS = 5


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
    weighings: deque[tuple[int, float, bool]] = field(default_factory=lambda: deque(maxlen=KEEP_WEIGHINGS))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  # TLS to the broker, with the node's client certificate

    def __post_init__(self) -> None:
        base = int(time.strftime("%y%m%d%H%M", time.gmtime())) * 1000
        self.model = PackagingLine(seed=self.seed, batch_base=base + 1, lot_base=base + 1)
        self.edge = EdgeNode(
            self.group, self.node, self.mqtt_host, self.mqtt_port, on_command=self._command, tls=self.tls
        )
        self.edge.define_template("Recipe", RECIPE)
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
            "Recipe": Template(
                [
                    Member("TargetWeight", spb.SpbType.Double, m.target_g),
                    Member("Tolerance", spb.SpbType.Double, m.tolerance_g),
                ],
                ref="Recipe",
            ),
            "Weighings": DataSet(
                tuple(name for name, _ in WEIGHINGS),
                tuple(dtype for _, dtype in WEIGHINGS),
                tuple(self.weighings),
            ),
            "Batch": m.batch,
            "MaterialLot": m.material_lot,
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
            before = self.model.count
            self.model.step((now - last) * self.time_scale)
            last = now
            if self.model.count != before:
                m = self.model
                good = abs(m.fill_weight - m.target_g) <= m.tolerance_g
                self.weighings.append((m.count, round(m.fill_weight, 3), good))
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
        await self.edge.client.publish(self.edge.topic("DDATA", DEVICE), b"\xff\xfenot protobuf{", qos=0)

    async def send_malformed(self, what: str) -> None:
        """Publish a DDATA with a valid ``Count`` and, per ``what``, a DataSet whose column names and
        types disagree (``"dataset"``) or a Template instance of an undefined template (``"template"``)."""
        payload = spb.Payload()
        good = payload.metrics.add(name="Count", timestamp=spb.now_ms())
        spb.set_metric_value(good, self.model.count, spb.SpbType.Int64)
        bad = payload.metrics.add(timestamp=spb.now_ms())
        if what == "dataset":
            bad.name, bad.datatype = "Weighings", int(spb.SpbType.DataSet)
            encode_dataset(bad.dataset_value, DataSet(("Pack",), (spb.SpbType.Int64,), ((1,),)))
            bad.dataset_value.columns.append("Weight")  # two names, one type, one element per row
        elif what == "template":
            bad.name, bad.datatype = "Recipe", int(spb.SpbType.Template)
            encode_template(bad.template_value, Template([], ref="NoSuchRecipe"))
        else:
            raise ValueError(f"unknown malformation {what!r}")
        await self.edge.publish_payload("DDATA", DEVICE, payload)

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
