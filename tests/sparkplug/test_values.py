"""Sparkplug B DataSet, Template and PropertySet: encoding, decoding, validation, and the real protocol."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from gongyun.sim.packaging import PackagingServer
from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.decode import Metric
from gongyun.sparkplug.errors import DataSetInvalid, TemplateInvalid
from gongyun.sparkplug.host import SparkplugHost
from gongyun.sparkplug.values import (
    DataSet,
    Member,
    Template,
    decode_dataset,
    decode_definitions,
    decode_properties,
    decode_template,
    encode_dataset,
    encode_properties,
    encode_template,
)
from tests.edge.conftest import wait_for
from tests.services import require_service

T = spb.SpbType
MOTOR = Template(
    [Member("Speed", T.Double, 0.0), Member("Running", T.Boolean, False), Member("Alarms", T.Int16, 0)],
    is_definition=True,
    version="2",
    parameters={"Rated": (T.Float, 1.5)},
)


def _wire_template(tpl: Template) -> Template:
    msg = spb.Payload().metrics.add().template_value
    encode_template(msg, tpl)
    out = spb.Payload.FromString(_metric_bytes(msg)).metrics[0].template_value
    return decode_template(out, {"Motor": MOTOR})


def _metric_bytes(template_msg: object) -> bytes:
    payload = spb.Payload()
    payload.metrics.add(name="x", datatype=int(T.Template)).template_value.CopyFrom(template_msg)
    return payload.SerializeToString()  # type: ignore[no-any-return]


def test_dataset_round_trip_keeps_types_signs_and_nulls() -> None:
    ds = DataSet(
        ("Pack", "Weight", "Good", "Note", "Delta"),
        (T.Int64, T.Double, T.Boolean, T.String, T.Int8),
        ((1, 501.25, True, "ok", -3), (2, 489.0, False, None, 127)),
    )
    payload = spb.Payload()
    encode_dataset(payload.metrics.add(name="d").dataset_value, ds)
    decoded = decode_dataset(spb.parse(payload.SerializeToString()).metrics[0].dataset_value)
    assert decoded == ds
    assert decoded.as_dict()["types"] == ["Int64", "Double", "Boolean", "String", "Int8"]


def test_malformed_datasets_are_rejected_with_the_reason() -> None:
    payload = spb.Payload()
    msg = payload.metrics.add(name="d").dataset_value
    encode_dataset(msg, DataSet(("A", "B"), (T.Int32, T.Int32), ((1, 2),)))
    msg.rows.add().elements.add().int_value = 7  # a row with one element in a two-column table
    with pytest.raises(DataSetInvalid, match="row 1 has 1 elements, expected 2"):
        decode_dataset(msg)
    msg.num_of_columns = 3
    with pytest.raises(DataSetInvalid, match="declares 3 columns but has 2 column names and 2 types"):
        decode_dataset(msg)
    wrong = spb.Payload().metrics.add().dataset_value
    encode_dataset(wrong, DataSet(("A",), (T.Int32,), ((1,),)))
    wrong.rows[0].elements[0].string_value = "one"
    with pytest.raises(DataSetInvalid, match="string_value in a Int32 column"):
        decode_dataset(wrong)
    with pytest.raises(DataSetInvalid):
        encode_dataset(spb.Payload().metrics.add().dataset_value, DataSet(("A",), (T.Int32,), ((1, 2),)))


def test_template_definition_and_instance_round_trip() -> None:
    definition = _wire_template(MOTOR)
    assert definition.is_definition and definition.version == "2"
    assert definition.parameters == {"Rated": (T.Float, 1.5)}
    instance = _wire_template(
        Template([Member("Speed", T.Double, 1450.5), Member("Alarms", T.Int16, -2)], ref="Motor")
    )
    assert instance.ref == "Motor" and instance.parameters["Rated"] == (T.Float, 1.5)
    # a birth instance is completed from the definition's defaults
    assert {m.name: m.value for m in instance.members} == {"Speed": 1450.5, "Alarms": -2, "Running": False}
    assert [p for p, _ in instance.flatten("M1")] == ["M1/Speed", "M1/Alarms", "M1/Running"]


def test_nested_definitions_decode_in_dependency_order_and_bad_ones_are_named() -> None:
    line = Template([Member("Drive", T.Template, Template([], ref="Motor"))], is_definition=True)
    loop = Template([Member("Self", T.Template, Template([], ref="Loop"))], is_definition=True)
    named = {}
    for name, tpl in (("Line", line), ("Motor", MOTOR), ("Loop", loop)):
        msg = spb.Payload().metrics.add().template_value
        encode_template(msg, tpl)
        named[name] = msg
    defs, errors = decode_definitions(named)
    assert set(defs) == {"Line", "Motor"}
    assert "circular" in errors["Loop"]
    drive = defs["Line"].members[0].value
    assert isinstance(drive, Template) and drive.member("Speed") is not None


def test_malformed_templates_are_rejected_with_the_reason() -> None:
    with pytest.raises(TemplateInvalid, match="unknown template 'Pump'"):
        _wire_template(Template([Member("Speed", T.Double, 1.0)], ref="Pump"))
    with pytest.raises(TemplateInvalid, match="member 'Torque' is not in template 'Motor'"):
        _wire_template(Template([Member("Torque", T.Double, 1.0)], ref="Motor"))
    with pytest.raises(TemplateInvalid, match="member 'Speed' is String"):
        _wire_template(Template([Member("Speed", T.String, "fast")], ref="Motor"))
    with pytest.raises(TemplateInvalid, match="needs a template_ref"):
        _wire_template(Template([Member("Speed", T.Double, 1.0)]))


def test_property_sets_nest() -> None:
    msg = spb.Payload().metrics.add().properties
    encode_properties(
        msg,
        {
            "Quality": (T.Int32, 192),
            "engUnit": (T.String, "g"),
            "limits": (T.PropertySet, {"lo": (T.Double, 480.0), "hi": (T.Double, 520.0)}),
            "history": (T.PropertySetList, [{"n": (T.Int64, 1)}, {"n": (T.Int64, 2)}]),
            "gone": (T.String, None),
        },
    )
    assert decode_properties(msg) == {
        "Quality": 192,
        "engUnit": "g",
        "limits": {"lo": 480.0, "hi": 520.0},
        "history": [{"n": 1}, {"n": 2}],
        "gone": None,
    }


@pytest.mark.mqtt
async def test_dataset_and_template_through_mosquitto_and_malformed_ones_rejected() -> None:
    require_service("mqtt")
    group = f"t{uuid.uuid4().hex[:10]}"
    got: list[tuple[str, Metric]] = []
    errors: list[tuple[str, str]] = []
    host = SparkplugHost(
        ("127.0.0.1", 1883),
        group,
        on_data=lambda key, device, metrics, kind: got.extend((kind, m) for m in metrics.rows()),
        on_error=lambda key, kind, message: errors.append((kind, message)),
    )
    task = asyncio.create_task(host.run(0.2))
    await asyncio.wait_for(host.connected.wait(), 10)
    sim = PackagingServer(group=group, interval=0.1, time_scale=20)
    await sim.start()
    try:
        await wait_for(lambda: any(isinstance(m.value, DataSet) and m.value.rows for _, m in got))
        born = {m.name: m.value for kind, m in got if kind == "DBIRTH"}
        assert born["Recipe/TargetWeight"] == 500.0 and born["Recipe/Product"] == "water 500 g"
        state = host.nodes[f"{group}/PackLine1"]
        assert state.births.templates["Recipe"].parameters == {"Line": (T.String, "PackLine1")}
        weighings = next(m.value for _, m in reversed(got) if isinstance(m.value, DataSet))
        assert isinstance(weighings, DataSet) and weighings.columns == ("Pack", "Weight", "Good")
        assert all(isinstance(r[0], int) and isinstance(r[1], float) for r in weighings.rows)
        assert not errors
        for what, reason in (
            ("dataset", "declares 1 columns"),
            ("template", "unknown template 'NoSuchRecipe'"),
        ):
            before = len(got)
            await sim.send_malformed(what)
            await wait_for(lambda what=what: host.errors.get(what, 0) == 1)
            assert reason in errors[-1][1] and "DDATA" in errors[-1][1]
            # the valid metric of the same payload was kept
            await wait_for(lambda before=before: any(m.name == "Count" for _, m in got[before:]))
        assert host.rebirths_requested == 0
    finally:
        await sim.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
