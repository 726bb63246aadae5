"""Feed ingest from the bus (or any async iterator of messages), acking only what is stored.

Payload decoding is pluggable: ``decode(subject, data) -> (tenant, samples)``. The default
``decode_json`` reads the envelope ``{"tenant": "...", "samples": [{"tag": "dev/tag",
"value": 1.5, "ts": "2026-01-01T00:00:00Z" | epoch-ms, "quality": "good"}]}``; when the body
has no tenant it is taken from the subject ``telemetry.<tenant>.<...>``. ``decode_json_batch``
reads the same envelope straight into columns (``SampleBatch``); the consumer uses the columnar
form. (Sparkplug B reaches ingest through the receiver of :mod:`gongyun.edge.receiver`, which reads
payloads with the decoder of :mod:`gongyun.sparkplug.decode`.)
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import orjson

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.errors import InvalidInput
from gongyun.telemetry.ingest import _QUALITY, Ingestor, SampleBatch

_log = logging.getLogger("gongyun.telemetry.consumer")

SUBJECT = "telemetry.>"
Decoder = Callable[[str, bytes], tuple[str, Sequence[Sample] | SampleBatch]]
_TAG = re.compile(r"[^/]+/.+", re.DOTALL)
_QUALITY_BY_NAME = {str(k): v for k, v in _QUALITY.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MAX_MS = 2**53  # epoch milliseconds beyond this take the per-sample path (and its errors)


class PayloadInvalid(InvalidInput):
    """A telemetry message could not be decoded."""

    code = "telemetry_payload_invalid"
    title = "Invalid telemetry payload"


class Delivery(Protocol):
    """What a consumer needs of a message: its subject, body and ack/nak."""

    subject: str
    data: bytes

    async def ack(self) -> None:
        """The message is done."""

    async def nak(self, delay_s: float | None = None) -> None:
        """Give the message back for redelivery."""


def parse_ts(raw: object) -> datetime:
    """An ISO 8601 string or epoch milliseconds as an aware datetime."""
    if isinstance(raw, bool):
        raise PayloadInvalid("timestamp must be ISO 8601 or epoch milliseconds")
    if isinstance(raw, int | float):
        try:
            return datetime.fromtimestamp(raw / 1000.0, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise PayloadInvalid(f"bad timestamp {raw!r}") from exc
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise PayloadInvalid(f"bad timestamp {raw!r}")


def sample_from_dict(item: Any) -> Sample:
    """One JSON sample object as a Sample."""
    if not isinstance(item, dict) or "tag" not in item or "ts" not in item:
        raise PayloadInvalid("each sample needs 'tag' and 'ts'")
    try:
        tag = TagRef.parse(str(item["tag"]))
        quality = Quality(item.get("quality", "good"))
    except ValueError as exc:
        raise PayloadInvalid(str(exc)) from exc
    return Sample(tag, item.get("value"), parse_ts(item["ts"]), quality, item.get("seq"))


def decode_json(subject: str, data: bytes) -> tuple[str, list[Sample]]:
    """Decode the JSON envelope (tenant from the body, else from the subject)."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadInvalid(f"not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("samples"), list):
        raise PayloadInvalid("expected an object with a 'samples' list")
    return _tenant(subject, body), [sample_from_dict(i) for i in body["samples"]]


def _tenant(subject: str, body: dict[str, Any]) -> str:
    tenant = body.get("tenant")
    if not tenant:
        parts = subject.split(".")
        if len(parts) < 2:
            raise PayloadInvalid("no tenant in the body or the subject")
        tenant = parts[1]
    return str(tenant)


def _to_us(ts: datetime) -> int:
    return (ts - _EPOCH) // _ONE_US


def json_batch(items: Sequence[Any]) -> SampleBatch:
    """JSON sample objects (``tag``, ``ts``, optional ``value`` and ``quality``) as columns.

    Accepts and refuses exactly what ``sample_from_dict`` does, for the whole list at once.
    """
    if not set(map(type, items)) <= {dict}:
        raise PayloadInvalid("each sample needs 'tag' and 'ts'")
    try:
        tags = [item["tag"] for item in items]
        stamps = [item["ts"] for item in items]
        values = [item.get("value") for item in items]
        qualities = [item.get("quality", "good") for item in items]
    except KeyError as exc:
        raise PayloadInvalid("each sample needs 'tag' and 'ts'") from exc
    if not set(map(type, tags)) <= {str}:
        tags = [str(t) for t in tags]
    if not all(map(_TAG.fullmatch, tags)):
        bad = next(t for t in tags if not _TAG.fullmatch(t))
        raise PayloadInvalid(f"tag reference must be 'device/tag', got {bad!r}")
    quality = None
    if set(qualities) != {"good"}:
        codes = [_QUALITY_BY_NAME.get(q) if isinstance(q, str) else None for q in qualities]
        if None in codes:
            bad_q = next(q for q, c in zip(qualities, codes, strict=True) if c is None)
            raise PayloadInvalid(f"{bad_q!r} is not a valid Quality")
        quality = np.array(codes, np.int16)
    naive: dict[int, datetime] = {}
    if (
        set(map(type, stamps)) <= {int}
        and -_MAX_MS < min(stamps, default=0) <= max(stamps, default=0) < _MAX_MS
    ):
        ts = np.array(stamps, np.int64) * 1000
    else:
        us: list[int] = []
        for i, raw in enumerate(stamps):
            when = parse_ts(raw)
            if when.tzinfo is None:
                naive[i] = when
                us.append(0)
            else:
                us.append(_to_us(when))
        ts = np.array(us, np.int64)
    return SampleBatch(tags, ts, values, quality, naive or None)


def decode_json_batch(subject: str, data: bytes) -> tuple[str, SampleBatch]:
    """``decode_json`` into columns."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadInvalid(f"not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("samples"), list):
        raise PayloadInvalid("expected an object with a 'samples' list")
    return _tenant(subject, body), json_batch(body["samples"])


class IngestConsumer:
    """Turns messages into ingest batches; acks each once its samples are stored."""

    def __init__(self, ingestor: Ingestor, decode: Decoder = decode_json_batch) -> None:
        self.ingestor = ingestor
        self.decode = decode
        self.poison = 0
        self._pending: set[asyncio.Task[None]] = set()

    async def handle(self, msg: Delivery) -> None:
        """Decode and submit one message (waits while ingest is saturated)."""
        try:
            tenant, samples = self.decode(msg.subject, msg.data)
        except InvalidInput as exc:
            self.poison += 1
            _log.warning("dropping undecodable telemetry on %s: %s", msg.subject, exc.message)
            await msg.ack()  # redelivering it would fail the same way
            return
        sub = await self.ingestor.submit(tenant, samples)
        task = asyncio.create_task(self._ack_when_stored(msg, sub.stored))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _ack_when_stored(msg: Delivery, stored: Awaitable[None]) -> None:
        try:
            await stored
        except Exception:
            await msg.nak(1.0)
            return
        await msg.ack()

    async def consume(self, messages: AsyncIterator[Delivery]) -> None:
        """Handle every message of an async iterator, then wait for the last acks."""
        async for msg in messages:
            await self.handle(msg)
        await self.drain()

    async def drain(self) -> None:
        """Wait until every submitted message is acked or nak'ed."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def subscribe(self, bus: Any, subject: str = SUBJECT, durable: str = "telemetry-ingest") -> Any:
        """Join the durable bus consumer (``gongyun.bus``) that feeds ingest."""
        return await bus.subscribe(subject, durable=durable, handler=self.handle)
