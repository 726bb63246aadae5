"""In-process bus: the JetStream semantics of ``gongyun.bus.base`` on asyncio, no service.

Streams keep messages in memory within their limits (count, bytes, age; oldest dropped
first, like JetStream's ``discard: old``), so memory is bounded. ``memory://`` opens a
private broker; ``memory://NAME`` shares one broker between every bus opened with that
name in the process (e.g. the API and an ingest worker in one ``gongyun serve``).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from typing import ClassVar

from gongyun.bus import metrics
from gongyun.bus.base import (
    Bus,
    BusClosed,
    DurableConflict,
    Handler,
    InvalidBusArgument,
    Message,
    NoStreamForSubject,
    StreamConflict,
    Subscription,
    deliver,
    filters_overlap,
    subject_matches,
    validate_name,
    validate_publish,
    validate_stream,
    validate_subject,
    validate_subscribe,
)
from gongyun.bus.memory_state import ConsumerState, Stored, StreamState

DEFAULT_MAX_MSGS = 1_000_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass
class _Broker:
    """The state shared by every MemoryBus opened on the same ``memory://NAME``."""

    streams: dict[str, StreamState] = field(default_factory=dict)
    max_msgs: int = DEFAULT_MAX_MSGS
    max_bytes: int = DEFAULT_MAX_BYTES

    def stream_for(self, subject: str) -> StreamState:
        """The stream that captures a concrete subject."""
        for stream in self.streams.values():
            if any(subject_matches(s, subject) for s in stream.subjects):
                return stream
        raise NoStreamForSubject(f"no stream captures subject {subject!r}", subject=subject)


_named_brokers: weakref.WeakValueDictionary[str, _Broker] = weakref.WeakValueDictionary()


class MemoryMessage(Message):
    """A delivery from the in-process bus."""

    __slots__ = ("_consumer",)

    def __init__(self, consumer: ConsumerState, stored: Stored, num_delivered: int) -> None:
        super().__init__(stored.subject, stored.data, dict(stored.headers), stored.seq, num_delivered)
        self._consumer = consumer

    async def ack(self) -> None:
        """Acknowledge the message."""
        self._consumer.ack(self.seq)

    async def nak(self, delay_s: float | None = None) -> None:
        """Give the message back for redelivery."""
        self._consumer.nak(self.seq, delay_s)

    async def in_progress(self) -> None:
        """Restart the message's ack_wait."""
        self._consumer.touch(self.seq)


class MemorySubscription(Subscription):
    """One member of a durable consumer of the in-process bus."""

    def __init__(self, bus: MemoryBus, consumer: ConsumerState, handler: Handler) -> None:
        super().__init__(consumer.stream.name, consumer.subject_filter, consumer.durable)
        self._bus = bus
        self._consumer = consumer
        self._handler = handler
        self._closed = False
        self._task = asyncio.create_task(self._run(), name=f"bus-memory-{consumer.durable}")

    @property
    def closed(self) -> bool:
        """True once the subscription has stopped."""
        return self._closed

    async def _run(self) -> None:
        while not self._closed:
            item = await self._consumer.next(self)
            if item is None:
                return
            metrics.note_delivery(self.stream, self.durable, item[1])
            await deliver(self._handler, MemoryMessage(self._consumer, *item))
            await asyncio.sleep(0)  # let the other members of a queue group take their turn

    async def close(self) -> None:
        """Stop delivering; this member's un-acked messages go back to the group."""
        if self._closed:
            return
        self._closed = True
        if asyncio.current_task() is not self._task:  # a handler may close its own subscription
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if not self._task.cancelled():
                    raise
        self._consumer.release(self)
        self._bus._subs.discard(self)
        if self._consumer.forget and not self._consumer.members:
            # in one process nobody can come back later: forget at once rather than after a delay
            self._consumer.stream.consumers.pop(self._consumer.durable, None)


class MemoryBus(Bus):
    """The in-process implementation of :class:`~gongyun.bus.base.Bus`."""

    scheme: ClassVar[str] = "memory"

    def __init__(
        self, name: str = "", *, max_msgs: int = DEFAULT_MAX_MSGS, max_bytes: int = DEFAULT_MAX_BYTES
    ):
        if max_msgs < 1 or max_bytes < 1:
            raise InvalidBusArgument("memory bus limits must be positive")
        broker = _named_brokers.get(name) if name else None
        if broker is None:
            broker = _Broker(max_msgs=max_msgs, max_bytes=max_bytes)
            if name:
                _named_brokers[name] = broker
        self.name = name
        self._broker = broker
        self._connected = False
        self._subs: set[MemorySubscription] = set()

    def _check(self) -> _Broker:
        if not self._connected:
            raise BusClosed("the in-process bus is not connected")
        return self._broker

    async def connect(self) -> None:
        """Mark the bus usable (nothing to reach)."""
        self._connected = True

    async def close(self) -> None:
        """Close every subscription of this bus."""
        for sub in list(self._subs):
            await sub.close()
        self._connected = False

    async def ping(self) -> None:
        """Raise BusClosed unless connected."""
        self._check()

    async def ensure_stream(
        self,
        name: str,
        subjects: list[str],
        *,
        max_age_s: float | None = None,
        max_msgs: int | None = None,
    ) -> None:
        """Create the stream or update its subjects and limits."""
        validate_stream(name, subjects, max_age_s, max_msgs)
        broker = self._check()
        for other in broker.streams.values():
            if other.name == name:
                continue
            for a in subjects:
                for b in other.subjects:
                    if filters_overlap(a, b):
                        raise StreamConflict(f"subjects {a!r} overlap stream {other.name!r} ({b!r})")
        limit = min(max_msgs, broker.max_msgs) if max_msgs is not None else broker.max_msgs
        stream = broker.streams.get(name)
        if stream is None:
            broker.streams[name] = StreamState(name, list(subjects), max_age_s, limit, broker.max_bytes)
            return
        stream.subjects, stream.max_age_s, stream.max_msgs = list(subjects), max_age_s, limit
        stream.trim(time.monotonic())

    async def delete_stream(self, name: str) -> bool:
        """Delete a stream; its subscriptions stop."""
        validate_name(name, "stream")
        stream = self._check().streams.pop(name, None)
        if stream is None:
            return False
        for sub in [s for s in self._subs if s.stream == name]:
            await sub.close()
        for consumer in stream.consumers.values():
            consumer.notify()
        return True

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
    ) -> int:
        """Store the message in its stream and return the sequence."""
        validate_publish(subject, data, headers, msg_id)
        stream = self._check().stream_for(subject)
        return stream.append(subject, data, dict(headers or {}), msg_id)

    async def subscribe(
        self,
        subject_filter: str,
        *,
        durable: str,
        handler: Handler,
        ack_wait_s: float = 30,
        max_deliver: int = -1,
        max_in_flight: int = 256,
        forget_after_s: float | None = None,
    ) -> Subscription:
        """Join or create the durable consumer and start delivering to ``handler``."""
        validate_subject(subject_filter, wildcards=True)
        validate_subscribe(durable, ack_wait_s, max_deliver, max_in_flight, forget_after_s)
        broker = self._check()
        stream = next((s for s in broker.streams.values() if s.covers(subject_filter)), None)
        if stream is None:
            raise NoStreamForSubject(f"no stream captures all of {subject_filter!r}", subject=subject_filter)
        consumer = stream.consumers.get(durable)
        if consumer is None:
            consumer = stream.consumers[durable] = ConsumerState(stream, durable, subject_filter)
        elif consumer.subject_filter != subject_filter:
            raise DurableConflict(
                f"durable {durable!r} exists on {consumer.subject_filter!r}, not {subject_filter!r}"
            )
        consumer.ack_wait_s, consumer.max_deliver, consumer.max_in_flight = (
            ack_wait_s,
            max_deliver,
            max_in_flight,
        )
        consumer.forget = forget_after_s is not None
        consumer.members += 1
        sub = MemorySubscription(self, consumer, handler)
        self._subs.add(sub)
        return sub
