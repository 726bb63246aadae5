"""The Sparkplug B driver: one edge node's metrics (through the host application of
:mod:`gongyun.sparkplug.host`) mapped to the tags of a profile."""

from __future__ import annotations

from typing import Any

from gongyun import __version__
from gongyun.core.types import Quality
from gongyun.edge.drivers.base import Driver, DriverManifest, Value, broker_tls
from gongyun.edge.errors import DeviceError
from gongyun.edge.profiles import Tag
from gongyun.sparkplug.decode import Metrics, quality_of, sample_value
from gongyun.sparkplug.errors import NotOnline
from gongyun.sparkplug.host import SparkplugHost


class SparkplugDriver(Driver):
    """One Sparkplug B edge node (and optionally one of its devices) as a gateway device."""

    protocol = "sparkplug"
    manifest = DriverManifest(
        name="sparkplug",
        version=__version__,
        protocol="sparkplug",
        library="aiomqtt==2.5.1, protobuf==7.36.2",
        reads="Sparkplug B births, data and deaths",
        writes="NCMD/DCMD metric writes",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        host, _, port = self.config.broker.rpartition(":")
        self.by_metric = {(t.device or self.config.sparkplug_device, t.metric): t for t in self.profile.tags}
        self.last: dict[str, Value] = {}
        self.host = SparkplugHost(
            (host or "127.0.0.1", int(port or 1883)),
            self.config.group or "",
            self.config.node or "",
            host_id=self.config.host_id,
            on_data=self._on_data,
            on_state=self._on_state,
            on_error=self._on_error,
            tls=broker_tls(self.config),
        )

    def _on_data(self, key: str, device: str | None, metrics: Metrics, kind: str) -> None:
        samples = []
        for m in metrics.rows():
            tag = self.by_metric.get((device, m.name))
            if tag is None:
                continue
            value = sample_value(m.value)
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and (tag.scale != 1 or tag.offset != 0)
            ):
                value = float(value) * tag.scale + tag.offset
            quality = quality_of(m.properties) if value is not None else Quality.bad
            self.last[tag.name] = value
            samples.append(self.sample(tag, value, m.ts, quality))
        if samples:
            self.status.good()
            self.emit(samples)

    def _on_state(self, key: str, device: str | None, online: bool) -> None:
        mine = [
            t
            for t in self.profile.tags
            if device is None or (t.device or self.config.sparkplug_device) == device
        ]
        if device is None:
            self.status.connected = online
        if not online:
            self.mark_bad(mine)

    def _on_error(self, key: str, kind: str, message: str) -> None:
        self.status.error(kind, message)

    async def run(self) -> None:
        """Consume the node's messages until cancelled."""
        await self.host.run(self.config.reconnect_delay)

    async def read(self, tag: Tag) -> Value:
        """The last value reported (Sparkplug is report-by-exception)."""
        if tag.name not in self.last:
            raise DeviceError(f"no value reported yet for {tag.name}", kind="no_data")
        return self.last[tag.name]

    async def write(self, tag: Tag, value: Value) -> None:
        """Send a DCMD (or NCMD for node metrics) to the edge node."""
        try:
            await self.host.command(
                self.config.group or "",
                self.config.node or "",
                tag.device or self.config.sparkplug_device,
                tag.metric or tag.name,
                value,
            )
        except NotOnline as exc:
            raise DeviceError(exc.message, kind="connect") from exc
