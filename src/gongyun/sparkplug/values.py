"""Sparkplug B complex values: DataSet, Template (definitions and instances) and PropertySet.

Encoding fills the ``Payload`` messages of :mod:`gongyun.sparkplug.payload`; decoding checks them
against the Sparkplug B 3.0 rules and raises :class:`~gongyun.sparkplug.errors.DataSetInvalid` or
:class:`~gongyun.sparkplug.errors.TemplateInvalid` with a message that says what is wrong, so a caller
can drop the one bad metric and keep the rest of the payload.

* A DataSet has ``num_of_columns`` columns, each with a name and a scalar type; every row has one
  element per column, carried in the value field of the column's type (unset: null).
* A Template *definition* (``is_definition``, no ``template_ref``) is published in NBIRTH: its
  members are metrics with name, datatype and default value; its parameters have defaults.
* A Template *instance* names its definition in ``template_ref``. In a birth it carries every
  member (missing ones take the definition's defaults); in DATA only the members that changed.
  A member the definition does not have, a datatype that disagrees with it or a reference to a
  definition never published is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.errors import DataSetInvalid, TemplateInvalid

Scalar = float | int | bool | str | None
SpbType = spb.SpbType
# DataSet columns and Template parameters carry scalars only
SCALAR_TYPES = frozenset(t for t in SpbType if 1 <= t <= 15)


@dataclass(frozen=True, slots=True)
class DataSet:
    """A table: column names, column types and rows of scalars."""

    columns: tuple[str, ...]
    types: tuple[SpbType, ...]
    rows: tuple[tuple[Scalar, ...], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view: ``{"columns", "types" (type names), "rows"}``."""
        return {
            "columns": list(self.columns),
            "types": [t.name for t in self.types],
            "rows": [list(r) for r in self.rows],
        }

    def to_json(self) -> str:
        """The DataSet as JSON text (how a tag sample carries it)."""
        return json.dumps(self.as_dict(), separators=(",", ":"), default=str)


@dataclass(slots=True)
class Member:
    """One metric inside a Template: name, type, value (scalar, DataSet or nested Template)."""

    name: str
    dtype: SpbType
    value: Any = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Template:
    """A Template definition (``is_definition``) or an instance of the definition named ``ref``."""

    members: list[Member] = field(default_factory=list)
    ref: str | None = None
    is_definition: bool = False
    version: str | None = None
    parameters: dict[str, tuple[SpbType, Scalar]] = field(default_factory=dict)

    def member(self, name: str) -> Member | None:
        """The member called ``name``."""
        return next((m for m in self.members if m.name == name), None)

    def flatten(self, prefix: str) -> Iterator[tuple[str, Member]]:
        """Leaf members as (``prefix/member[/nested...]``, member), nested instances expanded."""
        for m in self.members:
            path = f"{prefix}/{m.name}"
            if isinstance(m.value, Template):
                yield from m.value.flatten(path)
            else:
                yield path, m


def complete(instance: Template, definitions: Mapping[str, Template]) -> Template:
    """A Template instance with every member of its definition, as a birth must carry it.

    Members the instance leaves out take the definition's defaults; nested instances are completed
    too. An instance of a definition not in ``definitions`` is returned as it is.
    """
    definition = definitions.get(instance.ref or "")
    if definition is None:
        return instance
    members = [
        Member(m.name, m.dtype, complete(m.value, definitions), m.properties)
        if isinstance(m.value, Template)
        else m
        for m in instance.members
    ]
    given = {m.name for m in members}
    members += [
        Member(d.name, d.dtype, d.value, dict(d.properties))
        for d in definition.members
        if d.name not in given
    ]
    return Template(members, instance.ref, False, instance.version, dict(instance.parameters))


# -- encoding ---------------------------------------------------------------------------------


def set_value(metric: Any, value: Any, dtype: SpbType) -> None:
    """Set a Metric's datatype and value: scalars, DataSet or Template (None is null)."""
    if dtype is SpbType.DataSet and isinstance(value, DataSet):
        metric.datatype = int(dtype)
        encode_dataset(metric.dataset_value, value)
    elif dtype is SpbType.Template and isinstance(value, Template):
        metric.datatype = int(dtype)
        encode_template(metric.template_value, value)
    elif dtype in (SpbType.DataSet, SpbType.Template) and value is not None:
        raise TypeError(f"a {dtype.name} metric needs a {dtype.name} value, not {type(value).__name__}")
    else:
        spb.set_metric_value(metric, value, dtype)


def encode_dataset(msg: Any, ds: DataSet) -> None:
    """Fill a ``Payload.DataSet``; raise DataSetInvalid when the table is not rectangular."""
    check_shape(len(ds.columns), len(ds.columns), len(ds.types), [len(r) for r in ds.rows])
    for t in ds.types:
        if t not in SCALAR_TYPES:
            raise DataSetInvalid(f"DataSet column type {t.name} is not a scalar type")
    msg.num_of_columns = len(ds.columns)
    msg.columns.extend(ds.columns)
    msg.types.extend(int(t) for t in ds.types)
    for row in ds.rows:
        out = msg.rows.add()
        for value, dtype in zip(row, ds.types, strict=True):
            element = out.elements.add()
            if value is not None and not spb.set_scalar(element, value, dtype):
                raise DataSetInvalid(f"{value!r} cannot be stored in a {dtype.name} column")


def encode_template(msg: Any, tpl: Template) -> None:
    """Fill a ``Payload.Template`` (definition or instance)."""
    if tpl.version is not None:
        msg.version = tpl.version
    if tpl.is_definition:
        msg.is_definition = True
    elif tpl.ref:
        msg.template_ref = tpl.ref
    else:
        raise TemplateInvalid("a Template instance needs a template_ref")
    for name, (dtype, value) in tpl.parameters.items():
        param = msg.parameters.add(name=name, type=int(dtype))
        if value is not None:
            spb.set_scalar(param, value, dtype)
    for member in tpl.members:
        metric = msg.metrics.add(name=member.name)
        set_value(metric, member.value, member.dtype)
        if member.properties:
            encode_properties(metric.properties, member.properties)


def encode_properties(msg: Any, props: Mapping[str, tuple[SpbType, Any]]) -> None:
    """Fill a ``Payload.PropertySet`` from ``{key: (type, value)}``; nested sets are such dicts too."""
    for key, (dtype, value) in props.items():
        msg.keys.append(key)
        pv = msg.values.add(type=int(dtype))
        if value is None:
            pv.is_null = True
        elif dtype is SpbType.PropertySet:
            encode_properties(pv.propertyset_value, value)
        elif dtype is SpbType.PropertySetList:
            for item in value:
                encode_properties(pv.propertysets_value.propertyset.add(), item)
        elif not spb.set_scalar(pv, value, dtype):
            pv.is_null = True


# -- decoding ---------------------------------------------------------------------------------


def check_shape(declared: int, columns: int, types: int, row_lengths: list[int]) -> None:
    """Raise DataSetInvalid unless column names, types and every row agree on the column count."""
    if not declared == columns == types:
        raise DataSetInvalid(
            f"DataSet declares {declared} columns but has {columns} column names and {types} types"
        )
    for i, n in enumerate(row_lengths):
        if n != declared:
            raise DataSetInvalid(f"DataSet row {i} has {n} elements, expected {declared}")


def decode_dataset(msg: Any) -> DataSet:
    """A ``Payload.DataSet`` as a DataSet; raise DataSetInvalid when it is malformed."""
    declared = msg.num_of_columns if msg.HasField("num_of_columns") else len(msg.columns)
    check_shape(declared, len(msg.columns), len(msg.types), [len(r.elements) for r in msg.rows])
    types: list[SpbType] = []
    for i, t in enumerate(msg.types):
        if t not in SCALAR_TYPES:
            raise DataSetInvalid(f"DataSet column {msg.columns[i]!r} has non-scalar type {t}")
        types.append(SpbType(t))
    rows = []
    for r, row in enumerate(msg.rows):
        values: list[Scalar] = []
        for element, name, dtype in zip(row.elements, msg.columns, types, strict=True):
            kind = element.WhichOneof("value")
            if kind is None:
                values.append(None)
                continue
            if kind != spb.value_field(dtype):
                raise DataSetInvalid(f"DataSet row {r}, column {name!r}: {kind} in a {dtype.name} column")
            values.append(spb.signed(getattr(element, kind), kind, dtype))
        rows.append(tuple(values))
    return DataSet(tuple(msg.columns), tuple(types), tuple(rows))


def decode_properties(msg: Any) -> dict[str, Any]:
    """A ``Payload.PropertySet`` as a dict (nested sets as dicts, set lists as lists of dicts)."""
    out: dict[str, Any] = {}
    for key, pv in zip(msg.keys, msg.values, strict=False):
        kind = pv.WhichOneof("value")
        if pv.is_null or kind is None:
            out[key] = None
        elif kind == "propertyset_value":
            out[key] = decode_properties(pv.propertyset_value)
        elif kind == "propertysets_value":
            out[key] = [decode_properties(p) for p in pv.propertysets_value.propertyset]
        else:
            out[key] = spb.metric_value(pv)
    return out


def _metric_value(
    metric: Any, dtype: SpbType, definitions: Mapping[str, Template], birth: bool, ref: str | None = None
) -> Any:
    if metric.is_null:
        return None
    kind = metric.WhichOneof("value")
    if dtype is SpbType.DataSet or kind == "dataset_value":
        if kind != "dataset_value":
            raise DataSetInvalid(f"DataSet metric {metric.name!r} carries {kind}")
        return decode_dataset(metric.dataset_value)
    if dtype is SpbType.Template or kind == "template_value":
        if kind != "template_value":
            raise TemplateInvalid(f"Template metric {metric.name!r} carries {kind}")
        return decode_template(metric.template_value, definitions, birth=birth, ref=ref)
    if kind == "bytes_value":
        return bytes(metric.bytes_value)
    return spb.metric_value(metric)


def decode_value(
    metric: Any,
    definitions: Mapping[str, Template],
    *,
    birth: bool = True,
    dtype: int = 0,
    ref: str | None = None,
) -> Any:
    """A Metric's value: scalar, bytes, DataSet or Template (raise DataSetInvalid/TemplateInvalid).

    ``dtype`` is the type from the birth for DATA metrics that leave it out; ``ref`` the
    definition a Template instance was born with, for DATA instances without ``template_ref``.
    """
    code = metric.datatype or dtype
    return _metric_value(
        metric, SpbType(code) if code in _KNOWN else SpbType.Unknown, definitions, birth, ref
    )


def decode_definitions(named: Mapping[str, Any]) -> tuple[dict[str, Template], dict[str, str]]:
    """Decode NBIRTH Template definitions (``name -> Payload.Template``) in dependency order.

    Returns the definitions and, per name that failed, the error message (a definition whose
    nested instance references an unknown or failed definition fails too).
    """
    done: dict[str, Template] = {}
    errors: dict[str, str] = {}
    pending = dict(named)
    while pending:
        progress = False
        for name, msg in list(pending.items()):
            try:
                done[name] = decode_template(msg, done)
            except TemplateInvalid as exc:
                if "unknown template" in exc.message and any(r in pending for r in _refs(msg)):
                    continue  # its dependency may decode in a later pass
                errors[name] = exc.message
            except DataSetInvalid as exc:
                errors[name] = exc.message
            del pending[name]
            progress = True
        if not progress:
            for name, msg in pending.items():
                errors[name] = f"Template definition {name!r}: circular reference via {sorted(_refs(msg))}"
            break
    return done, errors


def _refs(msg: Any) -> set[str]:
    refs: set[str] = set()
    for m in msg.metrics:
        if m.WhichOneof("value") == "template_value":
            if m.template_value.template_ref:
                refs.add(m.template_value.template_ref)
            refs |= _refs(m.template_value)
    return refs


_KNOWN = frozenset(int(t) for t in SpbType)


def _parameters(msg: Any) -> dict[str, tuple[SpbType, Scalar]]:
    out: dict[str, tuple[SpbType, Scalar]] = {}
    for p in msg.parameters:
        if p.type not in SCALAR_TYPES:
            raise TemplateInvalid(f"Template parameter {p.name!r} has non-scalar type {p.type}")
        dtype = SpbType(p.type)
        kind = p.WhichOneof("value")
        out[p.name] = (dtype, None if kind is None else spb.signed(getattr(p, kind), kind, dtype))
    return out


def decode_template(
    msg: Any, definitions: Mapping[str, Template], *, birth: bool = True, ref: str | None = None
) -> Template:
    """A ``Payload.Template`` checked against ``definitions`` (name -> definition from NBIRTH)."""
    params = _parameters(msg)
    version = msg.version if msg.HasField("version") else None
    if msg.is_definition:
        if msg.template_ref:
            raise TemplateInvalid(f"Template definition has a template_ref ({msg.template_ref!r})")
        members = [_member(m, None, definitions, birth=True) for m in msg.metrics]
        return Template(members, None, True, version, params)
    ref = msg.template_ref or ref
    if not ref:
        raise TemplateInvalid("Template instance without template_ref")
    definition = definitions.get(ref)
    if definition is None:
        raise TemplateInvalid(f"Template instance references unknown template {ref!r}")
    members = [_member(m, definition, definitions, birth=birth) for m in msg.metrics]
    if birth:  # a birth carries every member: fill the ones left out from the definition's defaults
        given = {m.name for m in members}
        members += [
            Member(d.name, d.dtype, d.value, dict(d.properties))
            for d in definition.members
            if d.name not in given
        ]
    return Template(members, ref, False, version or definition.version, {**definition.parameters, **params})


def _member(
    metric: Any, definition: Template | None, definitions: Mapping[str, Template], *, birth: bool
) -> Member:
    name = metric.name
    if not name:
        raise TemplateInvalid("Template member without a name")
    dtype = SpbType(metric.datatype) if metric.datatype in _KNOWN else SpbType.Unknown
    if definition is not None:
        known = definition.member(name)
        if known is None:
            raise TemplateInvalid(
                f"member {name!r} is not in template {definition_name(definitions, definition)!r}"
            )
        if dtype is SpbType.Unknown:
            dtype = known.dtype
        elif dtype is not known.dtype:
            raise TemplateInvalid(f"member {name!r} is {dtype.name}, the template says {known.dtype.name}")
    value = _metric_value(metric, dtype, definitions, birth)
    if dtype is SpbType.Template and isinstance(value, Template) and value.is_definition:
        raise TemplateInvalid(f"member {name!r} is a nested definition; it must be an instance")
    return Member(name, dtype, value, decode_properties(metric.properties))


def definition_name(definitions: Mapping[str, Template], definition: Template) -> str:
    """The name a definition is published under (for messages)."""
    return next((k for k, v in definitions.items() if v is definition), "?")
