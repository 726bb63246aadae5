"""The bus protocol: streams, publish, durable consumers (queue groups), ack and redelivery.

Semantics every backend keeps (the contract suite in ``tests/bus`` checks them):

* A *stream* captures every message published on its subjects and keeps it until its
  limits (age, count, bytes) drop it. ``publish`` returns the stream sequence once the
  bus has accepted the message; a repeated ``msg_id`` within the duplicate window is
  stored once and returns the first sequence.
* A *durable* consumer (a name within a stream) remembers what it has been acked across
  reconnects. Several subscriptions with the same durable form a queue group: each
  message goes to one member. A new durable starts at the first message in the stream.
* Delivery is at least once: a message not acked within ``ack_wait`` is redelivered
  (``in_progress`` restarts that clock), after ``delay_s`` when nak'ed, and as soon as its
  subscription is closed (on NATS up to ~1.25 s later, while a pull request expires).
  ``max_deliver`` caps the attempts (-1: unlimited); ``max_in_flight`` caps delivered,
  un-acked messages of the durable.
* The handler of one subscription is called for one message at a time, in stream order,
  so per-subject order is preserved within a single consumer (redeliveries aside). A
  handler that raises gets its message nak'ed; run several members for parallelism.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self

from gongyun.bus.metrics import HANDLER_ERRORS
from gongyun.errors import BusUnavailable, InvalidInput, PayloadTooLarge

MAX_PAYLOAD = 1024 * 1024
"""Largest message body accepted (the NATS server default ``max_payload``)."""
MAX_SUBJECT_LEN = 512
DUPLICATE_WINDOW_S = 120.0
"""How long a ``msg_id`` is remembered for de-duplication (the JetStream default)."""
MSG_ID_HEADER = "Nats-Msg-Id"
HANDLER_ERROR_DELAY_S = 0.5
"""A message whose handler raised is redelivered after this delay."""

_log = logging.getLogger("gongyun.bus")

_TOKEN_RE = re.compile(r"^[^\s.*>\x00-\x1f\x7f]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEADER_KEY_RE = re.compile(r"^[!-9;-~]+$")  # visible ASCII except ':'


class BusError(BusUnavailable):
    """The bus failed to carry out an operation (connection lost, server error)."""

    code = "bus_unavailable"
    title = "Bus unavailable"


class BusClosed(BusUnavailable):
    """The bus is not connected (never connected, or closed)."""

    code = "bus_closed"
    title = "Bus not connected"


class InvalidSubject(InvalidInput):
    """A subject or subject filter does not follow the NATS syntax."""

    code = "bus_subject_invalid"
    title = "Invalid bus subject"


class InvalidBusArgument(InvalidInput):
    """A stream name, durable name, header or limit is not acceptable."""

    code = "bus_argument_invalid"
    title = "Invalid bus argument"


class NoStreamForSubject(InvalidInput):
    """No stream captures the subject that was published or subscribed to."""

    code = "bus_no_stream"
    title = "No stream for subject"


class StreamConflict(InvalidInput):
    """A stream's subjects overlap another stream's, or a stream does not exist."""

    code = "bus_stream_conflict"
    title = "Stream conflict"


class DurableConflict(InvalidInput):
    """A durable consumer exists with a different subject filter."""

    code = "bus_durable_conflict"
    title = "Durable consumer conflict"


class MessageTooLarge(PayloadTooLarge):
    """A message body exceeds the bus limit."""

    code = "bus_payload_too_large"
    title = "Message too large"


def validate_subject(subject: object, *, wildcards: bool = False) -> str:
    """Check a NATS subject (``a.b.c``); with ``wildcards``, ``*`` tokens and a final ``>``."""
    if not isinstance(subject, str) or not subject:
        raise InvalidSubject("a subject must be a non-empty string", subject=repr(subject))
    if len(subject) > MAX_SUBJECT_LEN:
        raise InvalidSubject(f"subject longer than {MAX_SUBJECT_LEN} characters", subject=subject[:64])
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if token in ("*", ">"):
            if not wildcards:
                raise InvalidSubject(f"wildcards are not allowed here: {subject!r}", subject=subject)
            if token == ">" and i != len(tokens) - 1:
                raise InvalidSubject(f"'>' must be the last token: {subject!r}", subject=subject)
        elif not _TOKEN_RE.match(token):
            raise InvalidSubject(
                f"invalid subject {subject!r}: tokens must be non-empty, without spaces, '*' or '>'",
                subject=subject,
            )
    return subject


def subject_matches(subject_filter: str, subject: str) -> bool:
    """True when a concrete subject matches a filter with ``*`` and ``>`` wildcards."""
    f_tokens = subject_filter.split(".")
    s_tokens = subject.split(".")
    for i, f in enumerate(f_tokens):
        if f == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or (f != "*" and f != s_tokens[i]):
            return False
    return len(f_tokens) == len(s_tokens)


def filters_overlap(a: str, b: str) -> bool:
    """True when some concrete subject matches both filters."""
    a_tokens, b_tokens = a.split("."), b.split(".")
    for i in range(max(len(a_tokens), len(b_tokens))):
        x = a_tokens[i] if i < len(a_tokens) else None
        y = b_tokens[i] if i < len(b_tokens) else None
        if x == ">" or y == ">":
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != y and "*" not in (x, y):
            return False
    return True


def subject_is_subset(sub: str, sup: str) -> bool:
    """True when every subject matched by filter ``sub`` is also matched by filter ``sup``."""
    sub_tokens, sup_tokens = sub.split("."), sup.split(".")
    for i, y in enumerate(sup_tokens):
        if y == ">":
            return len(sub_tokens) > i
        if i >= len(sub_tokens):
            return False
        x = sub_tokens[i]
        if x == ">" or (y != "*" and (x == "*" or x != y)):
            return False
    return len(sub_tokens) == len(sup_tokens)


def validate_name(name: object, what: str) -> str:
    """Check a stream or durable name: 1-64 of ``A-Z a-z 0-9 _ -``."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidBusArgument(
            f"invalid {what} name {name!r}: use 1-64 of A-Z a-z 0-9 _ -", name=repr(name)
        )
    return name


def validate_publish(
    subject: str, data: object, headers: Mapping[str, str] | None, msg_id: str | None
) -> None:
    """Check the arguments of ``publish``; raise a clear InvalidInput otherwise."""
    validate_subject(subject)
    if not isinstance(data, bytes):
        raise InvalidBusArgument(f"message data must be bytes, got {type(data).__name__}")
    if len(data) > MAX_PAYLOAD:
        raise MessageTooLarge(f"message of {len(data)} bytes exceeds the bus limit of {MAX_PAYLOAD} bytes")
    for key, value in (headers or {}).items():
        if not isinstance(key, str) or not _HEADER_KEY_RE.match(key):
            raise InvalidBusArgument(f"invalid header name {key!r}")
        if key.lower().startswith("nats-"):
            raise InvalidBusArgument(f"header {key!r} is reserved (use msg_id for de-duplication)")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise InvalidBusArgument(f"header {key!r} must be a single-line string")
    if msg_id is not None and (not isinstance(msg_id, str) or not msg_id or "\n" in msg_id or "\r" in msg_id):
        raise InvalidBusArgument(f"invalid msg_id {msg_id!r}")


def validate_subscribe(
    durable: str, ack_wait_s: float, max_deliver: int, max_in_flight: int, forget_after_s: float | None = None
) -> None:
    """Check the consumer arguments of ``subscribe``."""
    validate_name(durable, "durable")
    if forget_after_s is not None and not forget_after_s > 0:
        raise InvalidBusArgument(f"forget_after_s must be > 0, got {forget_after_s}")
    if not ack_wait_s > 0:
        raise InvalidBusArgument(f"ack_wait_s must be > 0, got {ack_wait_s}")
    if max_deliver == 0 or max_deliver < -1:
        raise InvalidBusArgument(f"max_deliver must be -1 (unlimited) or >= 1, got {max_deliver}")
    if max_in_flight < 1:
        raise InvalidBusArgument(f"max_in_flight must be >= 1, got {max_in_flight}")


def validate_stream(name: str, subjects: list[str], max_age_s: float | None, max_msgs: int | None) -> None:
    """Check the arguments of ``ensure_stream``."""
    validate_name(name, "stream")
    if not isinstance(subjects, list | tuple) or not subjects:
        raise InvalidBusArgument("a stream needs a non-empty list of subjects")
    for s in subjects:
        validate_subject(s, wildcards=True)
    if max_age_s is not None and not max_age_s > 0:
        raise InvalidBusArgument(f"max_age_s must be > 0, got {max_age_s}")
    if max_msgs is not None and max_msgs < 1:
        raise InvalidBusArgument(f"max_msgs must be >= 1, got {max_msgs}")


class Message(ABC):
    """One delivery of a stored message to a subscription."""

    __slots__ = ("data", "headers", "num_delivered", "seq", "subject")

    def __init__(
        self, subject: str, data: bytes, headers: dict[str, str], seq: int, num_delivered: int
    ) -> None:
        self.subject = subject
        self.data = data
        self.headers = headers
        self.seq = seq
        self.num_delivered = num_delivered

    @property
    def msg_id(self) -> str | None:
        """The de-duplication id given at publish, if any."""
        return self.headers.get(MSG_ID_HEADER)

    @abstractmethod
    async def ack(self) -> None:
        """Acknowledge: the message is done and is not delivered again to this durable."""

    @abstractmethod
    async def nak(self, delay_s: float | None = None) -> None:
        """Give the message back for redelivery, at once or after ``delay_s`` seconds."""

    @abstractmethod
    async def in_progress(self) -> None:
        """Still working on it: the message's ack_wait starts again."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.subject} seq={self.seq} delivered={self.num_delivered}>"


Handler = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message to publish with :meth:`Bus.publish_many`."""

    subject: str
    data: bytes
    headers: dict[str, str] | None = None
    msg_id: str | None = None


async def deliver(handler: Handler, msg: Message) -> None:
    """Run a handler on one message; nak the message (after a short delay) when the handler raises."""
    try:
        await handler(msg)
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("bus handler failed on %s seq=%d; it will be redelivered", msg.subject, msg.seq)
        HANDLER_ERRORS.inc()
        try:
            await msg.nak(HANDLER_ERROR_DELAY_S)
        except BusUnavailable:
            _log.warning("could not nak %s seq=%d; it is redelivered after ack_wait", msg.subject, msg.seq)


class Subscription(ABC):
    """One member of a durable consumer; delivers messages to its handler until closed."""

    def __init__(self, stream: str, subject_filter: str, durable: str) -> None:
        self.stream = stream
        self.subject_filter = subject_filter
        self.durable = durable

    @abstractmethod
    async def close(self) -> None:
        """Stop delivering; un-acked messages of this member are redelivered to others at once."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once the subscription has stopped."""


class Bus(ABC):
    """A message bus with persistent streams and durable, load-shared consumers."""

    scheme: ClassVar[str]

    @abstractmethod
    async def connect(self) -> None:
        """Connect (idempotent); raise BusUnavailable when the bus cannot be reached."""

    @abstractmethod
    async def close(self) -> None:
        """Close every subscription and the connection (idempotent)."""

    @abstractmethod
    async def ping(self) -> None:
        """Check readiness; raise BusUnavailable when the bus cannot serve."""

    @abstractmethod
    async def ensure_stream(
        self,
        name: str,
        subjects: list[str],
        *,
        max_age_s: float | None = None,
        max_msgs: int | None = None,
    ) -> None:
        """Create the stream, or update its subjects and limits (idempotent)."""

    @abstractmethod
    async def delete_stream(self, name: str) -> bool:
        """Delete a stream with its messages and consumers; False when it did not exist."""

    @abstractmethod
    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
    ) -> int:
        """Store a message in the stream that captures ``subject``; return its sequence."""

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[int]:
        """Publish in order and wait until all are stored; return their sequences.

        On an error some messages may be stored already: retry the batch with ``msg_id``s set
        and the duplicates are dropped.
        """
        for env in envelopes:
            validate_publish(env.subject, env.data, env.headers, env.msg_id)
        return [
            await self.publish(env.subject, env.data, headers=env.headers, msg_id=env.msg_id)
            for env in envelopes
        ]

    @abstractmethod
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
        """Join (or create) the durable consumer on ``subject_filter`` and start delivering.

        ``forget_after_s``: delete the consumer once nobody has consumed from it for that long
        (a consumer per process, e.g. one that follows status, would otherwise pile up).
        """

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
