"""State of the in-process bus: stored messages of a stream and the cursor of a durable consumer."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from gongyun.bus.base import DUPLICATE_WINDOW_S, MSG_ID_HEADER, subject_is_subset, subject_matches


class Member(Protocol):
    """A subscription as the consumer state sees it."""

    @property
    def closed(self) -> bool:
        """True once the member has left."""
        ...


@dataclass(slots=True)
class Stored:
    """One message as a stream keeps it."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]
    ts: float


@dataclass(slots=True)
class Pending:
    """A delivered, not yet acknowledged message of a consumer."""

    deadline: float
    member: Member
    attempt: int


class StreamState:
    """The messages of one stream: contiguous sequences in a list with a moving head."""

    def __init__(
        self, name: str, subjects: list[str], max_age_s: float | None, max_msgs: int, max_bytes: int
    ):
        self.name = name
        self.subjects = subjects
        self.max_age_s = max_age_s
        self.max_msgs = max_msgs
        self.max_bytes = max_bytes
        self._items: list[Stored] = []
        self._head = 0
        self.first_seq = 1
        self.last_seq = 0
        self.bytes = 0
        self.dedup: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.consumers: dict[str, ConsumerState] = {}

    def get(self, seq: int) -> Stored | None:
        """The stored message with this sequence, or None when dropped or not yet written."""
        if seq < self.first_seq or seq > self.last_seq:
            return None
        return self._items[self._head + seq - self.first_seq]

    def append(self, subject: str, data: bytes, headers: dict[str, str], msg_id: str | None) -> int:
        """Store a message (or find its duplicate) and return its sequence."""
        now = time.monotonic()
        window = min(DUPLICATE_WINDOW_S, self.max_age_s or DUPLICATE_WINDOW_S)
        while self.dedup and (
            len(self.dedup) >= self.max_msgs or now - next(iter(self.dedup.values()))[1] >= window
        ):
            self.dedup.popitem(last=False)  # expired, or more ids than messages the stream may keep
        if msg_id is not None:
            if msg_id in self.dedup:
                return self.dedup[msg_id][0]
            headers[MSG_ID_HEADER] = msg_id
        self.last_seq += 1
        self._items.append(Stored(self.last_seq, subject, data, headers, now))
        self.bytes += len(data)
        if msg_id is not None:
            self.dedup[msg_id] = (self.last_seq, now)
        self.trim(now)
        for consumer in self.consumers.values():
            consumer.notify()
        return self.last_seq

    def trim(self, now: float) -> None:
        """Drop the oldest messages beyond the count, byte and age limits."""
        oldest_ts = now - self.max_age_s if self.max_age_s is not None else None
        while self._head < len(self._items):
            first = self._items[self._head]
            count = self.last_seq - self.first_seq + 1
            too_old = oldest_ts is not None and first.ts < oldest_ts
            if count <= self.max_msgs and self.bytes <= self.max_bytes and not too_old:
                break
            self.bytes -= len(first.data)
            self._head += 1
            self.first_seq += 1
        if self._head > 1024 and self._head * 2 > len(self._items):
            del self._items[: self._head]
            self._head = 0

    def covers(self, subject_filter: str) -> bool:
        """True when the stream captures every subject the filter matches."""
        return any(subject_is_subset(subject_filter, s) for s in self.subjects)


class ConsumerState:
    """A durable consumer: delivery cursor, in-flight messages and the redelivery queue."""

    def __init__(self, stream: StreamState, durable: str, subject_filter: str) -> None:
        self.stream = stream
        self.durable = durable
        self.subject_filter = subject_filter
        self.ack_wait_s = 30.0
        self.max_deliver = -1
        self.max_in_flight = 256
        self.forget = False  # drop the consumer when its last member leaves (``forget_after_s``)
        self.members = 0
        self.cursor = stream.first_seq
        self.pending: dict[int, Pending] = {}
        self._deadlines: list[tuple[float, int, int]] = []  # (deadline, seq, attempt), lazily pruned
        self.waiting: dict[int, float] = {}  # seq -> ready at
        self._ready: list[tuple[float, int]] = []  # (ready at, seq), lazily pruned
        self.num_delivered: dict[int, int] = {}
        self._attempts = itertools.count(1)
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wake every member waiting for a message."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _requeue(self, seq: int, ready_at: float) -> None:
        self.pending.pop(seq, None)
        self.waiting[seq] = ready_at
        heapq.heappush(self._ready, (ready_at, seq))

    def _forget(self, seq: int) -> None:
        self.pending.pop(seq, None)
        self.waiting.pop(seq, None)
        self.num_delivered.pop(seq, None)
        if len(self._deadlines) > 2 * len(self.pending) + 64:  # drop entries of acked messages
            self._deadlines = [(p.deadline, s, p.attempt) for s, p in self.pending.items()]
            heapq.heapify(self._deadlines)

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, seq, attempt = heapq.heappop(self._deadlines)
            p = self.pending.get(seq)
            if p is not None and p.attempt == attempt:
                self._requeue(seq, now)

    def _take(self, now: float) -> Stored | None:
        while self._ready and self._ready[0][0] <= now:
            ready_at, seq = heapq.heappop(self._ready)
            if self.waiting.get(seq) != ready_at:
                continue
            stored = self.stream.get(seq)
            if stored is None or (
                self.max_deliver > 0 and self.num_delivered.get(seq, 0) >= self.max_deliver
            ):
                self._forget(seq)
                continue
            del self.waiting[seq]
            return stored
        self.cursor = max(self.cursor, self.stream.first_seq)
        while self.cursor <= self.stream.last_seq:
            stored = self.stream.get(self.cursor)
            self.cursor += 1
            if stored is not None and subject_matches(self.subject_filter, stored.subject):
                return stored
        return None

    async def next(self, member: Member) -> tuple[Stored, int] | None:
        """Wait for the next message for ``member``; None once the member is closed."""
        while not member.closed:
            now = time.monotonic()
            self._expire(now)
            if self.stream.max_age_s is not None:
                self.stream.trim(now)
            if len(self.pending) < self.max_in_flight:
                stored = self._take(now)
                if stored is not None:
                    count = self.num_delivered.get(stored.seq, 0) + 1
                    self.num_delivered[stored.seq] = count
                    attempt = next(self._attempts)
                    deadline = now + self.ack_wait_s
                    self.pending[stored.seq] = Pending(deadline, member, attempt)
                    heapq.heappush(self._deadlines, (deadline, stored.seq, attempt))
                    return stored, count
            while self._ready and self.waiting.get(self._ready[0][1]) != self._ready[0][0]:
                heapq.heappop(self._ready)
            wake_at = [self._deadlines[0][0]] if self._deadlines else []
            if self._ready and len(self.pending) < self.max_in_flight:
                wake_at.append(self._ready[0][0])
            timeout = max(0.0, min(wake_at) - now) if wake_at else None
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        return None

    def ack(self, seq: int) -> None:
        """The message is done for this durable."""
        if seq in self.pending or seq in self.waiting:
            self._forget(seq)
            self.notify()

    def nak(self, seq: int, delay_s: float | None) -> None:
        """Put an in-flight message back, ready now or after ``delay_s``."""
        if seq in self.pending:
            self._requeue(seq, time.monotonic() + (delay_s or 0.0))
            self.notify()

    def touch(self, seq: int) -> None:
        """Restart the ack_wait of an in-flight message."""
        p = self.pending.get(seq)
        if p is not None:
            p.deadline, p.attempt = time.monotonic() + self.ack_wait_s, next(self._attempts)
            heapq.heappush(self._deadlines, (p.deadline, seq, p.attempt))

    def release(self, member: Member) -> None:
        """A member left: its in-flight messages are ready for the others at once."""
        self.members = max(0, self.members - 1)
        now = time.monotonic()
        for seq in [s for s, p in self.pending.items() if p.member is member]:
            self._requeue(seq, now)
        self.notify()
