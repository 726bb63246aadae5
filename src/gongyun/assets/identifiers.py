"""Identifiers for assets, devices and tags.

Every object gets a resolvable identifier (``prefix/suffix``). ``IdentifierMinter`` is the
small interface the asset model needs; ``LocalMinter`` is the local implementation until
``gongyun.idres`` registers the handles itself (it then implements ``mint`` and replaces it).
"""

from __future__ import annotations

from typing import Protocol

DEFAULT_PREFIX = "88.100.1"


class IdentifierMinter(Protocol):
    """Mints the identifier of a new object."""

    async def mint(self, tenant_id: str, kind: str, object_id: str) -> str:
        """The identifier for object ``object_id`` of ``kind`` (asset, device or tag)."""


class LocalMinter:
    """Builds ``<prefix>/gy.<kind>.<object id>`` without registering it anywhere."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    async def mint(self, tenant_id: str, kind: str, object_id: str) -> str:
        """A deterministic identifier under the configured prefix."""
        return f"{self.prefix}/gy.{kind}.{object_id}"
