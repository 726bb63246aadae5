"""Parameter types shared by routes, so the OpenAPI document says exactly what is accepted."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, StringConstraints

_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _not_a_number(value: object) -> object:
    # pydantic reads a bare number as a Unix time; the document promises ISO 8601 text only.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z")
    return value


# An ISO 8601 date-time (with an offset, or UTC when none is given).
IsoTime = Annotated[datetime, BeforeValidator(_not_a_number)]

# A tag reference ``device/tag`` as telemetry names it.
TagRefText = Annotated[str, StringConstraints(min_length=3, max_length=300, pattern=r"^[^/]+/.+$")]
