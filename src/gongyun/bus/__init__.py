"""The message bus: one protocol (``base``), in-process (``memory``) and NATS JetStream (``nats``)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gongyun.bus.base import (
    Bus,
    BusClosed,
    BusError,
    DurableConflict,
    Envelope,
    Handler,
    InvalidBusArgument,
    InvalidSubject,
    Message,
    MessageTooLarge,
    NoStreamForSubject,
    StreamConflict,
    Subscription,
    subject_matches,
    validate_subject,
)
from gongyun.errors import ConfigError

__all__ = [
    "Bus",
    "BusClosed",
    "BusError",
    "DurableConflict",
    "Envelope",
    "Handler",
    "InvalidBusArgument",
    "InvalidSubject",
    "Message",
    "MessageTooLarge",
    "NoStreamForSubject",
    "StreamConflict",
    "Subscription",
    "open_bus",
    "subject_matches",
    "validate_subject",
]


def _int_param(params: dict[str, list[str]], key: str, default: int) -> int:
    values = params.get(key)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise InvalidBusArgument(f"bus URL parameter {key} must be an integer, got {values[-1]!r}") from None


def open_bus(url: str, *, namespace: str | None = None) -> Bus:
    """Make a (not yet connected) bus for ``memory://[NAME][?max_msgs=N&max_bytes=N]`` or ``nats://host:port``.

    ``namespace`` (the deployment id) prefixes every NATS stream, durable and subject; an
    in-process bus is private to its process and needs none.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidBusArgument(f"bus URL must look like memory:// or nats://host:port, got {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        from gongyun.bus.memory import DEFAULT_MAX_BYTES, DEFAULT_MAX_MSGS, MemoryBus

        params = parse_qs(parts.query)
        name = (parts.netloc + parts.path).strip("/")
        return MemoryBus(
            name,
            max_msgs=_int_param(params, "max_msgs", DEFAULT_MAX_MSGS),
            max_bytes=_int_param(params, "max_bytes", DEFAULT_MAX_BYTES),
        )
    if scheme in ("nats", "tls"):
        try:
            from gongyun.bus.nats import NatsBus
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("the NATS bus needs nats-py: install gongyun[server]") from exc
        servers = [s.strip() for s in url.split(",") if s.strip()]
        return NatsBus(servers, namespace=namespace)
    raise InvalidBusArgument(f"unknown bus scheme {parts.scheme!r} in {url!r} (use memory:// or nats://)")
