"""Request and response shapes of the asset model (shared by the CRUD layer and the API)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    field_validator,
    model_validator,
)

from gongyun.telemetry.catalog import DataType
from gongyun.telemetry.cleaning import CleaningConfig
from gongyun.telemetry.units import UnitError, check_unit, converter

NAME = r"^[^/\s][^/]{0,99}$"
DEVICE_NAME = r"^[A-Za-z0-9_.:-]{1,100}$"
TAG_NAME = r"^[^\s][^\s]{0,149}$"


class Level(StrEnum):
    """ISA-95 equipment hierarchy levels."""

    enterprise = "enterprise"
    site = "site"
    area = "area"
    line = "line"
    cell = "cell"
    equipment = "equipment"


PARENTS: dict[Level, frozenset[Level]] = {
    Level.enterprise: frozenset(),
    Level.site: frozenset({Level.enterprise}),
    Level.area: frozenset({Level.site}),
    Level.line: frozenset({Level.area}),
    Level.cell: frozenset({Level.area}),
    Level.equipment: frozenset({Level.line, Level.cell, Level.equipment}),
}


class Classification(StrEnum):
    """Industrial data classification (一般 / 重要 / 核心 data)."""

    general = "general"
    important = "important"
    core = "core"


class NodeIn(BaseModel):
    """A new hierarchy node."""

    model_config = ConfigDict(extra="forbid")

    level: Level
    name: str = Field(pattern=NAME)
    parent_id: str | None = Field(default=None, max_length=32)
    description: str = Field(default="", max_length=1000)
    classification: Classification = Classification.general


class NodePatch(BaseModel):
    """Changes to a node."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=NAME)
    description: str | None = Field(default=None, max_length=1000)
    classification: Classification | None = None


class NodeOut(BaseModel):
    """A node as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    parent_id: str | None
    level: str
    name: str
    description: str
    classification: str
    identifier: str
    created_at: datetime


class DeviceIn(BaseModel):
    """A new device (its name is the first half of every tag reference ``device/tag``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DEVICE_NAME)
    protocol: str = Field(default="other", pattern=r"^(modbus|opcua|mqtt|sparkplug|other)$")
    address: str = Field(default="", max_length=255)
    equipment_id: str | None = Field(default=None, max_length=32)
    description: str = Field(default="", max_length=1000)
    classification: Classification = Classification.general


class DevicePatch(BaseModel):
    """Changes to a device; ``equipment_id`` null unbinds it."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    equipment_id: str | None = Field(default=None, max_length=32)
    classification: Classification | None = None


class DeviceOut(BaseModel):
    """A device as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    protocol: str
    address: str
    equipment_id: str | None
    description: str
    classification: str
    identifier: str
    created_at: datetime


def _check_unit(unit: str | None) -> str | None:
    if unit is not None:
        try:
            check_unit(unit)
        except UnitError as exc:
            raise ValueError(exc.message) from exc
    return unit


class TagIn(BaseModel):
    """A new tag of a device."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TAG_NAME)
    data_type: DataType = DataType.float
    unit: str | None = Field(default=None, max_length=32)
    source_unit: str | None = Field(default=None, max_length=32)
    low: StrictFloat | None = None
    high: StrictFloat | None = None
    classification: Classification = Classification.general
    description: str = Field(default="", max_length=1000)
    cleaning: CleaningConfig | None = None

    _unit = field_validator("unit", "source_unit")(_check_unit)

    @model_validator(mode="after")
    def _consistent(self) -> TagIn:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low must not exceed high")
        if self.source_unit and not self.unit:
            raise ValueError("source_unit needs unit (the unit values are converted to)")
        if self.source_unit and self.unit:
            try:
                converter(self.source_unit, self.unit)
            except UnitError as exc:
                raise ValueError(exc.message) from exc
        return self


class TagPatch(BaseModel):
    """Changes to a tag (name and device stay)."""

    model_config = ConfigDict(extra="forbid")

    unit: str | None = Field(default=None, max_length=32)
    low: StrictFloat | None = None
    high: StrictFloat | None = None
    classification: Classification | None = None
    description: str | None = Field(default=None, max_length=1000)
    cleaning: CleaningConfig | None = None

    _unit = field_validator("unit")(_check_unit)


class TagOut(BaseModel):
    """A tag as the API shows it; ``ref`` is the ``device/tag`` name used by telemetry."""

    id: str
    device_id: str
    ref: str
    name: str
    data_type: str
    unit: str | None
    source_unit: str | None
    low: float | None
    high: float | None
    classification: str
    description: str
    cleaning: dict[str, Any] | None
    identifier: str
    created_at: datetime
