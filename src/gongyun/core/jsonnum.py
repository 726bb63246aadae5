"""Number types that read JSON numbers exactly as JSON Schema describes them.

pydantic's lax mode also takes ``true`` for 1, ``"5"`` for 5 and ``0`` for ``false``; its
strict ``int`` refuses ``5.0``, which JSON Schema counts as an integer. Request models use
these so that what they accept is what their schema says.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def _json_integer(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("expected an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Put after an int's constraints (``Annotated[int, Field(ge=1), JSON_INTEGER]``) so that
# the schema keeps them when the int is optional.
JSON_INTEGER = BeforeValidator(_json_integer)

# An integer: a JSON number without a fractional part (5 or 5.0), never a bool or a string.
JsonInt = Annotated[int, JSON_INTEGER]
