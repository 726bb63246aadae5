"""Prometheus metrics of the bus: deliveries, redeliveries, pending messages, consumer state.

Labelled by stream and durable consumer (a handful per deployment). ``pending`` is what the
NATS server reports with each delivery (``num_pending`` of the message's metadata: messages
of the consumer not yet delivered); the in-process bus reports deliveries only.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DELIVERED = Counter("gongyun_bus_delivered_total", "Messages delivered to handlers", ["stream", "durable"])
REDELIVERED = Counter(
    "gongyun_bus_redelivered_total", "Deliveries of a message delivered before", ["stream", "durable"]
)
PENDING = Gauge(
    "gongyun_bus_pending_messages",
    "Messages of the consumer not yet delivered (as of the last delivery)",
    ["stream", "durable"],
)
CONSUMERS = Gauge(
    "gongyun_bus_consumer_members",
    "Running members of a durable consumer in this process",
    ["stream", "durable"],
)
PULL_ERRORS = Counter("gongyun_bus_pull_errors_total", "Failed pull requests", ["stream", "durable"])
HANDLER_ERRORS = Counter("gongyun_bus_handler_errors_total", "Handler failures (the message is nak'ed)")


def note_delivery(stream: str, durable: str, num_delivered: int, num_pending: int | None = None) -> None:
    """Count one delivery (and a redelivery when ``num_delivered > 1``)."""
    DELIVERED.labels(stream, durable).inc()
    if num_delivered > 1:
        REDELIVERED.labels(stream, durable).inc()
    if num_pending is not None:
        PENDING.labels(stream, durable).set(num_pending)
