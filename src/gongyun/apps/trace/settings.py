"""Per-tenant settings of the trace app."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """What a tenant can set."""

    id_prefix: str | None = Field(
        default=None,
        description="Secondary prefix to allocate the tenant's prefix under (platform's if unset).",
    )
    register_identifiers: bool = Field(
        default=True, description="Register every item as an identifier record in the tenant's prefix."
    )
    base_url: str = Field(default="", description="Base URL of the console for product page links.")
    resolver_url: str = Field(
        default="https://id.gs1.org",
        description="Base URL of the Digital Link resolver printed in QR labels (the identifier node).",
    )
    gcp_length: int = Field(default=7, ge=6, le=12, description="GS1 company prefix length for EPC URIs.")
