"""Identifiers of the tenant: records, batch registration, prefix filings, metadata templates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gongyun_sdk._ops import M, Op, Pages, Resource, body, call, call_no_content, operation, paginated, query
from gongyun_sdk.types import IdentifierRecord, Registered


def _next_page(op: Op[Any], page: dict[str, Any]) -> Op[Any] | None:
    """The following page while handles remain."""
    seen = (page["page"] + 1) * page["pageSize"]
    if not page["handles"] or seen >= page["total"]:
        return None
    rest = [(k, v) for k, v in op.params or [] if k != "page"]
    return call("GET", op.path, params=[*rest, ("page", str(page["page"] + 1))])


def _handles(page: dict[str, Any]) -> list[str]:
    return list(page["handles"])


class Identifiers(Resource[M]):
    """Handle-style identifiers (``prefix/suffix``) the tenant registered."""

    @paginated
    def handles(self, prefix: str, *, page_size: int = 1000) -> Pages[str]:
        """Every identifier under ``prefix``, in order (fetched in pages)."""
        first = call("GET", "identifiers/records", params=query(prefix=prefix, page=0, page_size=page_size))
        return Pages(first, _handles, _next_page)

    @operation
    def get(self, handle: str) -> Op[IdentifierRecord]:
        """An identifier's record with every value (private ones included: it is the tenant's own)."""
        return call("GET", f"identifiers/records/{handle}")

    @operation
    def put(
        self, handle: str, values: Sequence[Mapping[str, Any]], *, overwrite: bool = False
    ) -> Op[Registered]:
        """Register an identifier with Handle JSON values (``overwrite`` replaces an existing one)."""
        return call(
            "PUT",
            f"identifiers/records/{handle}",
            json={"values": [dict(v) for v in values], "overwrite": overwrite},
        )

    @operation
    def delete(self, handle: str) -> Op[None]:
        """Delete an identifier."""
        return call_no_content("DELETE", f"identifiers/records/{handle}")

    @operation
    def register_batch(
        self, records: Sequence[Mapping[str, Any]], *, overwrite: bool = False
    ) -> Op[list[dict[str, Any]]]:
        """Register up to 2,000 ``{"handle", "values"}`` records; one result per item."""
        doc = {"records": [dict(r) for r in records], "overwrite": overwrite}
        return Op("POST", "identifiers/batch", json=doc, decode=lambda r: list(r.json()["results"]))

    @operation
    def prefixes(self, status: str | None = None) -> Op[list[dict[str, Any]]]:
        """The tenant's prefixes and their filing status."""
        return call("GET", "identifiers/prefixes", params=query(status=status))

    @operation
    def file_prefix(
        self, prefix: str, kind: str | None = None, org_name: str | None = None, contact: str | None = None
    ) -> Op[dict[str, Any]]:
        """Submit a prefix filing."""
        doc = body(prefix=prefix, kind=kind, org_name=org_name, contact=contact)
        return call("POST", "identifiers/prefixes", json=doc)

    @operation
    def set_prefix_status(self, prefix: str, status: str, note: str | None = None) -> Op[dict[str, Any]]:
        """Move a filing on: submitted → verified → active (or rejected, suspended)."""
        return call("POST", f"identifiers/prefixes/{prefix}/status", json=body(status=status, note=note))

    @operation
    def templates(self) -> Op[list[dict[str, Any]]]:
        """Every metadata template version of the tenant."""
        return call("GET", "identifiers/templates")

    @operation
    def save_template(self, definition: Mapping[str, Any]) -> Op[dict[str, Any]]:
        """Store a template definition as the next version of its name."""
        return call("POST", "identifiers/templates", json=dict(definition))
