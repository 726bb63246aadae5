"""Every simulator tag carries a unit pint understands; the OPC UA server's units agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gongyun.edge.profiles import load_profile
from gongyun.sim import cnc
from gongyun.telemetry.units import UnitError, check_unit, converter

PROFILES = sorted((Path(cnc.__file__).parent / "profiles").glob("*.toml"))
# The documented markers for values without a physical dimension.
COUNT, NO_DIMENSION = "count", "dimensionless"


def test_the_simulator_profiles_are_all_here() -> None:
    assert {p.name for p in PROFILES} == {"cnc.toml", "packaging.toml", "pump.toml"}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_tag_has_a_known_unit(path: Path) -> None:
    profile = load_profile(path)
    missing = [t.name for t in profile.tags if not t.unit]
    assert missing == [], f"{path.name}: tags without a unit: {missing}"
    unknown = []
    for tag in profile.tags:
        try:
            check_unit(tag.unit)
        except UnitError:
            unknown.append((tag.name, tag.unit))
    assert unknown == [], f"{path.name}: units pint does not know: {unknown}"


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_text_and_flags_use_the_dimensionless_marker(path: Path) -> None:
    profile = load_profile(path)
    for tag in profile.tags:
        if tag.type.value in ("string", "bool"):
            assert tag.unit == NO_DIMENSION, f"{path.name}: {tag.name}"
        if tag.unit in (COUNT, NO_DIMENSION):
            assert tag.scale == 1.0 and tag.offset == 0.0, f"{path.name}: {tag.name}"


def test_the_opc_ua_servers_engineering_units_match_the_profile() -> None:
    tags = {t.node: t for t in load_profile(Path(cnc.__file__).parent / "profiles" / "cnc.toml").tags}
    checked = 0
    for name, _vtype, unit, _writable in cnc.NODES:
        tag = tags.get(f"nsu={cnc.NS_URI};s=CNC.{name}")
        if tag is None:
            continue  # a node the profile does not read
        if unit is None:
            assert tag.unit in (COUNT, NO_DIMENSION), tag.name
            continue
        convert = converter(unit[1], tag.unit)  # the EUInformation display name, as the driver reads it
        assert (convert(0.0), convert(1.0)) == pytest.approx((0.0, 1.0)), (tag.name, unit[1], tag.unit)
        checked += 1
    assert checked >= 4
