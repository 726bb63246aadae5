"""Uplinks: carry buffered samples to the platform in sequence order, acknowledging only what arrived.

* :class:`SparkplugUplink` — the gateway is a Sparkplug B edge node; each batch is one NDATA whose
  metrics are named ``device/tag`` and carry the buffer sequence number (property ``gy_seq``) and
  quality (``Quality``, OPC DA codes). It publishes only while the primary host's STATE is online.
  With ``confirm`` (the default) the buffer is acknowledged when the host confirms
  (``gongyun/confirm/<group>/<node>``, JSON ``{"seq": n}``), and every birth or reconnect replays
  from the last confirmation; with ``confirm=False`` once the message is written to the broker
  connection (NDATA goes at QoS 0, as Sparkplug 3.0 requires: samples lost on the way or never
  stored by the platform are lost).
* :class:`BusUplink` — JSON batches on the platform bus (``gongyun.bus``: NATS JetStream or in-process),
  deduplicated by message id.
The platform side of the Sparkplug uplink is :class:`gongyun.edge.receiver.UplinkReceiver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiomqtt

from gongyun.core.types import Quality, Sample
from gongyun.edge.buffer import Buffer
from gongyun.edge.codec import DataType
from gongyun.edge.fleet import ERROR_METRIC, INFO_METRIC, STATE_METRIC, status_message, status_subject
from gongyun.edge.profiles import Profile
from gongyun.errors import GongyunError
from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.errors import NotOnline
from gongyun.sparkplug.node import EdgeNode, Point

log = logging.getLogger(__name__)
QUALITY_CODE = {Quality.good: 192, Quality.uncertain: 64, Quality.bad: 0}
SEQ_PROP = "gy_seq"
EPOCH_METRIC = "Gateway/BufferEpoch"
RESULT_METRIC = "Gateway/CommandResult"
OnCommand = Callable[[str | None, str, Any, dict[str, Any]], Awaitable[None]]
HISTORICAL_AFTER_S = 10.0
StatusSource = Callable[[], dict[str, Any]]
"""Returns ``Gateway.status()`` (plus ``commands``); ``devices`` maps name -> ``DeviceStatus.as_dict()``."""
STATUS_POLL_S = 0.25


def device_states(status: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Device name -> (state, last error) of a gateway status."""
    return {name: (d["state"], d.get("last_error")) for name, d in status["devices"].items()}


def confirm_topic(group: str, node: str) -> str:
    """Topic on which a host confirms receipt up to a sequence number."""
    return f"gongyun/confirm/{group}/{node}"


def spb_type(dtype: DataType, scaled: bool) -> spb.SpbType:
    """The Sparkplug type a tag is published as."""
    if dtype is DataType.bool:
        return spb.SpbType.Boolean
    if dtype is DataType.string:
        return spb.SpbType.String
    if scaled or dtype in (DataType.float32, DataType.float64):
        return spb.SpbType.Double
    return spb.SpbType.Int64


def metric_types(profiles: dict[str, Profile]) -> dict[str, spb.SpbType]:
    """``device/tag`` -> Sparkplug type for every tag of every device."""
    return {
        f"{device}/{tag.name}": spb_type(tag.type, tag.scale != 1 or tag.offset != 0)
        for device, profile in profiles.items()
        for tag in profile.tags
    }


class Uplink(Protocol):
    """What the runtime needs from an uplink."""

    def wake(self) -> None:
        """New samples are in the buffer."""

    async def run(self) -> None:
        """Deliver forever."""

    def status(self) -> dict[str, Any]:
        """JSON-ready status."""


class SparkplugUplink:
    """The gateway as a Sparkplug B edge node, fed from the buffer."""

    def __init__(
        self,
        buffer: Buffer,
        broker: tuple[str, int],
        group: str,
        node: str,
        types: dict[str, spb.SpbType],
        *,
        primary_host: str | None = None,
        confirm: bool = True,
        batch: int = 500,
        on_command: OnCommand | None = None,
        status_source: StatusSource | None = None,
        gateway: str | None = None,
        devices: dict[str, str] | None = None,
        replay_after: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: connect over TLS (with the gateway's client certificate for mutual TLS).

        ``devices`` (name -> protocol) with ``status_source``: carry each device's state.

        ``replay_after``: with ``confirm``, when samples were published but no confirmation came for
        that many seconds, publish again from the last confirmation (messages lost on the way after
        the last one sent show no gap to the host; the host drops what it has already).
        """
        self.buffer, self.batch, self.confirm = buffer, batch, confirm
        self.replay_after, self.replays = replay_after, 0
        self._progress: tuple[int, float] = (buffer.acked, 0.0)
        self.status_source = status_source
        self.edge = EdgeNode(
            group,
            node,
            broker[0],
            broker[1],
            primary_host=primary_host,
            subscriptions=[confirm_topic(group, node)] if confirm else [],
            on_message=self._on_message,
            on_command=on_command,
            tls=tls,
        )
        self.edge.define(None, EPOCH_METRIC, spb.SpbType.Int64, buffer.epoch)
        self.edge.define(None, RESULT_METRIC, spb.SpbType.String, "")
        for name, dtype in types.items():
            self.edge.define(None, name, dtype)
        self.announced: dict[str, tuple[str, str | None]] = {}
        if status_source is not None and devices is not None:
            info = json.dumps({"gateway": gateway or node, "devices": devices})
            self.edge.define(None, INFO_METRIC, spb.SpbType.String, info)
            for device in devices:  # born (DBIRTH) once its driver is connected
                self.edge.add_device(device, online=False)
                self.edge.define(device, STATE_METRIC, spb.SpbType.String, "offline")
                self.edge.define(device, ERROR_METRIC, spb.SpbType.String, "")
                self.announced[device] = ("offline", None)
        self._wake = asyncio.Event()
        self.published = 0
        self.messages = 0
        self.cursor = buffer.acked

    def wake(self) -> None:
        """New samples are in the buffer."""
        self._wake.set()

    async def _on_message(self, topic: str, raw: bytes) -> None:
        if topic != confirm_topic(self.edge.group, self.edge.node):
            return
        try:
            seq = int(json.loads(raw)["seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed confirmation %r", raw[:100])
            return
        self.buffer.ack(min(seq, self.cursor))

    def _points(self, samples: list[Sample]) -> list[Point]:
        now = time.time()
        points = []
        for s in samples:
            props: dict[str, tuple[spb.SpbType, Any]] = {
                SEQ_PROP: (spb.SpbType.UInt64, s.seq),
                "Quality": (spb.SpbType.Int32, QUALITY_CODE[s.quality]),
            }
            point = Point(f"{s.tag.device}/{s.tag.tag}", s.value, int(s.ts.timestamp() * 1000), props)
            if now - s.ts.timestamp() > HISTORICAL_AFTER_S:
                props["historical"] = (spb.SpbType.Boolean, True)
            points.append(point)
        return points

    async def _deliver(self) -> None:
        births = -1
        while True:
            if not self.edge.online.is_set():
                self.cursor = self.buffer.acked  # replay what the platform has not acknowledged
                await self.edge.online.wait()
            if self.confirm and self.edge.births != births:
                births, self.cursor = self.edge.births, self.buffer.acked
            self._replay_if_stalled()
            samples = self.buffer.read(self.cursor, self.batch)
            if not samples:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.2)
                continue
            try:
                await self.edge.publish(None, self._points(samples))
            except (NotOnline, aiomqtt.MqttError) as exc:
                log.info("uplink paused: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self.cursor = samples[-1].seq or self.cursor
            self.published += len(samples)
            self.messages += 1
            if not self.confirm:
                self.buffer.ack(self.cursor)

    def _replay_if_stalled(self) -> None:
        """Go back to the last confirmation when confirmations stopped while samples are out."""
        now, (acked, since) = time.monotonic(), self._progress
        if not self.confirm or self.cursor <= self.buffer.acked or self.buffer.acked != acked:
            self._progress = (self.buffer.acked, now)
        elif now - since > self.replay_after:
            log.info("no confirmation for %.0f s: replaying from %d", self.replay_after, acked)
            self.cursor, self._progress = acked, (acked, now)
            self.replays += 1

    async def _announce(self, device: str, state: str, error: str | None) -> None:
        """Carry one device's state: DDEATH when offline, DBIRTH when it comes back, else DDATA."""
        metrics = self.edge.devices[device]
        metrics[STATE_METRIC].value, metrics[ERROR_METRIC].value = state, error or ""
        if state == "offline":
            await self.edge.set_device_online(device, False)
        elif not self.edge.device_online[device]:
            await self.edge.set_device_online(device, True)
        else:
            now = spb.now_ms()
            await self.edge.publish(
                device, [Point(STATE_METRIC, state, now), Point(ERROR_METRIC, error or "", now)]
            )

    async def _watch_devices(self) -> None:
        """Follow the drivers' states and announce each change (re-births carry the current ones)."""
        if self.status_source is None:
            return
        while True:
            await asyncio.sleep(STATUS_POLL_S)
            if not self.edge.online.is_set():
                continue
            for device, (state, error) in device_states(self.status_source()).items():
                if device not in self.announced or self.announced[device] == (state, error):
                    continue
                try:
                    await self._announce(device, state, error)
                except (NotOnline, aiomqtt.MqttError) as exc:
                    log.info("device state of %s not sent: %s", device, exc)
                    break
                self.announced[device] = (state, error)

    async def publish_result(self, text: str) -> None:
        """Report a command outcome (JSON) to the platform as the ``Gateway/CommandResult`` metric."""
        await self.edge.publish(None, [Point(RESULT_METRIC, text, spb.now_ms())])

    async def run(self) -> None:
        """Run the edge node and the delivery loop."""
        await asyncio.gather(self.edge.run(), self._deliver(), self._watch_devices())

    def status(self) -> dict[str, Any]:
        """Uplink state for status pages."""
        return {
            "kind": "sparkplug",
            "online": self.edge.online.is_set(),
            "host_online": self.edge.host_online,
            "bdseq": self.edge.bdseq,
            "published": self.published,
            "messages": self.messages,
            "cursor": self.cursor,
        }


class BusUplink:
    """JSON batches on the platform bus (``gongyun.bus``: NATS JetStream, or in-process ``memory://``).

    Subject ``<prefix>.<tenant>.<gateway>``; body ``{"tenant", "gateway", "samples": [{"seq", "tag":
    "device/tag", "value", "ts", "quality"}]}`` (the telemetry consumer's envelope). The message id
    ``<gateway>:<epoch>:<first>-<last>`` makes a replayed batch a duplicate the bus drops; a batch is
    acknowledged in the buffer once the bus has stored it.
    """

    def __init__(
        self,
        buffer: Buffer,
        bus: Any,
        gateway: str,
        *,
        tenant: str = "default",
        prefix: str = "telemetry",
        batch: int = 500,
        status_source: StatusSource | None = None,
        status_interval: float = 2.0,
        namespace: str | None = None,
    ) -> None:
        self.buffer, self.bus, self.gateway, self.batch = buffer, bus, gateway, batch
        self.namespace = namespace  # the platform's deployment id (used when ``bus`` is a URL)
        self.status_source, self.status_interval = status_source, status_interval
        self._bus: Any = None
        self.status_sent = 0
        self.tenant = tenant
        self.subject = f"{prefix}.{tenant}.{gateway}"
        self._wake = asyncio.Event()
        self.published = 0
        self.connected = False
        self.last_error: str | None = None

    def wake(self) -> None:
        """New samples are in the buffer."""
        self._wake.set()

    async def _open(self) -> Any:
        if not isinstance(self.bus, str):
            return self.bus
        from gongyun.bus import open_bus

        bus = open_bus(self.bus, namespace=self.namespace)
        await bus.connect()
        return bus

    def body(self, samples: list[Sample]) -> bytes:
        """The JSON envelope of a batch."""
        return json.dumps(
            {"tenant": self.tenant, "gateway": self.gateway, "samples": [sample_json(s) for s in samples]}
        ).encode()

    async def run(self) -> None:
        """Deliver batches and, with a status source, the gateway's status."""
        await asyncio.gather(self._deliver(), self._report())

    async def _connected(self) -> Any:
        if self._bus is None:
            self._bus = await self._open()
            if self.status_source is not None:
                from gongyun.edge.fleet import STATUS_STREAM, STATUS_SUBJECT

                with contextlib.suppress(GongyunError):  # exists already (maybe with other limits)
                    await self._bus.ensure_stream(STATUS_STREAM, [f"{STATUS_SUBJECT}.>"], max_age_s=600)
        return self._bus

    async def send_status(self, online: bool = True) -> None:
        """Publish the gateway's status now (``online=False`` when the gateway stops)."""
        if self.status_source is None:
            return
        bus = await self._connected()
        body = status_message(self.tenant, self.status_source(), self.status_interval, online=online)
        await bus.publish(status_subject(self.tenant, self.gateway), body)
        self.status_sent += 1

    async def _report(self) -> None:
        """Status on every device state change and at least every ``status_interval`` seconds."""
        if self.status_source is None:
            return
        loop = asyncio.get_running_loop()
        last: dict[str, tuple[str, str | None]] | None = None
        due = 0.0
        while True:
            states = device_states(self.status_source())
            if states != last or loop.time() >= due:
                try:
                    await self.send_status()
                except (GongyunError, OSError, TimeoutError) as exc:
                    log.warning("gateway status not sent: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                last, due = states, loop.time() + self.status_interval
            await asyncio.sleep(STATUS_POLL_S)

    async def _deliver(self) -> None:
        """Publish batches in order; a batch is acknowledged when the bus accepted it."""
        while True:
            try:
                bus = await self._connected()
                samples = self.buffer.read(self.buffer.acked, self.batch)
                if not samples:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 0.2)
                    continue
                msg_id = f"{self.gateway}:{self.buffer.epoch}:{samples[0].seq}-{samples[-1].seq}"
                await bus.publish(
                    self.subject, self.body(samples), headers={"gongyun-gateway": self.gateway}, msg_id=msg_id
                )
            except (GongyunError, OSError, TimeoutError) as exc:  # BusUnavailable and friends: retry
                self.connected, self.last_error = False, str(exc)
                log.warning("bus uplink paused: %s", exc)
                await asyncio.sleep(0.5)
                continue
            self.connected, self.last_error = True, None
            self.published += len(samples)
            self.buffer.ack(samples[-1].seq or 0)

    def status(self) -> dict[str, Any]:
        """Uplink state for status pages."""
        return {
            "kind": "bus",
            "subject": self.subject,
            "online": self.connected,
            "published": self.published,
            "last_error": self.last_error,
        }


def sample_json(sample: Sample) -> dict[str, Any]:
    """A sample as a JSON object (the wire format of the bus uplink)."""
    return {
        "seq": sample.seq,
        "tag": str(sample.tag),
        "value": sample.value,
        "ts": sample.ts.isoformat(),
        "quality": str(sample.quality),
    }
