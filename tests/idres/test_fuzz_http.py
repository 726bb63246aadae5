"""Property-based fuzzing of the Handle API: any path or body gives a 2xx/4xx answer, never 5xx."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongyun.db import Database, upgrade
from gongyun.idres import prefixes as pfx
from gongyun.idres.auth import Principal, static_token_auth
from gongyun.idres.http import HandleService, make_app
from gongyun.idres.registry import Registry

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
value_like = st.fixed_dictionaries(
    {
        "index": st.integers(-1, 400) | st.text(max_size=4),
        "type": st.sampled_from(["URL", "HS_ADMIN", "HS_SITE", "X", ""]),
    },
    optional={
        "data": json_values | st.fixed_dictionaries({"format": st.text(max_size=8), "value": json_values})
    },
)
bodies = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda v: orjson.dumps({"values": v}), st.lists(value_like, max_size=4)),
    st.builds(orjson.dumps, json_values),
)


async def _service(tmp: Path) -> HandleService:
    url = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    await upgrade(url)
    db = Database(url)
    async with db.session() as s:
        await pfx.submit(s, "t", "88.1", "enterprise", status=pfx.FilingStatus.active)
    auth = static_token_auth({"tok": Principal("op", None, operator=True)})
    return HandleService(Registry(db), "t", authenticators=[auth])


def test_handle_api_never_500(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    service = loop.run_until_complete(_service(tmp_path))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(service)), base_url="http://n")

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        method=st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
        handle=st.one_of(
            st.text(max_size=20), st.builds(lambda s: f"88.1/{s}", st.text(min_size=1, max_size=10))
        ),
        query=st.dictionaries(
            st.sampled_from(["index", "type", "overwrite", "mintNewSuffix", "prefix", "pageSize"]),
            st.text(max_size=5),
            max_size=3,
        ),
        body=bodies,
    )
    def check(method: str, handle: str, query: dict[str, Any], body: bytes) -> None:
        path = "/api/handles/" + quote(handle, safe="/")
        r = loop.run_until_complete(
            client.request(method, path, params=query, content=body, headers={"Authorization": "Bearer tok"})
        )
        assert r.status_code < 500, (method, path, query, body, r.text)
        assert "responseCode" in r.json()

    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        service.close()
        loop.run_until_complete(service.registry.db.dispose())
        loop.close()
