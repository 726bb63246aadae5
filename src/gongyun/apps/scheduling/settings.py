"""Per-tenant settings of the scheduling app (a tenant administrator edits them on the Apps page)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Solver settings and live rescheduling."""

    time_limit_s: float = Field(default=10.0, gt=0, le=300, title="Time limit of a solve (s)")
    workers: int = Field(default=2, ge=1, le=16, title="CP-SAT workers")
    objective: Literal["makespan", "tardiness", "weighted"] = Field(default="makespan", title="Objective")
    repair_time_limit_s: float = Field(default=5.0, gt=0, le=60, title="Time limit of a repair (s)")
    repair_minutes: int = Field(default=60, ge=1, le=10_080, title="Expected repair time of a machine (min)")
    auto_repair: bool = Field(default=True, title="Propose a repair when a watched machine goes down")
    late_after_minutes: int = Field(
        default=0,
        ge=0,
        le=1440,
        title="Propose a repair when an operation is not reported finished this long after its "
        "planned end (min; 0: off)",
    )
