"""Per-tenant settings of the trace app."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EdgeLine(BaseModel):
    """A machine whose tags say which batch it makes and which material lots it runs.

    Each tag's value is a sequence number of a template (``template`` makes the identifier, e.g.
    ``/01/{gtin}/10/PK{seq}``). When the batch tag changes, the batch it held is finished: every
    lot a lot tag named during the batch's time window is linked into it (kind ``consume``) with
    the machine and the window."""

    machine: str = Field(min_length=1, description="The device (its tags' ``device/`` part).")
    batch_tag: str = Field(pattern=r"^[^/]+/[^/]+$", description="``device/tag``: the batch number.")
    batch_template: str = Field(min_length=1, description="Template of the batches' identifiers.")
    lot_tags: dict[str, str] = Field(
        default_factory=dict, description="``device/tag`` of a loaded lot's number → its template."
    )


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
    edge_lines: list[EdgeLine] = Field(
        default_factory=list,
        description="Machines whose batch and lot tags make genealogy links (captured from the edge).",
    )
