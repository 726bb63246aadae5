"""The sensor: a capture source, the decoder, the detector and the outbox shipped over the bus.

``gongyun ids sensor`` runs one. Capture runs in a thread (a file read, or a blocking AF_PACKET
socket); what it produces goes to the :class:`~gongyun.security.ids.outbox.Outbox` on disk; an
asyncio task ships the outbox to the bus in order, with message ids that make retries
idempotent, and waits out outages. Subjects (stream ``IDS``, ``ids.>``):

* ``ids.<tenant>.<sensor>.events``: a JSON list of events
* ``ids.<tenant>.<sensor>.records``: a JSON list of decoded records (when ``ship_records``)
* ``ids.<tenant>.<sensor>.health``: counters, rates, drops, outbox depth, communication map
* ``ids.<tenant>.<sensor>.control``: to the sensor: ``{"accept": event}`` extends its baseline
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gongyun.errors import GongyunError, ValidationFailed
from gongyun.security.ids.capture import Frame, LiveCapture, read_capture
from gongyun.security.ids.decoder import DEFAULT_PORTS, Decoder
from gongyun.security.ids.detect import Baseline, Detector, DetectorConfig, Event
from gongyun.security.ids.outbox import Outbox
from gongyun.security.ids.rules import load_rules
from gongyun.security.ids.stats import Stats

log = logging.getLogger("gongyun.security.ids.sensor")
STREAM = "IDS"
SUBJECTS = ["ids.>"]
MAX_AGE_S = 7 * 86400
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def subject(tenant: str, sensor: str, kind: str) -> str:
    """The bus subject of a sensor's messages of one kind."""
    return f"ids.{tenant}.{sensor}.{kind}"


def _json(obj: Any) -> bytes:
    def default(o: Any) -> Any:
        if isinstance(o, bytes):
            return o.hex()
        if isinstance(o, set):
            return sorted(o)
        return str(o)

    return json.dumps(obj, default=default, separators=(",", ":")).encode()


@dataclass
class SensorConfig:
    """What a sensor reads, how it detects and where it ships."""

    name: str = "sensor-1"
    tenant: str = ""
    ports: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    rules: list[str] = field(default_factory=list)  # extra rules files
    starter_rules: bool = True
    learn_s: float = 0.0
    baseline_path: str | None = None
    outbox_path: str = ":memory:"
    ship_records: bool = True
    records_per_message: int = 200
    heartbeat_s: float = 5.0
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        for what, value in (("sensor name", self.name), ("tenant", self.tenant)):
            if value and not _NAME.match(value):
                raise ValidationFailed(f"the {what} must be 1-64 letters, digits, '-' or '_': {value!r}")


class Sensor:
    """One sensor's pipeline; thread-safe between one capture thread and the shipper."""

    def __init__(self, config: SensorConfig, outbox: Outbox | None = None) -> None:
        self.config = config
        self.stats = Stats()
        self.decoder = Decoder(config.ports, self.stats)
        baseline = None
        if config.baseline_path and Path(config.baseline_path).exists():
            baseline = Baseline.from_dict(json.loads(Path(config.baseline_path).read_text()))
        self.detector = Detector(
            load_rules(config.rules, starter=config.starter_rules),
            config.detector,
            learn_s=config.learn_s if baseline is None else 0.0,
            baseline=baseline,
            sensor=config.name,
        )
        self.outbox = outbox or Outbox(config.outbox_path)
        self.events: list[Event] = []  # kept in memory too (bounded), for the CLI and tests
        self.on_event: Callable[[Event], None] | None = None
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._was_learning = self.detector.allowlist and baseline is None
        self.started = time.time()
        self.drops = 0
        self.stop_flag = threading.Event()
        self.shipped = 0

    # -- capture side ---------------------------------------------------------------------
    def handle(self, records: list[Any]) -> list[Event]:
        """Detect on decoded records; queue events (and records) for shipping."""
        events: list[Event] = []
        with self._lock:
            for rec in records:
                for ev in self.detector.process(rec):
                    events.append(ev)
                if self.config.ship_records:
                    self._records.append(rec.to_dict())
            if self._was_learning and not self.detector.learning:
                self._was_learning = False
                self.save_baseline()
            rows: list[tuple[str, bytes]] = []
            if events:
                self.stats.count("events", len(events))
                rows.append(("events", _json([e.to_dict() for e in events])))
                self.events.extend(events)
                del self.events[:-10000]
            n = self.config.records_per_message
            while len(self._records) >= n:
                rows.append(("records", _json(self._records[:n])))
                del self._records[:n]
            self.outbox.put_many(rows)
        if self.on_event is not None:
            for ev in events:
                self.on_event(ev)
        return events

    def feed(self, frames: Iterable[Frame | None]) -> None:
        """Decode and detect a stream of frames until it ends or ``stop_flag`` is set."""
        out: list[Any] = []
        last_beat = time.monotonic()
        for item in frames:
            if item is not None:
                self.decoder.frame(item[0], item[1], item[2], out)
                if out:
                    self.handle(out)
                    out = []
            now = time.monotonic()
            if now - last_beat >= self.config.heartbeat_s:
                last_beat = now
                self.heartbeat()
            if self.stop_flag.is_set():
                break
        self.decoder.flush(out)
        self.handle(out)
        self.flush_records()
        self.heartbeat()

    def flush_records(self) -> None:
        """Queue records held for a full message."""
        with self._lock:
            if self._records:
                self.outbox.put(("records"), _json(self._records))
                self._records = []

    def run_file(self, path: str | Path) -> None:
        """Read a pcap/pcapng file to its end."""
        self.feed(read_capture(path, self.stats))

    def run_live(self, interface: str = "lo") -> None:
        """Capture from an interface until ``stop_flag`` is set."""
        cap = LiveCapture(interface)
        self._live = cap
        try:
            self.feed(cap.frames())
        finally:
            self.drops += cap.drops()
            cap.close()

    def health(self) -> dict[str, Any]:
        """Counters, rates, drops, outbox depth, learning state and the communication map."""
        up = max(time.time() - self.started, 1e-9)
        live = getattr(self, "_live", None)
        if live is not None:
            self.drops += live.drops()
        return {
            "sensor": self.config.name,
            "ts": time.time(),
            "uptime_s": up,
            "packets": self.stats.counts["packets"],
            "packets_per_s": self.stats.counts["packets"] / up,
            "drops": self.drops,
            "stats": self.stats.to_dict(),
            "outbox": self.outbox.depth(),
            "outbox_dropped": self.outbox.dropped,
            "learning": self.detector.learning and self.detector.allowlist,
            "rules": len(self.detector.rules),
            "flows": self.decoder.communication()[:500],
        }

    def heartbeat(self) -> None:
        """Queue a health message."""
        self.outbox.put("health", _json(self.health()))

    def save_baseline(self) -> None:
        """Write the learned baseline to ``baseline_path`` (if set)."""
        if self.config.baseline_path:
            p = Path(self.config.baseline_path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(self.detector.baseline.to_dict(), indent=1))

    def accept(self, event: dict[str, Any]) -> bool:
        """Accept a deviation into the baseline (the platform audits who did it)."""
        with self._lock:
            ok = self.detector.baseline.accept(event)
            if ok:
                self.save_baseline()
        return ok

    # -- shipping side --------------------------------------------------------------------
    async def ship(self, bus: Any, stop: asyncio.Event, *, batch: int = 100, retry_s: float = 1.0) -> None:
        """Ship the outbox to the bus until ``stop`` is set and the outbox is empty."""
        from gongyun.bus import Envelope
        from gongyun.errors import ServiceUnavailable

        cfg = self.config
        ready = False
        while True:
            rows = self.outbox.batch(batch)
            if not rows:
                if stop.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
                continue
            try:
                if not ready:
                    await bus.ensure_stream(STREAM, SUBJECTS, max_age_s=MAX_AGE_S)
                    ready = True
                envs = [
                    Envelope(
                        subject(cfg.tenant, cfg.name, kind), data, msg_id=f"{cfg.name}-{self.started:.0f}-{i}"
                    )
                    for i, kind, data in rows
                ]
                await bus.publish_many(envs)
            except (ServiceUnavailable, OSError, TimeoutError) as exc:
                self.stats.count("ship.retries")
                log.warning("bus unavailable (%s): %d rows wait in the outbox", exc, self.outbox.depth())
                ready = False
                await asyncio.sleep(retry_s)
                continue
            except GongyunError:
                log.exception("the bus refused a batch; it is kept and retried")
                await asyncio.sleep(retry_s)
                continue
            self.outbox.ack([i for i, _, _ in rows])
            self.shipped += len(rows)

    async def control(self, bus: Any) -> Any:
        """Follow ``ids.<tenant>.<sensor>.control`` (baseline accepts from the platform)."""
        cfg = self.config

        async def handle(msg: Any) -> None:
            try:
                body = json.loads(msg.data)
            except ValueError:
                body = {}
            if isinstance(body, dict) and isinstance(body.get("accept"), dict):
                self.accept(body["accept"])
            await msg.ack()

        await bus.ensure_stream(STREAM, SUBJECTS, max_age_s=MAX_AGE_S)
        return await bus.subscribe(
            subject(cfg.tenant, cfg.name, "control"),
            durable=f"ids-ctl-{cfg.tenant[:16]}-{cfg.name}"[:64],
            handler=handle,
        )


class HttpBus:
    """Ships a sensor's outbox to the platform's HTTP API instead of the bus (same message bodies).

    For sensors that cannot reach the bus (an embedded platform's bus lives inside its process):
    ``events`` and ``health`` go to ``/api/v1/ids/sensors/<name>/...`` with an API key; records stay
    local (they are acknowledged without being sent).
    """

    def __init__(
        self, base_url: str, api_key: str, *, timeout_s: float = 10.0, transport: Any = None
    ) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key},
            timeout=timeout_s,
            transport=transport,
        )

    async def ensure_stream(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to create over HTTP."""

    async def publish_many(self, envelopes: list[Any]) -> list[int]:
        """POST each events/health message; raise BusError when the platform cannot take them."""
        import httpx

        from gongyun.bus import BusError

        for env in envelopes:
            _, _tenant, sensor, kind = env.subject.split(".")
            try:
                if kind == "events":
                    r = await self.client.post(
                        f"/api/v1/ids/sensors/{sensor}/events", json={"events": json.loads(env.data)}
                    )
                elif kind == "health":
                    r = await self.client.post(
                        f"/api/v1/ids/sensors/{sensor}/health", json={"health": json.loads(env.data)}
                    )
                else:
                    continue
            except httpx.HTTPError as exc:
                raise BusError(f"platform unreachable: {exc}") from exc
            if r.status_code >= 500 or r.status_code in (401, 403, 429):
                raise BusError(f"platform answered {r.status_code}")
        return [0] * len(envelopes)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
