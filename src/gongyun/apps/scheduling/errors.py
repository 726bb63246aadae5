"""Errors of the scheduling domain (drawn in ``gongyun.errors``' tree)."""

from __future__ import annotations

from gongyun.errors import InvalidInput, ValidationFailed


class InstanceInvalid(ValidationFailed):
    """A scheduling instance breaks a rule (no eligible machine, cycle, bad time, unknown machine)."""

    code = "scheduling_instance_invalid"
    title = "Scheduling instance invalid"


class InstanceFileInvalid(InvalidInput):
    """A benchmark, CSV or JSON file cannot be read as a scheduling instance (with its line number)."""

    code = "scheduling_file_invalid"
    title = "Scheduling file invalid"
