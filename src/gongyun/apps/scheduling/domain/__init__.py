"""Scheduling domain: instances, parsers, validator, dispatching rules, CP-SAT models and search.

Nothing here knows about FastAPI or the database. ``ortools`` is imported inside the functions
that solve, so importing this package stays cheap.
"""

from gongyun.apps.scheduling.domain.model import (
    Assignment,
    Instance,
    Machine,
    Objective,
    Operation,
    Order,
    Schedule,
    Setup,
)
from gongyun.apps.scheduling.errors import InstanceFileInvalid, InstanceInvalid

__all__ = [
    "Assignment",
    "Instance",
    "InstanceFileInvalid",
    "InstanceInvalid",
    "Machine",
    "Objective",
    "Operation",
    "Order",
    "Schedule",
    "Setup",
]
