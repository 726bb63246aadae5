"""Per-tenant settings of the maintenance app."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """When the app raises an alarm and opens a work order."""

    health_alarm_below: float = Field(
        default=40.0, ge=0, le=100, description="Alarm when health falls below."
    )
    anomaly_persist_points: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Open a work order after this many anomalous points in a row.",
    )
    rul_lead_time: float = Field(
        default=300.0, ge=0, description="Open a work order when RUL falls under this (model units)."
    )
