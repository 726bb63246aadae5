"""The asset model as ingest's tag catalog (``gongyun.telemetry.catalog.TagCatalog``)."""

from __future__ import annotations

from gongyun.assets import crud
from gongyun.db import Database
from gongyun.telemetry.catalog import CachedCatalog, TagSpec
from gongyun.telemetry.cleaning import CleaningConfig


class AssetCatalog(CachedCatalog):
    """Looks tags up in the metadata database (cached: see :class:`CachedCatalog`)."""

    def __init__(self, db: Database, ttl_s: float = 300.0, miss_ttl_s: float = 30.0) -> None:
        super().__init__(self._lookup_db, ttl_s, miss_ttl_s)
        self.db = db

    async def _lookup_db(self, tenant: str, ref: str) -> TagSpec | None:
        async with self.db.session() as s:
            found = await crud.find_tag(s, tenant, ref)
        return None if found is None else crud.tag_spec(*found)

    async def cleaning(self, tenant: str, ref: str) -> CleaningConfig | None:
        """The cleaning configuration of a tag (not cached: it is read when cleaning runs)."""
        async with self.db.session() as s:
            found = await crud.find_tag(s, tenant, ref)
        return None if found is None else crud.cleaning_config(found[0])
