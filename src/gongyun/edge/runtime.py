"""The gateway runtime: drivers poll and subscribe, samples go through the durable buffer to the uplink."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gongyun.core.types import Sample
from gongyun.edge.buffer import Buffer
from gongyun.edge.commands import CommandPolicy, CommandService, JsonlJournal
from gongyun.edge.config import DeviceConfig, EdgeConfig
from gongyun.edge.drivers.base import Driver
from gongyun.edge.errors import CommandRefused, EdgeConfigError
from gongyun.edge.profiles import Profile, Protocol
from gongyun.edge.uplink import BusUplink, SparkplugUplink, Uplink, metric_types
from gongyun.errors import GongyunError
from gongyun.sparkplug.tls import client_context

log = logging.getLogger(__name__)


def driver_class(protocol: Protocol) -> type[Driver]:
    """The driver for a protocol, from the ``gongyun.drivers`` entry points (built-ins register there too)."""
    for ep in entry_points(group="gongyun.drivers"):
        if ep.name == str(protocol):
            cls: type[Driver] = ep.load()
            return cls
    raise EdgeConfigError(
        f"no driver registered for protocol {protocol} under the 'gongyun.drivers' entry points "
        "(is gongyun installed? pip install -e .)"
    )


def parse_broker(url: str) -> tuple[str, int]:
    """``mqtt://host:port``, ``mqtts://host:port`` or ``host:port`` -> (host, port)."""
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host:
        return rest, 8883 if url.startswith("mqtts://") else 1883
    return host.strip("[]"), int(port)


class Gateway:
    """Runs every configured device, the buffer and the uplink."""

    def __init__(
        self, config: EdgeConfig, profiles: dict[str, Profile], flush_interval: float = 0.05, bus: Any = None
    ) -> None:
        """``bus``: a connected ``gongyun.bus.Bus`` to share (the embedded profile's in-process bus)."""
        self.config, self.profiles, self.flush_interval = config, profiles, flush_interval
        self.shared_bus = bus
        g = config.gateway
        self.buffer = Buffer(g.buffer, max_bytes=int(g.max_buffer_mb * 1024 * 1024), max_age_s=g.max_age_s)
        self.pending: list[Sample] = []
        self.drivers: dict[str, Driver] = {}
        for device in config.devices:
            if device.enabled:
                self.drivers[device.name] = self.make_driver(device, profiles[device.name])
        journal = JsonlJournal(Path(g.buffer).with_suffix(".commands.jsonl"))
        self.commands = CommandService(self.drivers, journal)
        c, u = config.commands, config.uplink
        secret = c.secret.get_secret_value() if c.secret is not None else None
        self.command_policy = CommandPolicy(
            f"{u.group}/{u.node or g.id}",
            c.tenant or u.tenant,
            c.allowed_roles,
            secret,
            c.max_age_s,
            nonce_path=Path(g.buffer).with_suffix(".nonces.json"),
        )
        self._command_tasks: set[asyncio.Task[None]] = set()
        self.uplink: Uplink | None = self._make_uplink()
        self.started = datetime.now(UTC)
        self.crashes: dict[str, int] = {}
        self._tasks: list[asyncio.Task[Any]] = []

    def make_driver(self, device: DeviceConfig, profile: Profile) -> Driver:
        """Instantiate the driver for a device."""
        return driver_class(profile.profile.protocol)(device, profile, self.emit)

    def _make_uplink(self) -> Uplink | None:
        u, gid = self.config.uplink, self.config.gateway.id
        if u.kind == "mqtt":
            return SparkplugUplink(
                self.buffer,
                parse_broker(u.url),
                u.group,
                u.node or gid,
                metric_types(self.profiles),
                primary_host=u.primary_host,
                confirm=u.confirm,
                batch=u.batch,
                on_command=self._on_remote_command,
                status_source=self.remote_status,
                gateway=gid,
                devices={name: d.protocol for name, d in self.drivers.items()},
                tls=client_context(u.ca_file, u.cert_file, u.key_file) if u.ca_file else None,
            )
        if u.kind in ("bus", "nats"):
            target = self.shared_bus if self.shared_bus is not None else u.url
            return BusUplink(
                self.buffer,
                target,
                gid,
                tenant=u.tenant,
                prefix=u.subject,
                namespace=u.deployment_id,
                batch=u.batch,
                status_source=self.remote_status,
                status_interval=u.status_interval,
            )
        return None

    async def _on_remote_command(
        self, device: str | None, name: str, value: Any, props: dict[str, Any]
    ) -> None:
        """An NCMD ``device/tag`` from the platform: run it as a command without blocking the MQTT loop."""
        task = asyncio.create_task(self._remote_command(device, name, value, props))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _remote_command(self, device: str | None, name: str, value: Any, props: dict[str, Any]) -> None:
        target, sep, tag = name.partition("/")
        if device is not None or not sep:
            log.warning("ignoring command for %r: not a device/tag metric", name)
            return
        request, why = self.command_policy.admit(target, tag, value, props)
        result: dict[str, Any]
        if why is not None:
            claimed = props.get("role")
            record = await self.commands.refuse(request, why, None if claimed is None else str(claimed))
            result = {**asdict(record), "code": CommandRefused.code}
        else:
            try:
                result = asdict(await self.commands.execute(request))
            except GongyunError as exc:
                last = self.commands.history[-1] if self.commands.history else None
                recorded = last is not None and (last.device, last.tag, last.value) == (target, tag, value)
                result = (
                    asdict(last)
                    if recorded and last is not None
                    else {"status": "refused", "detail": exc.message}
                )
                result["code"] = exc.code
        result["command_id"] = props.get("command_id")
        if isinstance(self.uplink, SparkplugUplink):
            with contextlib.suppress(Exception):
                await self.uplink.publish_result(json.dumps(result, default=str))

    def emit(self, samples: list[Sample]) -> None:
        """Drivers hand samples here; they are made durable within ``flush_interval``."""
        self.pending.extend(samples)

    def flush(self) -> int:
        """Write pending samples to the buffer in one transaction."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, []
        self.buffer.append(batch)
        if self.uplink is not None:
            self.uplink.wake()
        return len(batch)

    async def _flusher(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.flush_interval)
            self.flush()
            ticks += 1
            if ticks % 200 == 0:
                self.buffer.enforce()

    async def _supervise(
        self, name: str, run: Callable[[], Awaitable[None]], driver: Driver | None = None
    ) -> None:
        """Keep a driver or the uplink running: a crash is logged, counted and the task restarted."""
        while True:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.crashes[name] = self.crashes.get(name, 0) + 1
                if driver is not None:
                    driver.status.error("crash", "driver crashed; restarting")
                log.exception("%s crashed; restarting in 1 s", name)
                await asyncio.sleep(1.0)

    async def _status_writer(self) -> None:
        path = Path(self.config.gateway.buffer).with_suffix(".status.json")
        while True:
            await asyncio.sleep(self.config.gateway.status_interval)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.status(), default=str, indent=1))
            os.replace(tmp, path)

    def status(self) -> dict[str, Any]:
        """Per-device status, buffer depth and uplink state."""
        return {
            "gateway": self.config.gateway.id,
            "started": self.started.isoformat(),
            "devices": {name: d.status.as_dict() for name, d in self.drivers.items()},
            "buffer": self.buffer.stats(),
            "uplink": self.uplink.status() if self.uplink else {"kind": "none"},
            "crashes": dict(self.crashes),
        }

    def remote_status(self) -> dict[str, Any]:
        """Status for the platform: :meth:`status` plus the latest command records."""
        return {**self.status(), "commands": [asdict(r) for r in self.commands.history[-50:]]}

    async def start(self) -> None:
        """Start drivers, flusher, uplink and status writer as tasks."""
        self._tasks = [
            asyncio.create_task(self._supervise(f"driver:{n}", d.run, d), name=f"driver:{n}")
            for n, d in self.drivers.items()
        ]
        self._tasks.append(asyncio.create_task(self._flusher(), name="flusher"))
        self._tasks.append(asyncio.create_task(self._status_writer(), name="status"))
        if self.uplink is not None:
            self._tasks.append(asyncio.create_task(self._supervise("uplink", self.uplink.run), name="uplink"))

    async def stop(self) -> None:
        """Tell the platform we are going (NDEATH / offline status), stop everything, flush and close."""
        uplink = self.uplink
        if isinstance(uplink, BusUplink):  # announced while the uplink is still connected
            with contextlib.suppress(Exception):
                await asyncio.wait_for(uplink.send_status(online=False), 2)
        if isinstance(uplink, SparkplugUplink):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(uplink.edge.close(), 2)
        for task in [*self._tasks, *self._command_tasks]:
            task.cancel()
        if self._tasks:  # bounded: a library that ignores cancellation must not keep the gateway alive
            _, stuck = await asyncio.wait([*self._tasks, *self._command_tasks], timeout=5)
            for task in stuck:
                log.warning("task %s did not stop in time", task.get_name())
        self._tasks.clear()
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.close(), 2)
        self.flush()
        self.buffer.close()

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
