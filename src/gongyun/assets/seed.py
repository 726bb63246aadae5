"""Seed a tenant's asset model from device profiles (the virtual factory for ``gongyun demo``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.alarms import repo as alarm_repo
from gongyun.alarms.rules import ThresholdRule
from gongyun.alarms.states import Priority
from gongyun.assets import crud
from gongyun.assets.identifiers import IdentifierMinter
from gongyun.assets.schemas import DeviceIn, Level, NodeIn, TagIn
from gongyun.telemetry.catalog import DataType
from gongyun.telemetry.units import UnitError, check_unit

_TYPES = {
    "bool": DataType.bool,
    "float32": DataType.float,
    "float64": DataType.float,
    "int16": DataType.int,
    "int32": DataType.int,
    "int64": DataType.int,
    "uint16": DataType.int,
    "uint32": DataType.int,
    "uint64": DataType.int,
}
_PROTOCOLS = {"modbus", "opcua", "mqtt", "sparkplug"}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a device goes: area and line/cell names, equipment name, device name, profile file."""

    area: str
    line: str
    line_level: Level
    equipment: str
    device: str
    profile: Path


def factory_layout(profiles: Path) -> list[Placement]:
    """The virtual factory's machines (``gongyun.sim`` profiles) placed in an ISA-95 tree."""
    return [
        Placement(
            "Utilities", "Pump station", Level.line, "Pump P-101", "pump-station", profiles / "pump.toml"
        ),
        Placement("Machining", "CNC cell", Level.cell, "CNC mill M-1", "cnc-cell", profiles / "cnc.toml"),
        Placement(
            "Packaging",
            "Packaging line",
            Level.line,
            "Packer K-1",
            "packaging-line",
            profiles / "packaging.toml",
        ),
    ]


def _tags(profile: dict[str, Any]) -> list[TagIn]:
    out = []
    for t in profile.get("tags", []):
        dtype = _TYPES.get(str(t.get("type", "float32")))
        if dtype is None:
            continue  # strings are not telemetry values
        if dtype is DataType.int and float(t.get("scale", 1)) != 1:
            dtype = DataType.float  # a scaled register arrives as an engineering value
        unit = t.get("unit")
        if unit is not None:
            try:
                check_unit(unit)
            except UnitError:
                unit = None
        out.append(
            TagIn(name=t["name"], data_type=dtype, unit=unit, description=str(t.get("description", "")))
        )
    return out


async def seed(
    session: AsyncSession,
    tenant_id: str,
    layout: list[Placement],
    *,
    minter: IdentifierMinter,
    enterprise: str = "Gongyun Demo",
    site: str = "Virtual factory",
) -> dict[str, str]:
    """Create enterprise > site > areas > lines/cells > equipment with bound devices and their tags.

    Every object's identifier is registered through ``minter``. Returns device name -> device
    id. Also adds a high-temperature alarm when a ``bearing_temp`` tag exists. Run it once on
    an empty tenant (names that exist raise Conflict).
    """
    ent = await crud.create_node(
        session, tenant_id, NodeIn(level=Level.enterprise, name=enterprise), minter=minter
    )
    st = await crud.create_node(
        session, tenant_id, NodeIn(level=Level.site, name=site, parent_id=ent.id), minter=minter
    )
    areas: dict[str, str] = {}
    devices: dict[str, str] = {}
    for p in layout:
        if p.area not in areas:
            area = await crud.create_node(
                session, tenant_id, NodeIn(level=Level.area, name=p.area, parent_id=st.id), minter=minter
            )
            areas[p.area] = area.id
        line = await crud.create_node(
            session,
            tenant_id,
            NodeIn(level=p.line_level, name=p.line, parent_id=areas[p.area]),
            minter=minter,
        )
        eq = await crud.create_node(
            session,
            tenant_id,
            NodeIn(level=Level.equipment, name=p.equipment, parent_id=line.id),
            minter=minter,
        )
        profile = tomllib.loads(p.profile.read_text())
        proto = str(profile.get("profile", {}).get("protocol", "other"))
        dev = await crud.create_device(
            session,
            tenant_id,
            DeviceIn(name=p.device, protocol=proto if proto in _PROTOCOLS else "other", equipment_id=eq.id),
            minter=minter,
        )
        devices[p.device] = dev.id
        for tag in _tags(profile):
            await crud.create_tag(session, tenant_id, dev.id, tag, minter=minter)
            if tag.name == "bearing_temp":
                await alarm_repo.create_rule(
                    session,
                    tenant_id,
                    ThresholdRule(
                        name=f"{p.equipment} bearing hot",
                        tag=f"{p.device}/bearing_temp",
                        limit=80,
                        deadband=5,
                        priority=Priority.high,
                        on_delay_s=2,
                        message="Bearing temperature above 80 degC",
                    ),
                )
    return devices
