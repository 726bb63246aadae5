"""Parameter types shared by routes, so the OpenAPI document says exactly what is accepted."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from gongyun.core.isotime import IsoTime

__all__ = ["IsoTime", "TagRefText"]

# A tag reference ``device/tag`` as telemetry names it.
TagRefText = Annotated[str, StringConstraints(min_length=3, max_length=300, pattern=r"^[^/]+/.+$")]
