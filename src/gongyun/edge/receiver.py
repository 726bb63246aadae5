"""The platform side of the Sparkplug uplink: a host application (:mod:`gongyun.sparkplug.host`, whose
decoder reads each NDATA into columns) that turns the gateway's NDATA back into samples, drops
duplicates by sequence number (per buffer epoch), confirms receipt, and sends device commands to
remote gateways.

With a ``store`` callback, receipt is confirmed only once the samples are stored: batches go to
``store`` in arrival order and the confirmation (``gongyun/confirm/<group>/<node>``) advances to the
last batch whose storage completed. When storing a batch fails, nothing after it is confirmed; the
receiver asks the gateway for a rebirth, drops its data until the NBIRTH and then takes the replay
(the gateway replays from its last confirmed sequence number after every birth).

Backpressure: at most ``max_queued`` samples wait for ``store`` (a batch that would not fit waits
until the queue has room, or is empty). While one waits, the host reads nothing from the broker
(:class:`~gongyun.sparkplug.flow.SocketReading`): TCP flow control and then the broker's
queue hold the rest, and the gateways keep everything unconfirmed in their buffers. Should a
message be lost on the way anyway (the broker's queue overflowed, the client's incoming queue
was full), its sequence numbers are missing when the next batch arrives: that batch and the rest
are dropped unconfirmed until the gateway's next NBIRTH, and the gateway, asked for a rebirth,
replays from its last confirmation; what was received before the gap is kept, so every sample is
stored once, in order. The first batch after a birth may start later than expected (the gateway's
buffer dropped samples at its limits) and is taken as it is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from gongyun.core.types import Sample, TagRef
from gongyun.edge.fleet import ERROR_METRIC, INFO_METRIC, STATE_METRIC, RemoteGateways
from gongyun.edge.uplink import EPOCH_METRIC, RESULT_METRIC, SEQ_PROP, confirm_topic
from gongyun.sparkplug.decode import Metrics, quality_of, sample_value
from gongyun.sparkplug.host import SparkplugHost

log = logging.getLogger(__name__)
OnSamples = Callable[[str, list[Sample]], None]
Store = Callable[[str, list[Sample]], Awaitable[Awaitable[object]]]
"""``await store(node_key, samples)`` queues the samples (it may wait while ingest is full) and
returns an awaitable that completes once they are stored (and raises if storing failed)."""


class UplinkReceiver:
    """Platform side of the Sparkplug uplink: samples out, duplicates dropped, receipt confirmed."""

    def __init__(
        self,
        broker: tuple[str, int],
        group: str,
        on_samples: OnSamples | None,
        *,
        host_id: str | None = None,
        confirm: bool = True,
        confirm_interval: float = 0.1,
        fleet: RemoteGateways | None = None,
        tenant_id: str | None = None,
        store: Store | None = None,
        username: str | None = None,
        password: str | None = None,
        max_queued: int = 20_000,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``fleet``: where gateway and device states go (gateways named ``group/node``), filed under
        ``tenant_id`` (the tenant's id, as ``GatewayRegistry.of`` is keyed; required with ``fleet``).

        ``on_samples`` sees every new batch as it arrives; without ``store`` receipt is confirmed
        right away, with it only once ``store`` has stored the batch (see the module docstring).

        ``max_queued``: how many samples may wait for ``store`` (see the module docstring).
        ``tls``: connect over TLS (with the platform's client certificate where the broker asks).

        See :func:`gongyun.platform.gateways.receive_sparkplug` for a receiver wired to a platform.
        """
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        if fleet is not None and not tenant_id:
            raise TypeError("UplinkReceiver(fleet=...) needs the tenant_id the gateways belong to")
        self.on_samples, self.confirm, self.confirm_interval = on_samples, confirm, confirm_interval
        self.fleet, self.tenant, self.store = fleet, tenant_id or "", store
        self.host = SparkplugHost(
            broker,
            group,
            "+",
            host_id=host_id,
            on_data=self._on_data,
            on_state=self._on_state,
            username=username,
            password=password,
            tls=tls,
        )
        self.last_seq: dict[str, int] = {}  # highest sequence number received, per node
        self.confirmed: dict[str, int] = {}  # highest one stored (or taken by on_samples), per node
        self.store_failures = 0
        self._generation: dict[str, int] = {}  # bumped when in-flight batches must not be confirmed
        self._resync: set[str] = set()  # nodes whose data is dropped until their next NBIRTH
        self._resume: dict[str, int] = {}  # per resyncing node: the last sequence number kept
        self._born: set[str] = set()  # nodes whose first data since their NBIRTH is still to come
        self.max_queued, self.queued, self.peak_queued = max_queued, 0, 0  # samples waiting for store
        self.gaps = 0
        self._room = asyncio.Event()
        self._to_store: asyncio.Queue[tuple[str, int, int, list[Sample]]] = asyncio.Queue()
        self._storing: asyncio.Queue[tuple[str, int, int, Awaitable[object]]] = asyncio.Queue()
        self.epochs: dict[str, int] = {}
        self.duplicates = 0
        self.received = 0
        self._dirty: set[str] = set()
        self._results: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def _on_state(self, key: str, device: str | None, online: bool) -> None:
        if self.fleet is None:
            return
        if device is None:
            self.fleet.node_state(self.tenant, key, online)
        else:
            self.fleet.device_state(self.tenant, key, device, "online" if online else "offline")

    def _on_data(self, key: str, device: str | None, metrics: Metrics, kind: str) -> Awaitable[None] | None:
        if device is not None:
            values = dict(zip(metrics.names, metrics.value_list(), strict=True))
            state = values.get(STATE_METRIC)
            if self.fleet is not None and isinstance(state, str):
                error = values.get(ERROR_METRIC)
                self.fleet.device_state(
                    self.tenant, key, device, state, error if isinstance(error, str) else None
                )
            return None
        if kind != "NDATA" or RESULT_METRIC in metrics.names or INFO_METRIC in metrics.names:
            self._control(key, metrics, kind)
        if key in self._resync:
            return None
        out = self._new_samples(key, metrics)
        if not out:
            return None
        if self.store is not None and not self._fits(len(out)):
            return self._when_room(key, out)
        self._take(key, out)
        return None

    def _control(self, key: str, metrics: Metrics, kind: str) -> None:
        """The gateway's own metrics: its description, command results and buffer epoch."""
        for name, value in zip(metrics.names, metrics.value_list(), strict=True):
            if name == INFO_METRIC and kind == "NBIRTH" and self.fleet is not None and isinstance(value, str):
                self.fleet.node_info(self.tenant, key, value)
            elif name == RESULT_METRIC and kind == "NDATA" and isinstance(value, str):
                self._on_result(value)
        if kind == "NBIRTH":
            self._birth(key, metrics)

    def _birth(self, key: str, metrics: Metrics) -> None:
        self._born.add(key)
        values = metrics.value_list()
        epoch = next((values[i] for i, n in enumerate(metrics.names) if n == EPOCH_METRIC), None)
        if isinstance(epoch, int) and self.epochs.get(key) != epoch:
            if key in self.epochs:
                log.warning("gateway %s has a new buffer (epoch %s): sequence numbers restart", key, epoch)
            self.epochs[key], self.last_seq[key], self.confirmed[key] = epoch, 0, 0
            self._generation[key] = self._generation.get(key, 0) + 1
            self._resume.pop(key, None)
        if key in self._resync:  # the gateway replays from its last confirmation from here
            self._resync.discard(key)
            self.last_seq[key] = self._resume.pop(key, self.confirmed.get(key, 0))

    def _new_samples(self, key: str, metrics: Metrics) -> list[Sample]:
        """The samples of a batch not received before; none (and a resync) after a gap."""
        last = self.last_seq.get(key, 0)
        out = []
        received = datetime.now(UTC)
        stamps = metrics.timestamps()
        values = metrics.value_list()
        for i, (name, props) in enumerate(zip(metrics.names, metrics.properties, strict=True)):
            seq = props.get(SEQ_PROP)
            if seq is None or "/" not in name:
                continue
            if int(seq) <= last:
                self.duplicates += 1
                continue
            if int(seq) != last + 1 and key not in self._born:
                self._lost(key, last, int(seq))
                return []
            self._born.discard(key)
            last = int(seq)
            dev, _, tag = name.partition("/")
            value = sample_value(values[i])
            out.append(Sample(TagRef(dev, tag), value, stamps[i], quality_of(props), last, received))
        return out

    def _lost(self, key: str, last: int, seq: int) -> None:
        """Samples after ``last`` went missing: drop data until the gateway replays them."""
        log.warning(
            "gateway %s: sequence number %d after %d, samples lost on the way: replaying", key, seq, last
        )
        self.gaps += 1
        self._resync.add(key)
        self._resume[key] = min(self._resume.get(key, self.last_seq.get(key, 0)), self.last_seq.get(key, 0))

    def _fits(self, n: int) -> bool:
        return self.queued == 0 or self.queued + n <= self.max_queued

    async def _when_room(self, key: str, out: list[Sample]) -> None:
        """Queue ``out`` once it fits (the host reads nothing meanwhile)."""
        while not self._fits(len(out)):
            self._room.clear()
            await self._room.wait()
        if key not in self._resync:  # unless storing failed meanwhile: then the gateway replays it
            self._take(key, out)

    def _take(self, key: str, out: list[Sample]) -> None:
        last = self.last_seq[key] = out[-1].seq or 0
        self.received += len(out)
        if self.on_samples is not None:
            self.on_samples(key, out)
        if self.store is None:
            self.confirmed[key] = last
            self._dirty.add(key)
            return
        self.queued += len(out)
        self.peak_queued = max(self.peak_queued, self.queued)
        self._to_store.put_nowait((key, self._generation.get(key, 0), last, out))

    def _store_failed(self, key: str, exc: BaseException) -> None:
        """Confirm nothing more of ``key`` until the gateway replays after its next birth."""
        log.warning("samples of gateway %s not stored (%s): asking it to replay", key, exc)
        self.store_failures += 1
        self._generation[key] = self._generation.get(key, 0) + 1
        self._resync.add(key)
        confirmed = self.confirmed.get(key, 0)
        self._resume[key] = min(self._resume.get(key, confirmed), confirmed)

    async def _store_loop(self, store: Store) -> None:
        """Hand batches to ``store`` in arrival order (waiting when ingest is full)."""
        while True:
            key, generation, seq, samples = await self._to_store.get()
            try:
                if generation != self._generation.get(key, 0):
                    continue  # a failure before it: the gateway replays this batch
                try:
                    stored = await store(key, samples)
                except Exception as exc:  # e.g. ingest stopped: the gateway keeps the samples
                    self._store_failed(key, exc)
                    continue
            finally:
                self.queued -= len(samples)
                self._room.set()
            await self._storing.put((key, generation, seq, stored))

    async def _confirm_stored(self) -> None:
        """Advance each node's confirmation as its batches are stored, in order."""
        while True:
            key, generation, seq, stored = await self._storing.get()
            try:
                await stored
            except Exception as exc:
                if generation == self._generation.get(key, 0):
                    self._store_failed(key, exc)
                continue
            if generation == self._generation.get(key, 0) and seq > self.confirmed.get(key, 0):
                self.confirmed[key] = seq
                self._dirty.add(key)

    def _on_result(self, text: str) -> None:
        try:
            result = json.loads(text)
            future = self._results.pop(str(result["command_id"]), None)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed command result %r", text[:200])
            return
        if future is not None and not future.done():
            future.set_result(result)

    async def command(
        self,
        node_key: str,
        device: str,
        tag: str,
        value: Any,
        properties: dict[str, str],
        wait_s: float = 10.0,
    ) -> dict[str, Any]:
        """Ask a gateway to write ``device/tag`` (NCMD); return its result record (``status`` etc.).

        ``properties`` travel with the command: ``requested_by``, ``role``, ``tenant``, ``reason``.
        """
        command_id = str(properties.get("command_id") or uuid.uuid4().hex)  # a signed id is kept
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[command_id] = future
        group, node = node_key.split("/", 1)
        try:
            await self.host.command(
                group, node, None, f"{device}/{tag}", value, {**properties, "command_id": command_id}
            )
            return await asyncio.wait_for(future, wait_s)
        finally:
            self._results.pop(command_id, None)

    async def _confirmer(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.confirm_interval)
            ticks += 1
            for key in list(self._resync):  # rate limited by the host (rebirth_holdoff)
                group, node = key.split("/", 1)
                with contextlib.suppress(aiomqtt.MqttError):
                    await self.host.request_rebirth(group, node)
            if not self.confirm:
                continue
            if ticks % 10 == 0:
                # Re-confirm every node now and then: a confirmation published while the edge
                # node was reconnecting (or ignored while it replayed) is otherwise lost, and the
                # gateway would keep samples the platform already has.
                self._dirty.update(self.confirmed)
            client = self.host.client
            if client is None or not self._dirty:
                continue
            for key in list(self._dirty):
                group, node = key.split("/", 1)
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(
                        confirm_topic(group, node), json.dumps({"seq": self.confirmed[key]}), qos=1
                    )
                    self._dirty.discard(key)

    async def run(self) -> None:
        """Consume, store and confirm forever."""
        tasks = [self.host.run(), self._confirmer()]
        if self.store is not None:
            tasks += [self._store_loop(self.store), self._confirm_stored()]
        await asyncio.gather(*tasks)
