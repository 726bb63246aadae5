"""Typed request parameters shared by apps' routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from gongyun.core.isotime import IsoTime

__all__ = ["ROW_ID_MAX", "IsoTime", "RowId"]

# The apps' tables number their rows with BIGINT (INTEGER on SQLite): a path id outside that range
# names nothing, and handed to the driver it would overflow (a 500). Declaring the range refuses
# it with 422 before the route runs, and documents it in the OpenAPI schema.
ROW_ID_MAX = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="a row number, 1 to 2^63-1")]
