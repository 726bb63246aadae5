"""What an identifier record says about a platform object (asset, device or tag); no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ObjectKind = Literal["asset", "device", "tag"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object as its identifier record describes it."""

    tenant_id: str
    kind: ObjectKind
    object_id: str
    name: str
    classification: str  # general, important or core
    parent: str | None = None  # the parent's identifier (asset's parent, device's equipment, tag's device)
