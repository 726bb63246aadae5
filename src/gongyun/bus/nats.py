"""NATS JetStream bus: streams, durable pull consumers shared by their members, explicit acks.

A queue group is several pull subscriptions (``nats_pull``) on one durable consumer: the
server serves every pull request from the consumer's single cursor, so each message goes
to one member. ``max_in_flight`` is the consumer's ``max_ack_pending``; ``msg_id`` travels in the
``Nats-Msg-Id`` header and JetStream de-duplicates within the stream's duplicate window.

A ``namespace`` (the deployment id) isolates deployments sharing one NATS server: stream and
durable names get ``<namespace>_`` in front, subjects ``<namespace>.``; handlers see the subjects
without it, so callers and the in-process bus stay the same.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from gongyun.bus.base import (
    DUPLICATE_WINDOW_S,
    MSG_ID_HEADER,
    Bus,
    BusClosed,
    BusError,
    DurableConflict,
    Envelope,
    Handler,
    InvalidBusArgument,
    NoStreamForSubject,
    StreamConflict,
    Subscription,
    subject_is_subset,
    validate_name,
    validate_publish,
    validate_stream,
    validate_subject,
    validate_subscribe,
)
from gongyun.bus.nats_pull import NatsSubscription, mapped_errors

_log = logging.getLogger("gongyun.bus.nats")

_ERR_STREAM_NAME_IN_USE = 10058
_ERR_SUBJECTS_OVERLAP = 10065
DEPLOYMENTS_BUCKET = "gongyun-deployments"  # KV: deployment id -> the database it belongs to
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class NatsBus(Bus):
    """The NATS JetStream implementation of :class:`~gongyun.bus.base.Bus`."""

    scheme: ClassVar[str] = "nats"

    def __init__(
        self,
        servers: list[str],
        *,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 5.0,
        namespace: str | None = None,
    ):
        if not servers:
            raise InvalidBusArgument("a NATS bus needs at least one server URL")
        if namespace is not None and not NAMESPACE_RE.match(namespace):
            raise InvalidBusArgument(f"invalid bus namespace {namespace!r}: use 1-32 of A-Z a-z 0-9 _ -")
        self.namespace = namespace
        self.servers = servers
        self._connect_timeout = connect_timeout_s
        self._timeout = request_timeout_s
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._subs: set[NatsSubscription] = set()

    @property
    def where(self) -> str:
        """The server URLs without credentials (safe to log)."""
        return ", ".join(re.sub(r"//[^@/]*@", "//***@", url) for url in self.servers)

    def _subject(self, subject: str) -> str:
        """The subject on the server (inside the namespace)."""
        return f"{self.namespace}.{subject}" if self.namespace else subject

    def _name(self, name: str) -> str:
        """A stream or durable name on the server (inside the namespace)."""
        return f"{self.namespace}_{name}" if self.namespace else name

    def _jetstream(self) -> JetStreamContext:
        if self._nc is None or self._js is None or self._nc.is_closed:
            raise BusClosed("the NATS bus is not connected")
        return self._js

    async def _on_error(self, exc: Exception) -> None:
        _log.warning("NATS error: %s", exc)

    async def _on_disconnect(self) -> None:
        if self._nc is not None and not self._nc.is_closed:  # not our own close()
            _log.warning("NATS connection lost; reconnecting")

    async def _on_reconnect(self) -> None:
        _log.info("NATS reconnected")

    async def connect(self) -> None:
        """Connect to the NATS servers and check JetStream is enabled."""
        if self._nc is not None and not self._nc.is_closed:
            return
        nc = NatsClient()
        try:
            # nats-py retries the first connect forever when reconnects are unlimited: bound it here.
            await asyncio.wait_for(
                nc.connect(
                    servers=self.servers,
                    connect_timeout=int(max(1, self._connect_timeout)),
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                ),
                self._connect_timeout,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            await self._quiet_close(nc)
            raise BusError(f"cannot connect to NATS at {self.where}: {str(exc) or 'timed out'}") from exc
        self._nc, self._js = nc, nc.jetstream(timeout=self._timeout)
        try:
            await self.ping()
        except BusError:
            await self.close()
            raise

    @staticmethod
    async def _quiet_close(nc: NatsClient) -> None:
        if not nc.is_closed:
            try:
                await nc.close()
            except (nats.errors.Error, OSError) as exc:
                _log.debug("closing NATS: %s", exc)

    async def close(self) -> None:
        """Close every subscription, then the connection."""
        for sub in list(self._subs):
            await sub.close()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            await self._quiet_close(nc)

    async def ping(self) -> None:
        """Round-trip to the server and the JetStream API."""
        js = self._jetstream()
        assert self._nc is not None
        with mapped_errors("ping"):
            await self._nc.flush(timeout=int(max(1, self._timeout)))
            await js.account_info()

    async def claim_namespace(self, owner: str) -> str | None:
        """Register the namespace as ``owner``'s (a database fingerprint); return the other owner, if any.

        The first deployment to start with an id owns it (an atomic KV ``create``); a later one with
        another database gets that database's fingerprint back and must refuse to start.
        """
        if not self.namespace:
            return None
        js = self._jetstream()
        with mapped_errors(f"claim deployment id {self.namespace}"):
            try:
                kv = await js.key_value(DEPLOYMENTS_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                kv = await js.create_key_value(bucket=DEPLOYMENTS_BUCKET, history=1)
            try:
                await kv.create(self.namespace, owner.encode())
                return None
            except nats.js.errors.KeyWrongLastSequenceError:
                entry = await kv.get(self.namespace)
        holder = (entry.value or b"").decode()
        return None if holder == owner else holder

    async def ensure_stream(
        self,
        name: str,
        subjects: list[str],
        *,
        max_age_s: float | None = None,
        max_msgs: int | None = None,
    ) -> None:
        """Create the stream, or update its subjects and limits."""
        validate_stream(name, subjects, max_age_s, max_msgs)
        js = self._jetstream()
        config = StreamConfig(
            name=self._name(name),
            subjects=[self._subject(s) for s in subjects],
            max_age=max_age_s or 0,
            max_msgs=max_msgs if max_msgs is not None else -1,
            duplicate_window=min(DUPLICATE_WINDOW_S, max_age_s or DUPLICATE_WINDOW_S),
        )
        try:
            with mapped_errors(f"ensure stream {name}"):
                try:
                    await js.add_stream(config)
                except nats.js.errors.BadRequestError as exc:
                    if exc.err_code != _ERR_STREAM_NAME_IN_USE:
                        raise
                    await js.update_stream(config)
        except InvalidBusArgument as exc:
            if exc.details.get("err_code") == _ERR_SUBJECTS_OVERLAP:
                raise StreamConflict(f"subjects of stream {name!r} overlap another stream") from exc
            raise

    async def delete_stream(self, name: str) -> bool:
        """Delete a stream; False when it did not exist."""
        validate_name(name, "stream")
        js = self._jetstream()
        for sub in [s for s in self._subs if s.stream == self._name(name)]:
            await sub.close()
        with mapped_errors(f"delete stream {name}"):
            try:
                return bool(await js.delete_stream(self._name(name)))
            except nats.js.errors.NotFoundError:
                return False

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
    ) -> int:
        """Publish and wait for the stream's acknowledgement; return the sequence."""
        validate_publish(subject, data, headers, msg_id)
        js = self._jetstream()
        hdrs: dict[str, Any] = dict(headers or {})
        if msg_id is not None:
            hdrs[MSG_ID_HEADER] = msg_id
        with mapped_errors(f"publish to {subject}"):
            ack = await js.publish(self._subject(subject), data, timeout=self._timeout, headers=hdrs or None)
        return int(ack.seq)

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[int]:
        """Pipeline the publishes (in order on one connection), then wait for every ack."""
        for env in envelopes:
            validate_publish(env.subject, env.data, env.headers, env.msg_id)
        js = self._jetstream()
        futures: list[asyncio.Future[Any]] = []
        # One deadline for the whole batch (a per-message wait_stall costs 4x the throughput).
        budget = self._timeout + len(envelopes) / 1000
        try:
            with mapped_errors("publish batch"):
                async with asyncio.timeout(budget):
                    for env in envelopes:
                        hdrs: dict[str, Any] = dict(env.headers or {})
                        if env.msg_id is not None:
                            hdrs[MSG_ID_HEADER] = env.msg_id
                        fut = await js.publish_async(
                            self._subject(env.subject), env.data, headers=hdrs or None
                        )
                        futures.append(fut)
                    acks = await asyncio.gather(*futures)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return [int(ack.seq) for ack in acks]

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
        """Create or join the durable pull consumer and start fetching."""
        validate_subject(subject_filter, wildcards=True)
        validate_subscribe(durable, ack_wait_s, max_deliver, max_in_flight, forget_after_s)
        js = self._jetstream()
        wanted, subject_filter = subject_filter, self._subject(subject_filter)
        durable = self._name(durable)
        with mapped_errors(f"subscribe {durable} to {subject_filter}"):
            try:
                stream = await js.find_stream_name_by_subject(subject_filter)
                subjects = (await js.stream_info(stream)).config.subjects or []
            except nats.js.errors.NotFoundError:
                subjects = []
            # Streams never overlap, so a stream covering the filter is the only one it overlaps.
            if not any(subject_is_subset(subject_filter, s) for s in subjects):
                raise NoStreamForSubject(f"no stream captures all of {wanted!r}", subject=wanted)
            try:
                info = await js.consumer_info(stream, durable)
            except nats.js.errors.NotFoundError:
                pass
            else:
                if info.config.filter_subject != subject_filter:
                    existing = info.config.filter_subject
                    raise DurableConflict(
                        f"durable {durable!r} exists on {existing!r}, not {subject_filter!r}"
                    )
            config = ConsumerConfig(
                durable_name=durable,
                filter_subject=subject_filter,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ack_wait_s,
                max_deliver=max_deliver,
                max_ack_pending=max_in_flight,
                inactive_threshold=forget_after_s,
            )
            try:
                await js.add_consumer(stream, config)
            except nats.js.errors.BadRequestError as exc:
                raise DurableConflict(f"durable {durable!r} on stream {stream!r}: {exc.description}") from exc
        assert self._nc is not None
        sub = NatsSubscription(
            self._nc,
            stream=stream,
            subject_filter=subject_filter,
            durable=durable,
            handler=handler,
            max_in_flight=max_in_flight,
            ack_wait_s=ack_wait_s,
            on_close=self._subs.discard,
            subject_prefix=f"{self.namespace}." if self.namespace else "",
        )
        with mapped_errors(f"subscribe {durable} to {subject_filter}"):
            await sub.start()
        self._subs.add(sub)
        return sub
