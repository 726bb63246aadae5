"""Fixtures shared by the integration tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.services import NATS_URL, require_service, scratch_postgres_database


@pytest.fixture(params=["embedded", "server"])
def profile(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings of a fresh deployment of the profile (the server one on a scratch database)."""
    if request.param == "embedded":
        yield {}
        return
    require_service("nats")
    with scratch_postgres_database() as url:
        yield {
            "profile": "server",
            "database_url": url,
            "bus_url": NATS_URL,
            "secret_key": secrets.token_urlsafe(32),
            "deployment_id": f"crash-{secrets.token_hex(6)}",  # its own namespace on the shared NATS
        }
