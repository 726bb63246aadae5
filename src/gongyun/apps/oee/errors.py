"""Errors of the OEE app: refused inputs carry a stable code and a reason."""

from __future__ import annotations

from gongyun.errors import ValidationFailed


class OeeInputInvalid(ValidationFailed):
    """An OEE request cannot be computed as asked (undefined states, overlapping shifts ...)."""

    code = "oee_input_invalid"
    title = "Invalid OEE input"
