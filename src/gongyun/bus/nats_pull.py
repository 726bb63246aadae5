"""JetStream pull consumption: one open pull request per member, messages handed out as they arrive."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsCoreSubscription

from gongyun.bus import metrics
from gongyun.bus.base import (
    BusError,
    Handler,
    InvalidBusArgument,
    Message,
    MessageTooLarge,
    NoStreamForSubject,
    Subscription,
    deliver,
)

_log = logging.getLogger("gongyun.bus.nats")

FETCH_BATCH = 128
"""Most messages one pull request asks for (also capped by the free in-flight room)."""
FETCH_WAIT_S = 1.0
"""How long one pull request waits on the server (also the redelivery delay after a close mid-pull)."""


@contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Translate nats-py errors into the bus error tree."""
    try:
        yield
    except nats.js.errors.NoStreamResponseError as exc:
        raise NoStreamForSubject(f"{what}: no stream captures this subject") from exc
    except nats.js.errors.TooManyStalledMsgsError as exc:
        raise BusError(f"{what}: too many publishes awaiting acknowledgement") from exc
    except nats.errors.MaxPayloadError as exc:
        raise MessageTooLarge(f"{what}: message exceeds the server's max_payload") from exc
    except nats.js.errors.BadRequestError as exc:
        raise InvalidBusArgument(f"{what}: {exc.description}", err_code=exc.err_code) from exc
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise BusError(f"{what}: {type(exc).__name__}: {exc}") from exc


class NatsMessage(Message):
    """A delivery from a JetStream pull consumer."""

    __slots__ = ("_done", "_msg", "_sub")

    def __init__(self, sub: NatsSubscription, msg: NatsMsg) -> None:
        meta = msg.metadata
        subject = msg.subject.removeprefix(sub.subject_prefix)
        super().__init__(subject, msg.data, dict(msg.headers or {}), meta.sequence.stream, meta.num_delivered)
        self._sub = sub
        self._msg = msg
        self._done = False
        metrics.note_delivery(sub.stream, sub.durable, meta.num_delivered, meta.num_pending)

    async def ack(self) -> None:
        """Acknowledge the message (idempotent)."""
        if self._done:
            return
        with mapped_errors("ack"):
            await self._msg.ack()
        self._finish()

    async def nak(self, delay_s: float | None = None) -> None:
        """Give the message back for redelivery, at once or after ``delay_s``."""
        if self._done:
            return
        with mapped_errors("nak"):
            await self._msg.nak(delay=delay_s if delay_s else None)
        self._finish()

    async def in_progress(self) -> None:
        """Restart the message's ack_wait on the server."""
        if self._done:
            return
        with mapped_errors("in_progress"):
            await self._msg.in_progress()

    def _finish(self) -> None:
        self._done = True
        self._sub._settled(self)


class NatsSubscription(Subscription):
    """One fetcher bound to a durable pull consumer.

    It keeps one pull request (``batch`` up to the free in-flight room, ``expires`` FETCH_WAIT_S)
    open on its own inbox and hands every message to the handler the moment it arrives.
    """

    def __init__(
        self,
        nc: NatsClient,
        *,
        stream: str,
        subject_filter: str,
        durable: str,
        handler: Handler,
        max_in_flight: int,
        ack_wait_s: float,
        on_close: Callable[[NatsSubscription], None],
        subject_prefix: str = "",
    ) -> None:
        super().__init__(stream, subject_filter, durable)
        self.subject_prefix = subject_prefix  # the deployment's namespace, hidden from handlers
        self._on_close = on_close
        self._nc = nc
        self._handler = handler
        self._max_in_flight = max_in_flight
        self._ack_wait_s = ack_wait_s
        self._handler_s = 0.0  # moving average of the handler's time per message
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._inbox_sub: NatsCoreSubscription | None = None
        self._arrived: asyncio.Queue[NatsMsg] = asyncio.Queue()
        self._held: dict[int, NatsMessage] = {}
        self._room = asyncio.Event()
        self._closed = False
        self._outstanding = 0  # messages the open pull request may still bring
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe to the private inbox and start the pull loop."""
        self._inbox_sub = await self._nc.subscribe(self._inbox, cb=self._arrive)
        self._task = asyncio.create_task(self._run(), name=f"bus-nats-{self.durable}")
        metrics.CONSUMERS.labels(self.stream, self.durable).inc()

    @property
    def closed(self) -> bool:
        """True once the subscription has stopped."""
        return self._closed

    async def _arrive(self, raw: NatsMsg) -> None:
        # Our own queue, read without yielding while it is full: the acks of a burst then
        # leave in one write instead of one syscall per message.
        self._arrived.put_nowait(raw)

    def _settled(self, msg: NatsMessage) -> None:
        if self._held.get(msg.seq) is msg:
            del self._held[msg.seq]
            self._room.set()

    def _batch_size(self, room: int) -> int:
        """Ask for no more than the handler gets through in a quarter of ack_wait.

        Messages wait in our queue with their ack_wait running; a big batch ahead of a slow
        handler would expire and be redelivered to another member while still queued here.
        """
        affordable = int(self._ack_wait_s / 4 / self._handler_s) if self._handler_s > 0 else FETCH_BATCH
        return max(1, min(room, FETCH_BATCH, affordable))

    async def _pull(self, batch: int) -> None:
        expires_ns = int(FETCH_WAIT_S * 1_000_000_000)
        body = json.dumps({"batch": batch, "expires": expires_ns}).encode()
        await self._nc.publish(self._next_subject, body, reply=self._inbox)
        self._outstanding = batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = 0.0  # a pull request whose end we never heard of (reconnect) is dropped then
        while not self._closed:
            if self._outstanding <= 0 or loop.time() > give_up_at:
                room = self._max_in_flight - len(self._held)
                if room <= 0:
                    self._room.clear()
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), FETCH_WAIT_S)
                    continue
                try:
                    await self._pull(self._batch_size(room))
                except (nats.errors.Error, OSError) as exc:
                    _log.warning("pull from %s/%s failed: %s; retrying", self.stream, self.durable, exc)
                    metrics.PULL_ERRORS.labels(self.stream, self.durable).inc()
                    await asyncio.sleep(1.0)
                    continue
                give_up_at = loop.time() + FETCH_WAIT_S + 2.0
            try:
                raw = self._arrived.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    raw = await asyncio.wait_for(self._arrived.get(), max(0.01, give_up_at - loop.time()))
                except TimeoutError:
                    self._outstanding = 0
                    continue
            status = raw.headers.get("Status") if raw.headers else None
            if status is not None:
                if status != "100":  # 404/408: request ended; 409: consumer gone or limits
                    self._outstanding = 0
                if status == "409":
                    _log.warning("pull %s/%s: %s", self.stream, self.durable, raw.headers)
                    await asyncio.sleep(1.0)
                continue
            self._outstanding -= 1
            try:
                msg = NatsMessage(self, raw)
            except (ValueError, IndexError, nats.errors.Error):  # not a JetStream delivery: skip it
                _log.warning(
                    "ignoring a non-JetStream message on the inbox of %s/%s", self.stream, self.durable
                )
                continue
            self._held[msg.seq] = msg
            started = loop.time()
            await deliver(self._handler, msg)
            self._handler_s += (loop.time() - started - self._handler_s) * 0.1

    async def close(self) -> None:
        """Stop pulling; nak this member's un-acked messages so the others get them."""
        if self._closed:
            return
        self._closed = True
        if self._inbox_sub is not None:
            metrics.CONSUMERS.labels(self.stream, self.durable).dec()
        task = self._task
        if task is not None and asyncio.current_task() is not task:  # a handler may close its own sub
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        try:
            if self._inbox_sub is not None:
                # Unsubscribe; whatever the server sent before that still reaches _arrived.
                await self._inbox_sub.drain()  # type: ignore[no-untyped-call]
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            _log.debug("unsubscribe %s/%s: %s", self.stream, self.durable, exc)
        self._take_arrived()
        # An open pull request lives on at the server until it expires and would swallow a
        # redelivery, so the naks then wait for it to expire; otherwise they are immediate.
        nak_delay = FETCH_WAIT_S + 0.25 if self._outstanding > 0 else None
        for msg in list(self._held.values()):
            try:
                await msg.nak(nak_delay)
            except BusError as exc:
                _log.warning("could not nak seq=%d on close (%s); redelivered after ack_wait", msg.seq, exc)
        self._held.clear()
        try:
            if self._nc.is_connected:  # our acks and naks reach the server before anyone resumes
                await self._nc.flush()
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            _log.debug("flush after closing %s/%s: %s", self.stream, self.durable, exc)
        self._on_close(self)

    def _take_arrived(self) -> None:
        """Messages that arrived but were not handed out yet are ours to nak."""
        while not self._arrived.empty():
            raw = self._arrived.get_nowait()
            status = raw.headers.get("Status") if raw.headers else None
            if status is None:
                self._outstanding -= 1
                with suppress(ValueError, IndexError, nats.errors.Error):
                    msg = NatsMessage(self, raw)
                    self._held[msg.seq] = msg
            elif status != "100":
                self._outstanding = 0
