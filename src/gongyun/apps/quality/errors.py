"""Errors of the quality app: refused inputs carry a stable code and a reason."""

from __future__ import annotations

from gongyun.errors import ValidationFailed


class SpcInputInvalid(ValidationFailed):
    """An SPC request cannot be computed as asked (bad subgroup size, reversed specs, counts ...)."""

    code = "spc_input_invalid"
    title = "Invalid SPC input"
