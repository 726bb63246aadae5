"""Errors of the maintenance app (drawn in the tree of ``gongyun.errors``)."""

from __future__ import annotations

from gongyun.errors import Conflict, InvalidInput, NotFound


class DataInvalid(InvalidInput):
    """A training or scoring file cannot be used: the message names the line and column, or the unit."""

    code = "maintenance_data_invalid"
    title = "Maintenance data invalid"


class ModelIncompatible(InvalidInput):
    """A model cannot score this data: it was trained on other sensors (named in the message)."""

    code = "maintenance_model_incompatible"
    title = "Model incompatible with the data"


class BaselineTooShort(InvalidInput):
    """A baseline window has fewer points than a detector needs (the minimum is in the message)."""

    code = "maintenance_baseline_too_short"
    title = "Baseline window too short"


class ModelNotFound(NotFound):
    """No such model (directory, registry version, or no active model)."""

    code = "maintenance_model_not_found"
    title = "Model not found"


class WorkOrderTransition(Conflict):
    """A work order cannot move from its state to the one asked for."""

    code = "maintenance_order_transition"
    title = "Work order transition not allowed"
