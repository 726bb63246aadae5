"""Plain MQTT driver (aiomqtt): JSON payloads on topics mapped to tags by a profile.

Each tag names a ``topic`` (wildcards allowed), a dotted ``path`` into the JSON document
(``value``, ``data.temp``, ``readings.0``; ``$`` for a bare JSON scalar) and optionally a
``ts_path`` (epoch seconds/milliseconds or ISO 8601). Writes publish ``{"value": v}`` to
``<topic>/set``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from paho.mqtt.client import topic_matches_sub

from gongyun import __version__
from gongyun.core.types import Quality
from gongyun.edge.drivers.base import Driver, DriverManifest, Value, broker_tls
from gongyun.edge.errors import DecodeError, DeviceError
from gongyun.edge.profiles import Tag

log = logging.getLogger(__name__)


def extract(document: Any, path: str) -> Any:
    """Follow a dotted path into parsed JSON (list indices allowed); ``$`` is the document."""
    if path in ("$", ""):
        return document
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise DecodeError(f"path {path!r} not found")
    return node


def parse_ts(raw: Any) -> datetime:
    """Timestamp from epoch seconds, epoch milliseconds or ISO 8601."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = raw / 1000 if raw > 1e11 else raw
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise DecodeError(f"bad timestamp {raw!r}") from exc
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    raise DecodeError(f"bad timestamp {raw!r}")


class MqttJsonDriver(Driver):
    """Subscribes to the profile's topics and decodes JSON payloads into samples."""

    protocol = "mqtt"
    manifest = DriverManifest(
        name="mqtt",
        version=__version__,
        protocol="mqtt",
        library="aiomqtt==2.5.1",
        reads="JSON messages on mapped topics",
        writes="JSON to <topic>/set",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        host, _, port = self.config.broker.rpartition(":")
        self.broker = (host or "127.0.0.1", int(port or 1883))
        self.tls = broker_tls(self.config)
        self.client: aiomqtt.Client | None = None
        self.last: dict[str, Value] = {}

    def on_message(self, topic: str, raw: bytes) -> None:
        """Decode one message for every tag whose topic filter matches."""
        tags = [t for t in self.profile.tags if t.topic and topic_matches_sub(t.topic, topic)]
        if not tags:
            return
        now = datetime.now(UTC)
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self.status.error("decode", f"{topic}: not JSON: {exc}")
            self.mark_bad(tags, now)
            return
        samples = []
        for tag in tags:
            try:
                value = extract(document, tag.path)
                ts = parse_ts(extract(document, tag.ts_path)) if tag.ts_path else now
                if isinstance(value, dict | list):
                    raise DecodeError(f"path {tag.path!r} is not a scalar")
            except DecodeError as exc:
                self.status.error("decode", f"{topic}: {tag.name}: {exc}")
                samples.append(self.sample(tag, None, now, Quality.bad))
                continue
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and (tag.scale != 1 or tag.offset != 0)
            ):
                value = float(value) * tag.scale + tag.offset
            self.last[tag.name] = value
            samples.append(self.sample(tag, value, ts))
        self.status.good()
        self.emit(samples)

    async def run(self) -> None:
        """Subscribe and consume; reconnect forever."""
        topics = sorted({t.topic for t in self.profile.tags if t.topic})
        while True:
            try:
                async with aiomqtt.Client(*self.broker, clean_session=True, tls_context=self.tls) as client:
                    self.client = client
                    for topic in topics:
                        await client.subscribe(topic, qos=1)
                    self.status.connected = True
                    self.status.reconnects += 1
                    async for message in client.messages:
                        raw = (
                            message.payload
                            if isinstance(message.payload, bytes)
                            else str(message.payload).encode()
                        )
                        self.on_message(str(message.topic), raw)
            except aiomqtt.MqttError as exc:
                self.status.error("connect", str(exc))
                log.warning("%s: MQTT error %s; reconnecting", self.device, exc)
            finally:
                self.client = None
                self.status.connected = False
            self.mark_bad(list(self.profile.tags))
            await asyncio.sleep(self.config.reconnect_delay)

    async def read(self, tag: Tag) -> Value:
        """The last value received."""
        if tag.name not in self.last:
            raise DeviceError(f"no message received yet for {tag.name}", kind="no_data")
        return self.last[tag.name]

    async def write(self, tag: Tag, value: Value) -> None:
        """Publish ``{"value": v}`` to ``<topic>/set``."""
        if self.client is None or not tag.topic or any(c in tag.topic for c in "+#"):
            raise DeviceError(f"cannot write {tag.name}: not connected or wildcard topic", kind="connect")
        await self.client.publish(f"{tag.topic}/set", json.dumps({"value": value}), qos=1)
