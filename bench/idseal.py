"""make bench-idseal: what sealed core identifier values cost a read, beside the same record without one.

Registers two records on a scratch SQLite registry: nine general values, and the same nine plus one
core value (sealed with the tenant's level-3 data key). Then, through the Handle REST API in
process (``HandleService`` over ASGI, no network), times ``--requests`` GETs of each: anonymous
(public resolution), and by the node operator (every value: the core one is opened). The anchor is
the plain record read the same way in the same run. Writes ``bench/results/idseal.json``; the last
line is a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gongyun.db import Database, upgrade
from gongyun.idres.asgi import AsgiApp
from gongyun.idres.auth import Principal, static_token_auth
from gongyun.idres.http import HandleService
from gongyun.idres.prefixes import FilingStatus, PrefixKind, submit
from gongyun.idres.registry import Registry
from gongyun.idres.values import decode_values
from gongyun.security.classify.keyring import Keyring

OPERATOR = {"Authorization": "Bearer op"}


async def _time(client: httpx.AsyncClient, url: str, headers: dict[str, str], n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        r = await client.get(url, headers=headers)
        samples.append((time.perf_counter() - t) * 1e6)
        assert r.status_code == 200, r.text
    samples.sort()
    return {"median_us": statistics.median(samples), "p99_us": samples[int(len(samples) * 0.99) - 1]}


async def run(requests: int) -> dict[str, Any]:
    """Time the four kinds of read; return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'ids.db'}"
        await upgrade(url)
        db = Database(url)
        registry = Registry(db, keyring=Keyring([b"\x01" * 32]))
        async with db.session() as s:
            await submit(s, "t1", "88.1", PrefixKind.enterprise, status=FilingStatus.active)
        general = [
            {"index": i, "type": f"GY_ATTR{i}", "data": f"value number {i} " * 3} for i in range(1, 10)
        ]
        core = {"index": 10, "type": "GY_FORMULA", "data": "Ni 61.2 Al 12.1 " * 4, "classification": "core"}
        await registry.put("t1", "88.1/plain", decode_values(general))
        await registry.put("t1", "88.1/core", decode_values([*general, core]))
        service = HandleService(
            registry, None, authenticators=[static_token_auth({"op": Principal("op", None, operator=True)})]
        )
        service.cache.size = 0  # every read goes to the database, as a cache miss would
        app = AsgiApp()
        service.install(app)
        out: dict[str, Any] = {"requests": requests}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://id.test") as client:
            for name, handle, headers in (
                ("public_plain", "88.1/plain", {}),
                ("public_core", "88.1/core", {}),
                ("admin_plain", "88.1/plain", OPERATOR),
                ("admin_core", "88.1/core", OPERATOR),
            ):
                await _time(client, f"/api/handles/{handle}", headers, 50)  # warm up
                out[name] = await _time(client, f"/api/handles/{handle}", headers, requests)
        service.close()
        await db.dispose()
    return out


def main() -> None:
    """Run, write the JSON and print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    out = asyncio.run(run(args.requests))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "idseal.json").write_text(json.dumps(out, indent=2))
    for key in ("public_plain", "public_core", "admin_plain", "admin_core"):
        print(f"{key}: median {out[key]['median_us']:.0f} us, p99 {out[key]['p99_us']:.0f} us")
    ratio = out["admin_core"]["median_us"] / out["admin_plain"]["median_us"]
    print(
        f"idseal: admin read of a record with a sealed core value {out['admin_core']['median_us']:.0f} us"
        f" = {ratio:.2f} x the same record without one ({out['admin_plain']['median_us']:.0f} us);"
        f" public read {out['public_core']['median_us']:.0f} us vs {out['public_plain']['median_us']:.0f} us"
    )


if __name__ == "__main__":
    main()
