"""Remote gateways' status as the platform sees it, carried over the uplink.

Two carriers, one view (:class:`RemoteGateways`, whose :meth:`RemoteGateway.status` has the shape
of :meth:`gongyun.edge.runtime.Gateway.status`, so the devices API lists remote devices like local
ones):

* **bus** — the gateway publishes its status JSON on ``gwstatus.<tenant>.<gateway>`` when a device
  changes state and every ``interval`` seconds (a heartbeat), and ``"online": false`` when it stops.
  A gateway not heard of for ``STALE_FACTOR`` intervals is shown offline with all its devices.
  "Heard of" comes from the message's ``sent`` time (wall clock), not its arrival: a new platform
  process replays the stream's last ten minutes, and an old status must not make a dead gateway look
  alive. Clocks may differ by ``MAX_SKEW_S``, so a status counts as heard at ``sent + MAX_SKEW_S``
  (at most now); a ``sent`` further ahead than that is not believed (the gateway is shown offline
  with ``clock_ahead_s``), and a message older than the last one applied is skipped.
* **Sparkplug B** — the gateway's node lists its devices in the NBIRTH metric ``Gateway/Info``; a
  device is born (DBIRTH, metrics ``Status/State`` and ``Status/LastError``) when it is connected,
  dies (DDEATH) when it stops answering, and NDEATH (the broker's will) takes all of them offline.
  :class:`gongyun.edge.receiver.UplinkReceiver` feeds these events in.

Gateways not heard of for ``FORGET_AFTER_S`` are forgotten, and a tenant keeps at most
``MAX_PER_TENANT`` (all tenants ``MAX_GATEWAYS``): a new one first displaces the longest-silent
offline one, and is refused (:class:`GatewayLimitReached`) when every one is alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from gongyun.edge.commands import CommandRecord
from gongyun.edge.errors import DecodeError
from gongyun.errors import GongyunError, InvalidInput

log = logging.getLogger(__name__)
STATUS_SUBJECT = "gwstatus"
STATUS_STREAM = "GATEWAY_STATUS"
STALE_FACTOR = 3.0
MAX_SKEW_S = 15.0  # how far a gateway's clock may be off the platform's and still be believed
FORGET_AFTER_S = 24 * 3600.0
MAX_PER_TENANT = 1000
MAX_GATEWAYS = 20_000
INFO_METRIC = "Gateway/Info"
STATE_METRIC = "Status/State"
ERROR_METRIC = "Status/LastError"
DEVICE_STATES = ("online", "offline", "error")
_RECORD_FIELDS = {f.name for f in fields(CommandRecord)}


class GatewayLimitReached(InvalidInput):
    """A status names a new gateway while the tenant (or the platform) follows as many as it may."""

    code = "edge_gateway_limit"
    title = "Too many remote gateways"


def status_subject(tenant: str, gateway: str) -> str:
    """The bus subject a gateway's status goes to."""
    return f"{STATUS_SUBJECT}.{tenant}.{gateway}"


def status_message(tenant: str, status: dict[str, Any], interval: float, *, online: bool = True) -> bytes:
    """A gateway's status (``Gateway.status()`` plus ``commands``) as the bus status message."""
    body = {**status, "tenant": tenant, "online": online, "interval": interval}
    body["sent"] = datetime.now(UTC).isoformat()
    return json.dumps(body, default=str).encode()


@dataclass
class CommandLog:
    """Command records a remote gateway reported (newest last)."""

    history: list[CommandRecord] = field(default_factory=list)


@dataclass
class RemoteGateway:
    """What the platform last heard from one remote gateway."""

    tenant: str
    name: str
    via: str
    online: bool = False
    interval: float | None = None
    last_seen: float = field(default_factory=time.time)  # wall clock (epoch s): when last heard of
    sent: float | None = None  # ``sent`` (epoch s) of the last bus status applied
    clock_ahead_s: float | None = None  # set while the gateway's ``sent`` is not believed
    started: str | None = None
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    buffer: dict[str, Any] = field(default_factory=lambda: {"depth": None})
    uplink: dict[str, Any] = field(default_factory=dict)
    crashes: dict[str, int] = field(default_factory=dict)
    commands: CommandLog = field(default_factory=CommandLog)

    def alive(self, now: float | None = None) -> bool:
        """Online and, for heartbeating gateways, heard of within ``STALE_FACTOR`` intervals."""
        if not self.online or self.clock_ahead_s is not None:
            return False
        if self.interval is None:
            return True
        return (now if now is not None else time.time()) - self.last_seen <= STALE_FACTOR * self.interval

    def device(self, name: str, protocol: str | None = None) -> dict[str, Any]:
        """The device's record (created offline)."""
        return self.devices.setdefault(
            name, {"device": name, "protocol": protocol, "state": "offline", "connected": False}
        )

    def status(self) -> dict[str, Any]:
        """``Gateway.status()``-shaped view; every device reads offline while the gateway is not alive."""
        now = time.time()
        alive = self.alive(now)
        devices = {}
        for name, record in self.devices.items():
            dev = dict(record)
            if not alive:
                dev["state"], dev["connected"] = "offline", False
            devices[name] = dev
        uplink = {**self.uplink, "kind": self.via, "online": alive, "remote": True}
        uplink["last_seen_s"] = round(max(0.0, now - self.last_seen), 3)
        if self.clock_ahead_s is not None:
            uplink["clock_ahead_s"] = round(self.clock_ahead_s, 3)
        return {
            "gateway": self.name,
            "started": self.started,
            "devices": devices,
            "buffer": dict(self.buffer),
            "uplink": uplink,
            "crashes": dict(self.crashes),
        }


def _obj(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _epoch(value: Any) -> float:
    """An ISO 8601 ``sent`` as epoch seconds (naive: UTC); raise ValueError/TypeError."""
    if not isinstance(value, str):
        raise TypeError("sent must be an ISO 8601 time")
    at = datetime.fromisoformat(value)
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


class RemoteGateways:
    """Remote gateways per tenant, kept current from status messages and Sparkplug births/deaths."""

    def __init__(self) -> None:
        self.gateways: dict[tuple[str, str], RemoteGateway] = {}
        self.rejected = 0
        self.subscription: Any = None

    def get(self, tenant: str, name: str, via: str) -> RemoteGateway:
        """The gateway's record (created on first mention); raise GatewayLimitReached when full."""
        gw = self.gateways.get((tenant, name))
        if gw is None:
            self._make_room(tenant)
            gw = self.gateways[(tenant, name)] = RemoteGateway(tenant, name, via)
        return gw

    def of(self, tenant: str) -> list[RemoteGateway]:
        """The tenant's remote gateways, by name (forgotten ones pruned first)."""
        self.prune()
        return [gw for (t, _), gw in sorted(self.gateways.items()) if t == tenant]

    def prune(self, now: float | None = None) -> int:
        """Forget gateways not heard of for ``FORGET_AFTER_S``; return how many."""
        limit = (now if now is not None else time.time()) - FORGET_AFTER_S
        old = [key for key, gw in self.gateways.items() if gw.last_seen < limit]
        for key in old:
            del self.gateways[key]
        return len(old)

    def _make_room(self, tenant: str) -> None:
        """Before adding a gateway: prune, then displace the longest-silent offline one if full."""
        self.prune()
        now = time.time()
        for limit, keys in (
            (MAX_PER_TENANT, [k for k in self.gateways if k[0] == tenant]),
            (MAX_GATEWAYS, list(self.gateways)),
        ):
            if len(keys) < limit:
                continue
            idle = [k for k in keys if not self.gateways[k].alive(now)]
            if not idle:
                raise GatewayLimitReached(
                    f"already following {len(keys)} live gateways (limit {limit})", tenant=tenant
                )
            del self.gateways[min(idle, key=lambda k: self.gateways[k].last_seen)]

    # -- bus -------------------------------------------------------------------------------
    def apply(self, subject: str, data: bytes) -> RemoteGateway:
        """Apply one bus status message (tenant and gateway from the subject); raise DecodeError."""
        parts = subject.split(".")
        if len(parts) != 3 or parts[0] != STATUS_SUBJECT:
            raise DecodeError(f"not a gateway status subject: {subject!r}")
        try:
            body = json.loads(data)
            devices = body["devices"]
            if not isinstance(body, dict) or not isinstance(devices, dict):
                raise TypeError("devices must be an object")
            interval = float(body["interval"])
            if not 0 < interval < float("inf"):
                raise ValueError(f"interval must be a positive number of seconds, got {interval}")
            online = bool(body["online"])
            sent = _epoch(body["sent"])
            for name, dev in devices.items():
                if not isinstance(dev, dict) or dev.get("state") not in DEVICE_STATES:
                    raise ValueError(f"device {name!r} has no valid state")
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(f"invalid gateway status on {subject}: {exc}") from exc
        gw = self.gateways.get((parts[1], parts[2]))
        if gw is not None and gw.sent is not None and sent < gw.sent:
            return gw  # older than what we have (redelivered out of order)
        gw = self.get(parts[1], parts[2], "bus")
        now = time.time()
        ahead = sent - now
        gw.clock_ahead_s = ahead if ahead > MAX_SKEW_S else None
        gw.online, gw.interval = online, interval
        gw.sent = sent if gw.clock_ahead_s is None else None  # an unbelieved clock does not order
        gw.last_seen = now if gw.clock_ahead_s is not None else min(sent + MAX_SKEW_S, now)
        gw.started = body.get("started")
        gw.devices = {str(k): dict(v) for k, v in devices.items()}
        gw.buffer = _obj(body.get("buffer")) or {"depth": None}
        gw.uplink = _obj(body.get("uplink"))
        gw.crashes = _obj(body.get("crashes"))
        records = body.get("commands")
        if isinstance(records, list):
            gw.commands.history = [
                CommandRecord(**{k: v for k, v in r.items() if k in _RECORD_FIELDS})
                for r in records
                if isinstance(r, dict)
                and _RECORD_FIELDS - {"detail", "read_back", "at", "duration_ms"} <= r.keys()
            ]
        return gw

    async def handle(self, msg: Any) -> None:
        """Bus handler: apply, and ack even a bad message (it would fail the same way again)."""
        try:
            gw = self.apply(msg.subject, msg.data)
        except (DecodeError, GatewayLimitReached) as exc:
            self.rejected += 1
            log.warning("dropping gateway status: %s", exc.message)
        else:
            if gw.clock_ahead_s is not None:
                log.warning(
                    "gateway %s/%s: status sent %.0f s in the future; check its clock",
                    gw.tenant, gw.name, gw.clock_ahead_s,
                )  # fmt: skip
        await msg.ack()

    async def subscribe(self, bus: Any, durable: str | None = None) -> Any:
        """Ensure the status stream and consume it: every platform process follows every gateway.

        So each runtime has its own consumer (named after host, pid and a random part), which the bus deletes
        a minute after the process has gone.
        """
        name = durable or "gwstatus-" + re.sub(
            r"[^A-Za-z0-9_-]", "_", f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        with contextlib.suppress(GongyunError):  # the stream may exist with other limits
            await bus.ensure_stream(STATUS_STREAM, [f"{STATUS_SUBJECT}.>"], max_age_s=600)
        self.subscription = await bus.subscribe(
            f"{STATUS_SUBJECT}.>", durable=name, handler=self.handle, forget_after_s=60
        )
        return self.subscription

    async def stop(self) -> None:
        """Stop consuming."""
        if self.subscription is not None:
            await self.subscription.close()
            self.subscription = None

    # -- Sparkplug -------------------------------------------------------------------------
    def _sparkplug(self, tenant: str, name: str) -> RemoteGateway | None:
        """The Sparkplug node's record, marked heard of now; None (counted) when there is no room."""
        try:
            gw = self.get(tenant, name, "sparkplug")
        except GatewayLimitReached as exc:
            self.rejected += 1
            log.warning("ignoring Sparkplug node %s: %s", name, exc.message)
            return None
        gw.last_seen = time.time()
        return gw

    def node_state(self, tenant: str, name: str, online: bool) -> RemoteGateway | None:
        """NBIRTH (online) or NDEATH (offline: every device with it)."""
        gw = self._sparkplug(tenant, name)
        if gw is None:
            return None
        gw.online = online
        if online:
            gw.started = datetime.now(UTC).isoformat()
        for dev in gw.devices.values():
            dev["state"], dev["connected"] = "offline", False
        return gw

    def node_info(self, tenant: str, name: str, info: str) -> None:
        """The NBIRTH's ``Gateway/Info`` JSON: ``{"gateway", "devices": {name: protocol}}``."""
        try:
            devices = json.loads(info)["devices"]
            items = [(str(k), str(v)) for k, v in devices.items()]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.rejected += 1
            log.warning("ignoring malformed %s of %s: %s", INFO_METRIC, name, exc)
            return
        gw = self._sparkplug(tenant, name)
        if gw is None:
            return
        gw.devices = {k: v for k, v in gw.devices.items() if k in dict(items)}
        for device, protocol in items:
            gw.device(device, protocol)["protocol"] = protocol

    def device_state(self, tenant: str, name: str, device: str, state: str, error: str | None = None) -> None:
        """A device's state from DBIRTH/DDEATH or its ``Status/State`` metric."""
        if state not in DEVICE_STATES:
            self.rejected += 1
            log.warning("ignoring unknown state %r of %s/%s", state, name, device)
            return
        gw = self._sparkplug(tenant, name)
        if gw is None:
            return
        dev = gw.device(device)
        dev["state"], dev["connected"] = state, state != "offline"
        if error is not None:
            dev["last_error"] = error or None
