"""Errors of the trace app: each refusal carries a stable code; lists of problems in ``errors``."""

from __future__ import annotations

from gongyun.errors import NotFound, ValidationFailed


class TraceTemplateInvalid(ValidationFailed):
    """An identifier (label) template is malformed, e.g. a GTIN with a wrong check digit."""

    code = "trace_template_invalid"
    title = "Invalid identifier template"


class GenealogyCycle(ValidationFailed):
    """A genealogy link would make an item its own ancestor."""

    code = "trace_genealogy_cycle"
    title = "Genealogy cycle"


class EpcisDocumentInvalid(ValidationFailed):
    """An EPCIS document breaks the schema or names unknown identifiers (every problem listed)."""

    code = "trace_epcis_invalid"
    title = "Invalid EPCIS document"


class TraceItemNotFound(NotFound):
    """No item with this id or key in the tenant."""

    code = "trace_item_not_found"
    title = "Trace item not found"


class UnknownEnterprise(NotFound):
    """A grant or a shipment names an enterprise (partner) that is not registered."""

    code = "trace_enterprise_unknown"
    title = "Unknown enterprise"
