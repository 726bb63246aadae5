"""Device profiles: declarative TOML files mapping registers, node ids and topics to tags.

A profile names a protocol and lists ``[[tags]]``; each tag has a name, unit, data type,
scale/offset, deadband (0: every read is a sample; > 0: report by exception), poll interval,
write permission and limits, plus the protocol's address
(Modbus ``table``/``address``/byte and word order, OPC UA ``node``, MQTT ``topic``/``path``,
Sparkplug ``metric``). Loading validates everything and reports file, line and field.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gongyun.edge import tomlloc
from gongyun.edge.codec import DataType, Order, register_count


class Protocol(StrEnum):
    """Device protocols the gateway speaks."""

    modbus = "modbus"
    opcua = "opcua"
    mqtt = "mqtt"
    sparkplug = "sparkplug"


class Table(StrEnum):
    """Modbus data tables."""

    holding = "holding"
    input = "input"
    coil = "coil"
    discrete = "discrete"


class Strict(BaseModel):
    """Base model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Tag(Strict):
    """One tag of a device profile."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    unit: str = ""  # a pint unit; "count" for counted things, "dimensionless" for states and text
    description: str = ""
    type: DataType = DataType.float32
    scale: float = 1.0
    offset: float = 0.0
    deadband: float = Field(default=0.0, ge=0)
    poll_interval: float | None = Field(default=None, gt=0)
    writable: bool = False
    min: float | None = None
    max: float | None = None
    # modbus
    table: Table | None = None
    address: int | None = Field(default=None, ge=0, le=65535)
    byte_order: Order = Order.big
    word_order: Order = Order.big
    length: int = Field(default=0, ge=0, le=246)
    bit: int | None = Field(default=None, ge=0, le=15)
    # opcua
    node: str | None = None
    mode: str = Field(default="subscribe", pattern="^(subscribe|poll)$")
    # mqtt json
    topic: str | None = None
    path: str = "value"
    ts_path: str | None = None
    # sparkplug
    metric: str | None = None
    device: str | None = None

    @model_validator(mode="after")
    def _limits(self) -> Tag:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.type is DataType.string and self.table is not None and self.length == 0:
            raise ValueError("a string tag needs length (bytes)")
        return self

    @property
    def registers(self) -> int:
        """Registers the tag occupies (Modbus)."""
        if self.table in (Table.coil, Table.discrete):
            return 1
        return register_count(self.type, self.length)


class ProfileHeader(Strict):
    """The ``[profile]`` table."""

    name: str = Field(min_length=1, max_length=128)
    protocol: Protocol
    description: str = ""
    vendor: str = ""
    model: str = ""
    poll_interval: float = Field(default=1.0, gt=0)
    max_block: int = Field(default=120, ge=1, le=125)
    max_gap: int = Field(default=8, ge=0, le=100)


class Profile(Strict):
    """A validated device profile."""

    profile: ProfileHeader
    tags: list[Tag] = Field(min_length=1)

    def tag(self, name: str) -> Tag:
        """The tag called ``name`` (KeyError when absent)."""
        for tag in self.tags:
            if tag.name == name:
                return tag
        raise KeyError(name)


_REQUIRED = {
    Protocol.modbus: ("table", "address"),
    Protocol.opcua: ("node",),
    Protocol.mqtt: ("topic",),
    Protocol.sparkplug: ("metric",),
}


def semantic_problems(profile: Profile) -> list[tuple[tomlloc.Loc, str]]:
    """Cross-field checks pydantic cannot express per field."""
    problems: list[tuple[tomlloc.Loc, str]] = []
    seen: set[str] = set()
    protocol = profile.profile.protocol
    for i, tag in enumerate(profile.tags):
        if tag.name in seen:
            problems.append((("tags", i, "name"), f"duplicate tag name {tag.name!r}"))
        seen.add(tag.name)
        for fname in _REQUIRED[protocol]:
            if getattr(tag, fname) is None:
                problems.append((("tags", i), f"field {fname!r} is required for protocol {protocol}"))
        if protocol is Protocol.modbus and tag.table is not None and tag.address is not None:
            if tag.table in (Table.coil, Table.discrete) and tag.type is not DataType.bool:
                problems.append((("tags", i, "type"), f"{tag.table} tags must be bool"))
            if tag.writable and tag.table in (Table.input, Table.discrete):
                problems.append((("tags", i, "writable"), f"{tag.table} tags are read-only"))
            if tag.address + tag.registers > 65536:
                problems.append((("tags", i, "address"), "tag runs past address 65535"))
    return problems


def validation_problems(exc: ValidationError) -> list[tuple[tomlloc.Loc, str]]:
    """Turn pydantic errors into (location, message) pairs."""
    return [(tuple(err["loc"]), err["msg"]) for err in exc.errors()]


def parse_profile(data: dict[str, Any], path: Path, lines: dict[tomlloc.Loc, int]) -> Profile:
    """Validate parsed TOML as a profile; raise ProfileInvalid naming file, line and field."""
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise tomlloc.invalid(path, lines, validation_problems(exc)) from None
    problems = semantic_problems(profile)
    if problems:
        raise tomlloc.invalid(path, lines, problems)
    return profile


def load_profile(path: str | Path) -> Profile:
    """Load and validate a device profile file."""
    file = Path(path)
    data, lines = tomlloc.load(file)
    return parse_profile(data, file, lines)
