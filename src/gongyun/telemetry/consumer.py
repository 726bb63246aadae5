"""Feed ingest from the bus (or any async iterator of messages), acking only what is stored.

Payload decoding is pluggable: ``decode(subject, data) -> (tenant, samples)``. The default
``decode_json`` reads the envelope ``{"tenant": "...", "samples": [{"tag": "dev/tag",
"value": 1.5, "ts": "2026-01-01T00:00:00Z" | epoch-ms, "quality": "good"}]}``; when the body
has no tenant it is taken from the subject ``telemetry.<tenant>.<...>``. ``decode_json_batch``
reads the same envelope straight into columns (``SampleBatch``), and ``sparkplug_batch`` does
so for a Sparkplug B DDATA/NDATA payload; the consumer uses the columnar forms.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import orjson

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.edge import spb, spbvalues
from gongyun.edge.errors import DataSetInvalid, DecodeError
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


_METRIC = operator.attrgetter("name", "timestamp", "datatype", "double_value", "float_value", "is_null")
_DOUBLE, _FLOAT = int(spb.SpbType.Double), int(spb.SpbType.Float)


def sparkplug_batch(device: str, data: bytes) -> SampleBatch:
    """A Sparkplug B payload's metrics as columns, tags named ``device/metric``.

    A metric without a timestamp takes the payload's; doubles and floats go straight into a
    float column, anything else (and null) is read by ``spb.metric_value`` one by one.
    """
    try:
        msg = spb.parse(data)
    except DecodeError as exc:
        raise PayloadInvalid(exc.message) from exc
    metrics = msg.metrics
    if not metrics:
        return SampleBatch([], np.zeros(0, np.int64), np.zeros(0, np.float64))
    names, stamps, dtypes, doubles, floats, nulls = zip(*map(_METRIC, metrics), strict=True)
    prefix = device + "/"
    tags = [prefix + name for name in names]
    ms = np.array(stamps, np.uint64)
    ms[ms == 0] = msg.timestamp
    ms = np.minimum(ms, np.uint64(2**62 // 1000))  # absurd timestamps stay absurd (and are rejected)
    ts = ms.astype(np.int64) * 1000
    dt = np.array(dtypes, np.int64)
    dv = np.array(doubles, np.float64)
    fv = np.array(floats, np.float64)
    # a double or float field reads 0.0 when unset: zeros (and nulls) are read exactly below
    value = np.where(dt == _FLOAT, fv, dv)
    plain = ((dt == _DOUBLE) | (dt == _FLOAT)) & (value != 0.0) & ~np.array(nulls, np.bool_)
    if plain.all():
        return SampleBatch(tags, ts, value)
    values: list[Any] = value.tolist()
    nested: list[int] = []
    for i in np.flatnonzero(~plain).tolist():
        kind = metrics[i].WhichOneof("value")
        if kind == "template_value" and not metrics[i].is_null:
            nested.append(i)
        elif kind == "dataset_value":
            values[i] = _dataset(metrics[i])  # a table is not a time-series value
        else:
            values[i] = spb.metric_value(metrics[i])
    if not nested:
        return SampleBatch(tags, ts, values)
    # a template instance becomes one sample per (nested) member, named tag/member
    keep = np.ones(len(tags), np.bool_)
    keep[nested] = False
    out_tags = [t for t, k in zip(tags, keep.tolist(), strict=True) if k]
    out_ts = ts[keep].tolist()
    out_values = [v for v, k in zip(values, keep.tolist(), strict=True) if k]
    for i in nested:
        for name, v in _template_members(tags[i], metrics[i].template_value):
            out_tags.append(name)
            out_ts.append(int(ts[i]))
            out_values.append(v)
    return SampleBatch(out_tags, np.array(out_ts, np.int64), out_values)


def _dataset(metric: Any) -> Any:
    """A DataSet metric's table (or why it is malformed): either is rejected by ingest as wrong_type."""
    try:
        return spbvalues.decode_dataset(metric.dataset_value)
    except DataSetInvalid as exc:
        return exc


def _template_members(prefix: str, template: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """(tag, value) of every scalar member of a template instance, nested ones flattened."""
    out: list[tuple[str, Any]] = []
    for member in template.metrics:
        name = f"{prefix}/{member.name}"
        kind = member.WhichOneof("value")
        if kind == "template_value" and depth < 8 and not member.is_null:
            out += _template_members(name, member.template_value, depth + 1)
        elif kind == "dataset_value":
            out.append((name, _dataset(member)))
        else:
            out.append((name, spb.metric_value(member)))
    return out


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
