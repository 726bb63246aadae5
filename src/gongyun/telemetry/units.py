"""Unit normalisation with pint: cached converters between two units."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from gongyun.errors import InvalidInput

_EXPONENT = re.compile(r"(?<=[A-Za-z])([23])\b")


class UnitError(InvalidInput):
    """A unit is unknown or cannot be converted to the other."""

    code = "unit_invalid"
    title = "Invalid unit"


@lru_cache(maxsize=1)
def registry() -> Any:
    """The shared pint registry (built once; it takes a moment)."""
    import pint

    # accept the engineering shorthand "m3/h", "mm2" as "m**3/h", "mm**2"
    return pint.UnitRegistry(preprocessors=[lambda s: _EXPONENT.sub(r"**\1", s)])


@lru_cache(maxsize=1024)
def converter(src: str, dst: str) -> Callable[[float], float]:
    """A function converting values from unit ``src`` to unit ``dst``."""
    if src == dst:
        return lambda v: v
    ureg = registry()
    try:
        a, b = ureg.Unit(src), ureg.Unit(dst)
        zero = float(ureg.Quantity(0.0, a).to(b).magnitude)
        one = float(ureg.Quantity(1.0, a).to(b).magnitude)
    except Exception as exc:  # pint raises several unrelated types for bad units
        raise UnitError(f"cannot convert {src!r} to {dst!r}: {exc}", src=src, dst=dst) from exc
    scale = one - zero
    # every unit pint converts between here is affine (temperatures have an offset)
    return lambda v: v * scale + zero


def convert(value: float, src: str, dst: str) -> float:
    """Convert one value."""
    return converter(src, dst)(value)


def check_unit(unit: str) -> str:
    """Return the unit unchanged when pint knows it; raise UnitError otherwise."""
    try:
        registry().Unit(unit)
    except Exception as exc:  # pint raises several unrelated types for bad units
        raise UnitError(f"unknown unit {unit!r}", unit=unit) from exc
    return unit
