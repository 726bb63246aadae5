"""Live charts on long windows read a bounded tail: subgroups by count and by lot read only the
newest points (cut at an hour boundary found from the 1 h rollups), time windows read from the
rollups the newest windows; each stays identical to the unbounded read's tail and says exactly
what it left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gongyun.apps.quality import service
from tests.apps.helpers import eps, running_with_apps, tenant_with_users

QUALITY = eps(quality="gongyun.apps.quality.manifest:MANIFEST")
BASE = "/api/v1/apps/quality"
STEP_S = 10


async def test_count_and_lot_charts_read_a_bounded_tail_and_summarise_the_rest(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, QUALITY) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        h = a["headers"]["tenant-admin"]
        await client.patch("/api/v1/apps/quality", json={"enabled": True}, headers=h)
        dev = await client.post("/api/v1/assets/devices", json={"name": "packer"}, headers=h)
        for tag in ("fill_weight", "lot"):
            made = await client.post(
                f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": tag}, headers=h
            )
            assert made.status_code == 201, made.text
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        t0 = hour - timedelta(hours=4) + timedelta(minutes=17, seconds=3)  # not on an hour
        values = np.random.default_rng(7).normal(500, 1, 3 * 360 + 200)  # 3 h 33 min at 0.1 Hz
        times = [t0 + timedelta(seconds=STEP_S * i) for i in range(values.size)]
        samples = [
            {"tag": "packer/fill_weight", "value": float(v), "ts": t.isoformat()}
            for v, t in zip(values, times, strict=True)
        ] + [
            {"tag": "packer/lot", "value": float(100 + k), "ts": (t0 + timedelta(minutes=7 * k)).isoformat()}
            for k in range(31)
        ]
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h)
        assert r.status_code == 200 and r.json()["accepted"] == len(samples), r.text
        ids = {}
        for name, subgroup in (
            ("count", {"by": "count", "size": 5}),
            ("lot", {"by": "lot", "lot_tag": "packer/lot"}),
            ("minute", {"by": "time", "window_s": 60}),  # 6 values a window, from the 1 min rollups
        ):
            made = await client.post(
                f"{BASE}/charts",
                json={
                    "name": name,
                    "kind": "xbar_r" if name == "minute" else "xbar_s",
                    "tag": "packer/fill_weight",
                    "subgroup": subgroup,
                },
                headers=h,
            )
            assert made.status_code == 201, made.text
            ids[name] = made.json()["id"]
        start, end = t0 - timedelta(minutes=5), times[-1] + timedelta(seconds=1)
        assert platform.apps is not None
        services = platform.apps.services

        async def read(name: str, bound: int | None) -> tuple[Any, list[int], Any]:
            async with platform.db.session() as session:
                chart = await service.chart_row(session, a["id"], ids[name])
                return await service.chart_data(
                    session, services, a["id"], chart, start, end, max_points=bound
                )

        full, full_times, none = await read("count", None)
        assert none is None and len(full) == values.size // 5
        assert (await read("count", 10_000))[2] is None  # the whole window fits: nothing left out
        tail, tail_times, left = await read("count", 400)
        assert left is not None
        cut = datetime.fromtimestamp(left.before / 1e6, UTC)
        assert cut.minute == cut.second == 0 and t0 < cut
        before = np.array([t < cut for t in times])
        assert left.points == int(before.sum()) and sum(~before) <= 400
        assert left.mean == pytest.approx(values[before].mean())
        assert (left.min, left.max) == (
            pytest.approx(values[before].min()),
            pytest.approx(values[before].max()),
        )
        # the same subgroups as the full read's tail, numbered on from the window's start
        assert left.subgroups == -(-left.points // 5) == len(full) - len(tail)
        assert tail.keys == full.keys[-len(tail) :] and tail_times == full_times[-len(tail) :]
        assert np.allclose(tail.means, full.means[-len(tail) :])
        # by lot: the lot running at the cut is left out whole, the later lots are complete
        lots_full, _, _ = await read("lot", None)
        lots_tail, _, lot_left = await read("lot", 400)
        assert lot_left is not None and lot_left.points == left.points
        assert lots_tail.keys == lots_full.keys[-len(lots_tail) :]
        assert lot_left.lots == len(lots_full) - len(lots_tail)
        assert np.allclose(lots_tail.means, lots_full.means[-len(lots_tail) :])
        # time windows from the rollups: the newest max_points // 5 windows, the rest summarised
        mins_full, mins_times, _ = await read("minute", None)
        mins_tail, tail_mins, min_left = await read("minute", 400)
        assert len(mins_tail) == 80 < len(mins_full) and tail_mins == mins_times[-80:]
        assert np.allclose(mins_tail.means, mins_full.means[-80:])
        assert min_left is not None and min_left.before == tail_mins[0]
        before = np.array([t.timestamp() * 1e6 < min_left.before for t in times])
        assert min_left.points == int(before.sum()) and min_left.mean == pytest.approx(values[before].mean())
        # the API says what the live chart left out (bounded at the live limit, here all fits)
        data = (
            await client.get(
                f"{BASE}/charts/{ids['count']}/data",
                params={"start": start.isoformat(), "end": end.isoformat()},
                headers=h,
            )
        ).json()
        assert data["left_out"] is None and len(data["primary"]["points"]) == len(full)
