"""The API tests' app: loopback allowed as an outbound target (tenant_objects.py's webhook target)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest

from gongyun.platform import Platform
from tests.apphelp import running_app


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """An app on SQLite with its client; alarm webhooks may reach 127.0.0.0/8 (``outbound_allow``)."""
    async with running_app(tmp_path, outbound_allow=[ip_network("127.0.0.0/8")]) as pair:
        yield pair
