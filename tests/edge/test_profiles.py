"""Profiles and gateway configs: valid files load, malformed ones name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gongyun.cli.edge import app
from gongyun.edge.codec import DataType, Order
from gongyun.edge.config import load_config
from gongyun.edge.errors import ProfileInvalid
from gongyun.edge.profiles import Protocol, Table, load_profile
from tests.edge.conftest import PROFILES

HEADER = '[profile]\nname = "p"\nprotocol = "modbus"\n\n'


def test_shipped_profiles_load() -> None:
    pump = load_profile(PROFILES / "pump.toml")
    assert pump.profile.protocol is Protocol.modbus
    volume = pump.tag("total_volume")
    assert (volume.table, volume.type, volume.word_order, volume.scale) == (
        Table.input,
        DataType.int32,
        Order.little,
        0.001,
    )
    assert pump.tag("speed_setpoint").writable and pump.tag("speed_setpoint").max == 1800
    cnc = load_profile(PROFILES / "cnc.toml")
    assert cnc.tag("state").mode == "poll"


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (
            '[[tags]]\nname = "a"\ntable = "input"\naddress = 0\ntype = "float33"\n',
            9,
            "tags[0].type",
            "Input should be",
        ),
        ('[[tags]]\nname = "a"\ntable = "input"\n', 5, "tags[0]", "'address' is required"),
        (
            '[[tags]]\nname = "a"\ntable = "input"\naddress = 0\n\n'
            '[[tags]]\nname = "a"\ntable = "input"\naddress = 2\n',
            11,
            "tags[1].name",
            "duplicate tag name",
        ),
        (
            '[[tags]]\nname = "a"\ntable = "coil"\naddress = 0\ntype = "int16"\n',
            9,
            "tags[0].type",
            "coil tags must be bool",
        ),
        (
            '[[tags]]\nname = "a"\ntable = "input"\naddress = 0\nwritable = true\n',
            9,
            "tags[0].writable",
            "read-only",
        ),
        (
            '[[tags]]\nname = "a"\ntable = "input"\naddress = 0\ncolour = "red"\n',
            9,
            "tags[0].colour",
            "Extra inputs",
        ),
        (
            '[[tags]]\nname = "a"\ntable = "input"\naddress = 70000\n',
            8,
            "tags[0].address",
            "less than or equal",
        ),
        (
            '[[tags]]\nname = "a"\ntable = "holding"\naddress = 0\nmin = 5\nmax = 1\n',
            5,
            "tags[0]",
            "greater than max",
        ),
        ('[[tags]]\nname = "bad name!"\ntable = "input"\naddress = 0\n', 6, "tags[0].name", "match pattern"),
        (
            '[[tags]]\nname = "a"\ntable = "input"\naddress = 0\ntype = "string"\n',
            5,
            "tags[0]",
            "needs length",
        ),
    ],
)
def test_malformed_profile_names_file_line_field(
    tmp_path: Path, body: str, line: int, field: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(HEADER + body)
    with pytest.raises(ProfileInvalid) as info:
        load_profile(path)
    errors = info.value.details["errors"]
    assert info.value.code == "edge_profile_invalid"
    assert any(
        e["file"] == str(path) and e["line"] == line and e["field"] == field and message in e["message"]
        for e in errors
    ), errors


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(HEADER + '[[tags]]\nname = "a\n')
    with pytest.raises(ProfileInvalid) as info:
        load_profile(path)
    assert info.value.details["errors"][0]["line"] == 6
    assert str(path) in str(info.value)


def test_missing_sections_and_unknown_protocol(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[profile]\nname = "p"\nprotocol = "profibus"\n')
    with pytest.raises(ProfileInvalid) as info:
        load_profile(path)
    fields = {e["field"]: e["line"] for e in info.value.details["errors"]}
    assert fields == {"profile.protocol": 3, "tags": None}


def test_unreadable_profile(tmp_path: Path) -> None:
    with pytest.raises(ProfileInvalid, match="cannot read"):
        load_profile(tmp_path / "missing.toml")


def test_edge_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw"\n\n[[devices]]\nname = "cnc"\nprofile = "{PROFILES / "cnc.toml"}"\n\n'
        f'[[devices]]\nname = "pump"\nprofile = "{PROFILES / "pump.toml"}"\nport = 0\n'
    )
    with pytest.raises(ProfileInvalid) as info:
        load_config(path)
    assert info.value.details["errors"][0]["field"] == "devices[1].port"
    assert info.value.details["errors"][0]["line"] == 11
    path.write_text(f'[[devices]]\nname = "cnc"\nprofile = "{PROFILES / "cnc.toml"}"\n')
    with pytest.raises(ProfileInvalid) as info:
        load_config(path)
    assert info.value.details["errors"][0] == {
        "file": str(path),
        "line": 1,
        "field": "devices[0]",
        "message": "an OPC UA device needs url",
    }


def test_edge_config_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "pump.toml").write_text((PROFILES / "pump.toml").read_text())
    path = tmp_path / "edge.toml"
    path.write_text(
        '[gateway]\nbuffer = "data/buf.db"\n[[devices]]\nname = "p"\nprofile = "pump.toml"\nport = 5020\n'
    )
    config, profiles = load_config(path)
    assert config.gateway.buffer == tmp_path / "data/buf.db"
    assert profiles["p"].profile.name == "pump-station"


def test_cli_check_reports_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(HEADER + '[[tags]]\nname = "a"\ntable = "input"\naddress = 0\ntype = "float33"\n')
    result = CliRunner().invoke(app, ["check", str(PROFILES / "pump.toml"), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:9: tags[0].type:" in result.output
    assert "pump.toml: ok" in result.output


def test_cli_status_prints_what_the_gateway_wrote(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('[gateway]\nbuffer = "b.db"\n[uplink]\nkind = "none"\n')
    runner = CliRunner()
    missing = runner.invoke(app, ["status", "--config", str(config)])
    assert missing.exit_code == 1 and "is the gateway running" in missing.output
    (tmp_path / "b.status.json").write_text('{"gateway": "gateway", "buffer": {"depth": 3}}')
    shown = runner.invoke(app, ["status", "--config", str(config)])
    assert shown.exit_code == 0 and '"depth": 3' in shown.output
