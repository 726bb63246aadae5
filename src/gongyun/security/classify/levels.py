"""Classification levels, inheritance down the asset tree, and which roles are cleared for what."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from gongyun.errors import InvalidInput
from gongyun.security.rbac import Role


class Level(IntEnum):
    """The three levels of industrial data (GB/T 43697: general, important, core)."""

    general = 1
    important = 2
    core = 3

    @classmethod
    def parse(cls, value: str | int | Level) -> Level:
        """A level from its name (``general``...) or number (1-3)."""
        if isinstance(value, Level):
            return value
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return cls(int(value))
        try:
            return cls[str(value)]
        except KeyError:
            raise InvalidInput(
                f"{value!r} is not a classification level (general, important, core)"
            ) from None


def effective(own: str | Level, ancestors: Iterable[str | Level]) -> Level:
    """An object's level: its own, raised to the highest of its ancestors' (inherited unless raised)."""
    return max([Level.parse(own), *(Level.parse(a) for a in ancestors)])


# The highest level each role may read in clear; above it values are masked.
CLEARANCE: dict[Role, Level] = {
    Role.platform_admin: Level.core,
    Role.tenant_admin: Level.core,
    Role.engineer: Level.core,
    Role.operator: Level.important,
    Role.viewer: Level.general,
    Role.auditor: Level.general,
}


def cleared(role: Role, level: Level) -> bool:
    """Whether ``role`` may read data of ``level`` in clear."""
    return CLEARANCE.get(role, Level.general) >= level


def needs_approval(level: Level) -> bool:
    """Whether exporting data of ``level`` needs a second person's approval (four-eyes)."""
    return level >= Level.important


# Default retention of raw values per level (days): core data is kept longest.
RETENTION_DAYS: dict[Level, int] = {Level.general: 365, Level.important: 3 * 365, Level.core: 10 * 365}
