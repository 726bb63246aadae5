"""The app catalogue and the tenant's installations (``/api/v1/apps``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gongyun_sdk._ops import M, Op, Resource, body, call, call_no_content, operation


class Apps(Resource[M]):
    """Apps: what is installed on the platform and their state in the tenant the client acts in."""

    @operation
    def list(self) -> Op[list[dict[str, Any]]]:
        """The catalogue: every app, its status on the platform and its state in the tenant."""
        return call("GET", "apps")

    @operation
    def get(self, name: str) -> Op[dict[str, Any]]:
        """One catalogue entry."""
        return call("GET", f"apps/{name}")

    @operation
    def configure(
        self, name: str, *, enabled: bool | None = None, settings: Mapping[str, Any] | None = None
    ) -> Op[dict[str, Any]]:
        """Install the app in the tenant when absent, enable or disable it, save its settings."""
        doc = body(enabled=enabled, settings=dict(settings) if settings is not None else None)
        return call("PATCH", f"apps/{name}", json=doc)

    @operation
    def uninstall(self, name: str) -> Op[None]:
        """Remove the tenant's installation (the app's data stays)."""
        return call_no_content("DELETE", f"apps/{name}")
