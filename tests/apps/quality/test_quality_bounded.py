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


async def test_inspection_charts_read_a_bounded_tail_and_summarise_the_rest(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, QUALITY) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        h = a["headers"]["tenant-admin"]
        await client.patch("/api/v1/apps/quality", json={"enabled": True}, headers=h)
        t0 = datetime(2026, 3, 2, 8, 0, 7, tzinfo=UTC)
        values = np.random.default_rng(3).normal(10, 0.1, 403)
        at = [t0 + timedelta(seconds=30 * i) for i in range(values.size)]  # a lot every 7 rows
        body = [
            {"lot": f"L{i // 7}", "characteristic": "bore", "value": float(v), "recorded_at": t.isoformat()}
            for i, (v, t) in enumerate(zip(values, at, strict=True))
        ] + [
            {
                "lot": f"L{i // 3}",
                "characteristic": "seal",
                "sample_size": 50.0,
                "defects": float(i % 4),
                "recorded_at": t.isoformat(),
            }
            for i, t in enumerate(at)
        ]
        r = await client.post(f"{BASE}/inspections", json=body, headers=h)
        assert r.status_code == 201, r.text
        ids = {}
        for name, kind, char, subgroup in (
            ("count", "xbar_r", "bore", {"by": "count", "size": 5}),
            ("lot", "xbar_s", "bore", {"by": "lot"}),
            ("time", "xbar_r", "bore", {"by": "time", "window_s": 300}),
            ("p", "p", "seal", {"by": "lot"}),
        ):
            made = await client.post(
                f"{BASE}/charts",
                json={"name": name, "kind": kind, "source": "inspection", "characteristic": char,
                      "subgroup": subgroup},
                headers=h,
            )  # fmt: skip
            assert made.status_code == 201, made.text
            ids[name] = made.json()["id"]
        start, end = t0 - timedelta(minutes=1), at[-1] + timedelta(seconds=1)
        assert platform.apps is not None
        services = platform.apps.services

        async def read(name: str, bound: int | None) -> tuple[Any, list[int], Any]:
            async with platform.db.session() as session:
                chart = await service.chart_row(session, a["id"], ids[name])
                return await service.chart_data(
                    session, services, a["id"], chart, start, end, max_points=bound
                )

        def before(cut: int) -> np.ndarray:
            return np.array([t.timestamp() * 1e6 < cut for t in at])

        assert (await read("count", 1000))[2] is None  # everything fits
        full, full_times, _ = await read("count", None)
        tail, tail_times, left = await read("count", 100)
        assert left is not None and left.before == int(at[-100].timestamp() * 1e6)
        old = before(left.before)
        assert left.points == int(old.sum()) == values.size - 100
        assert left.mean == pytest.approx(values[old].mean())
        assert (left.min, left.max) == (pytest.approx(values[old].min()), pytest.approx(values[old].max()))
        assert left.subgroups == len(full) - len(tail)
        assert tail.keys == full.keys[-len(tail) :] and tail_times == full_times[-len(tail) :]
        assert np.allclose(tail.means, full.means[-len(tail) :])
        # by lot: the lot running at the cut is left out whole
        lots_full, _, _ = await read("lot", None)
        lots_tail, _, lot_left = await read("lot", 100)
        assert lot_left is not None and lot_left.lots == len(lots_full) - len(lots_tail)
        assert lots_tail.keys == lots_full.keys[-len(lots_tail) :]
        assert np.allclose(lots_tail.stdevs, lots_full.stdevs[-len(lots_tail) :])
        # by time: the cut moves to the next window boundary, no window is read in part
        win_full, win_times, _ = await read("time", None)
        win_tail, win_tail_times, win_left = await read("time", 100)
        assert win_left is not None and win_left.before % 300_000_000 == 0
        assert win_left.points == int(before(win_left.before).sum()) and len(win_tail) < len(win_full)
        assert win_tail_times == win_times[-len(win_tail) :]
        assert np.allclose(win_tail.ranges, win_full.ranges[-len(win_tail) :])
        # attribute chart: lots of three samples, a lot begun before the cut left out whole
        p_full, _, _ = await read("p", None)
        p_tail, _, p_left = await read("p", 100)
        assert p_left is not None and p_left.lots == len(p_full.counts) - len(p_tail.counts) == 101
        assert list(p_tail.counts) == list(p_full.counts[-len(p_tail.counts) :])
        # the API summarises what the live chart left out (the live bound is 20,000: all fits)
        data = (
            await client.get(
                f"{BASE}/charts/{ids['count']}/data",
                params={"start": start.isoformat(), "end": end.isoformat()},
                headers=h,
            )
        ).json()
        assert data["left_out"] is None and len(data["primary"]["points"]) == len(full)


async def test_a_lot_begun_days_before_the_window_names_its_points(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, QUALITY) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        h = a["headers"]["tenant-admin"]
        await client.patch("/api/v1/apps/quality", json={"enabled": True}, headers=h)
        dev = await client.post("/api/v1/assets/devices", json={"name": "packer"}, headers=h)
        for tag in ("fill_weight", "lot"):
            await client.post(
                f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": tag}, headers=h
            )
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        values = np.random.default_rng(5).normal(500, 1, 60)
        samples = [{"tag": "packer/lot", "value": 77.0, "ts": (t0 - timedelta(days=3)).isoformat()}] + [
            {
                "tag": "packer/fill_weight",
                "value": float(v),
                "ts": (t0 + timedelta(seconds=STEP_S * i)).isoformat(),
            }
            for i, v in enumerate(values)
        ]
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h)
        assert r.status_code == 200 and r.json()["accepted"] == len(samples), r.text
        made = await client.post(
            f"{BASE}/charts",
            json={"name": "lot", "kind": "xbar_s", "tag": "packer/fill_weight",
                  "subgroup": {"by": "lot", "lot_tag": "packer/lot"}},
            headers=h,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        assert platform.apps is not None
        async with platform.db.session() as session:
            chart = await service.chart_row(session, a["id"], made.json()["id"])
            data, _, left = await service.chart_data(
                session, platform.apps.services, a["id"], chart, t0, t0 + timedelta(hours=1), max_points=1000
            )
        # the lot tag's only value is three days old: found in the 1 h rollups, not "?"
        assert left is None and data.keys == ["77"] and int(data.sizes[0]) == values.size
