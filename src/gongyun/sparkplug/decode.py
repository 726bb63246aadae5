"""The Sparkplug B decoder: a payload's metrics as columns, names and datatypes resolved from births.

:func:`decode` is the only place that turns a ``Payload`` into values. It reads the metrics into
columns (names, millisecond timestamps, datatypes, values, properties): when every metric is a
non-null double or float the values are one float64 array, read without a per-metric branch;
anything else (integers, text, nulls, bytes, DataSets, Template instances) is read one by one.
A metric without a name takes the one its alias was born with, one without a datatype the birth's,
one without a timestamp the payload's. A Template instance becomes one row per leaf member, named
``instance/member[/nested...]`` and checked against the node's definitions; a DataSet stays one
row holding a :class:`~gongyun.sparkplug.values.DataSet`. A malformed DataSet or Template drops
its metric (and is reported) while the rest of the payload is kept.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.core.types import Quality
from gongyun.sparkplug import payload as spb
from gongyun.sparkplug import values as spbv
from gongyun.sparkplug.errors import DataSetInvalid, TemplateInvalid

Value = float | int | bool | str | bytes | spbv.DataSet | None
_EMPTY: Mapping[str, Any] = {}
_FIELDS = operator.attrgetter(
    "name", "alias", "timestamp", "datatype", "double_value", "float_value", "is_null"
)
_DOUBLE, _FLOAT = int(spb.SpbType.Double), int(spb.SpbType.Float)
_SCALAR_KINDS = frozenset(
    {"int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value"}
)
_MAX_MS = 2**62 // 1000  # absurd timestamps stay absurd (a consumer rejects them) but do not overflow µs


@dataclass(slots=True)
class Metric:
    """One decoded metric (a row of :class:`Metrics`): name, value, source time, type, properties."""

    name: str
    value: Value
    ts: datetime
    datatype: int
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Metrics:
    """A payload's metrics as columns.

    ``values`` is a float64 array when every value is a float (the fast case), else a list;
    ``properties`` has one mapping per row (an empty one for a metric without properties).
    """

    names: list[str]
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64] | list[Any]
    datatypes: list[int]
    properties: list[Mapping[str, Any]]

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def empty(cls) -> Metrics:
        """No metrics."""
        return cls([], np.zeros(0, np.int64), np.zeros(0, np.float64), [], [])

    @classmethod
    def of(cls, rows: Sequence[Metric]) -> Metrics:
        """Columns of ``Metric`` rows (for callers that build metrics by hand)."""
        return cls(
            [m.name for m in rows],
            np.array([int(m.ts.timestamp() * 1000) for m in rows], np.int64),
            [m.value for m in rows],
            [m.datatype for m in rows],
            [m.properties for m in rows],
        )

    def value_list(self) -> list[Any]:
        """The values as a list."""
        return self.values.tolist() if isinstance(self.values, np.ndarray) else self.values

    def column(self, key: str) -> list[Any]:
        """Property ``key`` of every row (None where a metric does not carry it)."""
        return [p.get(key) for p in self.properties]

    def timestamps(self) -> list[datetime]:
        """The source times as aware datetimes (rows of one instant share one object)."""
        cache: dict[int, datetime] = {}
        out = []
        for ms in self.ts_ms.tolist():
            ts = cache.get(ms)
            if ts is None:
                try:
                    ts = datetime.fromtimestamp(ms / 1000, UTC)
                except (OverflowError, OSError, ValueError):  # beyond year 9999: a consumer rejects it
                    ts = datetime.max.replace(tzinfo=UTC)
                cache[ms] = ts
            out.append(ts)
        return out

    def rows(self) -> Iterator[Metric]:
        """The metrics one by one."""
        yield from map(
            Metric, self.names, self.value_list(), self.timestamps(), self.datatypes, self.properties
        )

    def without(self, names: set[str]) -> Metrics:
        """These metrics less the ones named in ``names``."""
        keep = [i for i, n in enumerate(self.names) if n not in names]
        if len(keep) == len(self.names):
            return self
        values = self.value_list()
        return Metrics(
            [self.names[i] for i in keep],
            self.ts_ms[keep],
            [values[i] for i in keep],
            [self.datatypes[i] for i in keep],
            [self.properties[i] for i in keep],
        )


@dataclass
class Births:
    """What one edge node's births declared: aliases, datatypes, Template definitions, instances."""

    aliases: dict[tuple[str | None, int], str] = field(default_factory=dict)
    types: dict[tuple[str | None, str], int] = field(default_factory=dict)
    templates: dict[str, spbv.Template] = field(default_factory=dict)
    instance_refs: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def node_birth(self, payload: Any) -> dict[str, str]:
        """Start over from an NBIRTH: forget node aliases and instances, take its Template definitions.

        Returns the error message per definition that failed to decode.
        """
        self.aliases = {k: v for k, v in self.aliases.items() if k[0] is not None}
        self.instance_refs.clear()
        named = {
            m.name: m.template_value
            for m in payload.metrics
            if m.WhichOneof("value") == "template_value" and m.template_value.is_definition
        }
        self.templates, failed = spbv.decode_definitions(named)
        return failed

    def device_birth(self, device: str) -> None:
        """Forget a device's aliases before its DBIRTH declares them again."""
        self.aliases = {k: v for k, v in self.aliases.items() if k[0] != device}


@dataclass(slots=True)
class Decoded:
    """A decoded payload: its metrics, how many had an alias no birth declared, rejected metrics."""

    metrics: Metrics
    unknown_aliases: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def decode(
    payload: Any, births: Births | None = None, device: str | None = None, *, birth: bool = False
) -> Decoded:
    """Decode a parsed ``Payload`` of ``device`` (None: the node); ``birth`` for NBIRTH/DBIRTH.

    A birth declares its metrics' aliases and datatypes in ``births``; data resolves them from it.
    ``errors`` holds ("dataset" | "template", message) per metric dropped as malformed.
    """
    births = births if births is not None else Births()
    metrics = payload.metrics
    if not metrics:
        return Decoded(Metrics.empty())
    names, aliases, stamps, dtypes, doubles, floats, nulls = map(
        list, zip(*map(_FIELDS, metrics), strict=True)
    )
    if birth:
        _declare(births, device, metrics, names, dtypes)
    unknown = _resolve(births, device, metrics, names, aliases, dtypes)
    ms = np.array(stamps, np.uint64)
    ms[ms == 0] = payload.timestamp or int(time.time() * 1000)
    ts = np.minimum(ms, np.uint64(_MAX_MS)).astype(np.int64)
    dt = np.array(dtypes, np.int64)
    value = np.where(dt == _FLOAT, np.array(floats, np.float64), np.array(doubles, np.float64))
    # a double or float field reads 0.0 when unset: zeros (and nulls) are read exactly below
    plain = ((dt == _DOUBLE) | (dt == _FLOAT)) & (value != 0.0) & ~np.array(nulls, np.bool_)
    props = [spbv.decode_properties(m.properties) if m.HasField("properties") else _EMPTY for m in metrics]
    if not unknown and plain.all():
        return Decoded(Metrics(names, ts, value, dtypes, props))
    return _slow(births, device, metrics, names, ts, value.tolist(), plain.tolist(), dtypes, props, birth)


def _declare(births: Births, device: str | None, metrics: Any, names: list[str], dtypes: list[int]) -> None:
    for m, name, dtype in zip(metrics, names, dtypes, strict=True):
        if name and m.HasField("alias"):
            births.aliases[(device, m.alias)] = name
        if name:
            births.types[(device, name)] = dtype


def _resolve(
    births: Births, device: str | None, metrics: Any, names: list[str], aliases: list[int], dtypes: list[int]
) -> int:
    """Fill in names from aliases and datatypes from births; count the aliases nobody declared."""
    unknown = 0
    for i, given in enumerate(names):
        name = given or (births.aliases.get((device, aliases[i])) if metrics[i].HasField("alias") else None)
        if name is None:
            unknown += 1
            continue
        names[i] = name
        if not dtypes[i]:
            dtypes[i] = births.types.get((device, name), 0)
    return unknown


def _slow(
    births: Births,
    device: str | None,
    metrics: Any,
    names: list[str],
    ts: npt.NDArray[np.int64],
    values: list[Any],
    plain: list[bool],
    dtypes: list[int],
    props: list[Mapping[str, Any]],
    birth: bool,
) -> Decoded:
    """Metric by metric: what is not a plain float, and the rows of Template instances."""
    out = Decoded(Metrics([], ts[:0], [], [], []))
    rows = out.metrics
    stamps: list[int] = []
    for i, m in enumerate(metrics):
        name = names[i]
        if not name:
            out.unknown_aliases += 1
            continue
        if plain[i]:
            _add(rows, stamps, name, int(ts[i]), values[i], dtypes[i], props[i])
            continue
        kind = m.WhichOneof("value")
        if kind == "template_value" and m.template_value.is_definition:
            continue  # definitions are taken from the NBIRTH by Births.node_birth
        if kind in _SCALAR_KINDS and not m.is_null:  # the birth's datatype says how to read it
            _add(
                rows,
                stamps,
                name,
                int(ts[i]),
                spb.signed(getattr(m, kind), kind, dtypes[i]),
                dtypes[i],
                props[i],
            )
            continue
        try:
            value = spbv.decode_value(
                m,
                births.templates,
                birth=birth,
                dtype=dtypes[i],
                ref=births.instance_refs.get((device, name)),
            )
        except (DataSetInvalid, TemplateInvalid) as exc:
            what = "dataset" if isinstance(exc, DataSetInvalid) else "template"
            out.errors.append((what, f"metric {name!r}: {exc.message}"))
            continue
        if isinstance(value, spbv.Template):
            if value.ref:
                births.instance_refs[(device, name)] = value.ref
            for path, member in value.flatten(name):
                merged = {**props[i], **member.properties} if member.properties else props[i]
                _add(rows, stamps, path, int(ts[i]), member.value, int(member.dtype), merged)
            continue
        _add(rows, stamps, name, int(ts[i]), value, dtypes[i], props[i])
    rows.ts_ms = np.array(stamps, np.int64)
    return out


def _add(
    rows: Metrics, stamps: list[int], name: str, ms: int, value: Any, dtype: int, props: Mapping[str, Any]
) -> None:
    rows.names.append(name)
    stamps.append(ms)
    assert isinstance(rows.values, list)
    rows.values.append(value)
    rows.datatypes.append(dtype)
    rows.properties.append(props)


def decode_bytes(
    data: bytes, births: Births | None = None, device: str | None = None, *, birth: bool = False
) -> Decoded:
    """:func:`decode` of raw bytes (raise SparkplugPayloadInvalid when they are not a Sparkplug B payload)."""
    return decode(spb.parse(data), births, device, birth=birth)


def quality_of(properties: Mapping[str, Any]) -> Quality:
    """Quality from a ``Quality`` property (OPC DA codes: 192 good, 64-127 uncertain, else bad)."""
    code = properties.get("Quality")
    if code is None:
        return Quality.good
    code = int(code)
    return Quality.good if code >= 192 else Quality.uncertain if 64 <= code < 128 else Quality.bad


def sample_value(value: Value) -> float | int | bool | str | None:
    """What a tag sample carries for a metric value: a DataSet as JSON text, bytes as hex."""
    if isinstance(value, spbv.DataSet):
        return value.to_json()
    if isinstance(value, bytes):
        return value.hex()
    return value
