"""``IsoTime``: a date-time parameter that accepts ISO 8601 text only, as the API documents."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator

_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def not_a_number(value: object) -> object:
    """Refuse a bare number: pydantic would read it as a Unix time, the document promises ISO 8601."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z")
    return value


# An ISO 8601 date-time (with an offset, or UTC when none is given).
IsoTime = Annotated[datetime, BeforeValidator(not_a_number)]
