"""The asset model: the ISA-95 hierarchy, devices bound to equipment, and their tags."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal

from gongyun_sdk._ops import M, Op, Resource, body, call, call_no_content, operation, query
from gongyun_sdk.types import Asset, Device, Tag

Level = Literal["enterprise", "site", "area", "line", "cell", "equipment"]
Protocol = Literal["modbus", "opcua", "mqtt", "sparkplug", "other"]
Classification = Literal["general", "important", "core"]


class Assets(Resource[M]):
    """Hierarchy nodes: enterprise → site → area → line | cell → equipment."""

    @operation
    def tree(self) -> Op[list[dict[str, Any]]]:
        """The whole hierarchy, children nested, devices under their equipment."""
        return call("GET", "assets/tree")

    @operation
    def list(self) -> Op[list[Asset]]:
        """Every node of the tenant."""
        return call("GET", "assets")

    @operation
    def create(
        self,
        level: Level,
        name: str,
        parent_id: str | None = None,
        description: str | None = None,
        classification: Classification | None = None,
    ) -> Op[Asset]:
        """Create a node under its ISA-95 parent (an enterprise has none)."""
        doc = body(
            level=level,
            name=name,
            parent_id=parent_id,
            description=description,
            classification=classification,
        )
        return call("POST", "assets", json=doc)

    @operation
    def get(self, asset_id: str) -> Op[Asset]:
        """One node."""
        return call("GET", f"assets/{asset_id}")

    @operation
    def update(
        self,
        asset_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        classification: Classification | None = None,
    ) -> Op[Asset]:
        """Rename a node, change its description or its data classification."""
        doc = body(name=name, description=description, classification=classification)
        return call("PATCH", f"assets/{asset_id}", json=doc)

    @operation
    def delete(self, asset_id: str) -> Op[None]:
        """Delete a node without children (its devices become unbound)."""
        return call_no_content("DELETE", f"assets/{asset_id}")


class Devices(Resource[M]):
    """Devices; a device's name is the first half of every tag reference ``device/tag``."""

    @operation
    def list(self, equipment_id: str | None = None) -> Op[list[Device]]:
        """The tenant's devices (of one equipment node when given)."""
        return call("GET", "assets/devices", params=query(equipment_id=equipment_id))

    @operation
    def create(
        self,
        name: str,
        protocol: Protocol | None = None,
        address: str | None = None,
        equipment_id: str | None = None,
        description: str | None = None,
        classification: Classification | None = None,
    ) -> Op[Device]:
        """Create a device, optionally bound to an equipment node."""
        doc = body(
            name=name,
            protocol=protocol,
            address=address,
            equipment_id=equipment_id,
            description=description,
            classification=classification,
        )
        return call("POST", "assets/devices", json=doc)

    @operation
    def get(self, device_id: str) -> Op[Device]:
        """One device."""
        return call("GET", f"assets/devices/{device_id}")

    @operation
    def update(
        self,
        device_id: str,
        *,
        address: str | None = None,
        description: str | None = None,
        equipment_id: str | None = None,
        classification: Classification | None = None,
    ) -> Op[Device]:
        """Change a device; ``equipment_id`` binds it to an equipment node."""
        doc = body(
            address=address, description=description, equipment_id=equipment_id, classification=classification
        )
        return call("PATCH", f"assets/devices/{device_id}", json=doc)

    @operation
    def unbind(self, device_id: str) -> Op[Device]:
        """Unbind a device from its equipment node."""
        return call("PATCH", f"assets/devices/{device_id}", json=body(nulls=["equipment_id"]))

    @operation
    def delete(self, device_id: str) -> Op[None]:
        """Delete a device and its tags."""
        return call_no_content("DELETE", f"assets/devices/{device_id}")

    @operation
    def status(self) -> Op[builtins.list[dict[str, Any]]]:
        """Connection state of the tenant's devices, from every gateway of this server process."""
        return call("GET", "devices/status")

    @operation
    def command(
        self, device: str, tag: str, value: float | bool | str, reason: str | None = None
    ) -> Op[dict[str, Any]]:
        """Write a value to a device tag through its gateway (checked, read back, audited)."""
        return call("POST", f"devices/{device}/commands", json=body(tag=tag, value=value, reason=reason))


class Tags(Resource[M]):
    """Tags of devices."""

    @operation
    def list(self, device_id: str | None = None) -> Op[list[Tag]]:
        """The tenant's tags (of one device when given)."""
        return call("GET", "assets/tags", params=query(device_id=device_id))

    @operation
    def create(
        self,
        device_id: str,
        name: str,
        *,
        data_type: Literal["float", "int", "bool"] | None = None,
        unit: str | None = None,
        source_unit: str | None = None,
        low: float | None = None,
        high: float | None = None,
        classification: Classification | None = None,
        description: str | None = None,
        cleaning: dict[str, Any] | None = None,
    ) -> Op[Tag]:
        """Create a tag of a device (``unit``: a pint unit; ``source_unit``: converted from)."""
        doc = body(
            name=name,
            data_type=data_type,
            unit=unit,
            source_unit=source_unit,
            low=low,
            high=high,
            classification=classification,
            description=description,
            cleaning=cleaning,
        )
        return call("POST", f"assets/devices/{device_id}/tags", json=doc)

    @operation
    def get(self, tag_id: str) -> Op[Tag]:
        """One tag."""
        return call("GET", f"assets/tags/{tag_id}")

    @operation
    def update(
        self,
        tag_id: str,
        *,
        unit: str | None = None,
        low: float | None = None,
        high: float | None = None,
        classification: Classification | None = None,
        description: str | None = None,
        cleaning: dict[str, Any] | None = None,
        clear: Sequence[Literal["unit", "low", "high", "cleaning"]] = (),
    ) -> Op[Tag]:
        """Change a tag; the fields named in ``clear`` are removed (set to null)."""
        doc = body(
            clear,
            unit=unit,
            low=low,
            high=high,
            classification=classification,
            description=description,
            cleaning=cleaning,
        )
        return call("PATCH", f"assets/tags/{tag_id}", json=doc)

    @operation
    def delete(self, tag_id: str) -> Op[None]:
        """Delete a tag (stored telemetry stays until retention removes it)."""
        return call_no_content("DELETE", f"assets/tags/{tag_id}")
