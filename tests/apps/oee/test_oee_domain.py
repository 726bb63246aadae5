"""OEE numbers: the worked example to 0.01 %, each ISO 22400-2 KPI formula, gaps as unknown, the
calendar, losses, Pareto, line and site, and refused inputs."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from gongyun.apps.oee.domain.calendar import ShiftCalendar, shifts_overlap
from gongyun.apps.oee.domain.kpi import Quantities, TimeElements, kpis
from gongyun.apps.oee.domain.losses import StopEvent, pareto, reason_tree, six_big_losses
from gongyun.apps.oee.domain.machine import Counter, MachineSpec, line_periods, machine_periods, site_summary
from gongyun.apps.oee.domain.states import MachineState, StateMapping, Timeline, derive_timeline
from gongyun.apps.oee.errors import OeeInputInvalid
from tests.apps.oee import worked

US = 1_000_000
FLAG = StateMapping.parse({"mode": "running_flag", "tag": "packer/running"})


def _example() -> list:
    ts, running, good, scrap = worked.samples()
    timeline = derive_timeline(FLAG, ts, running)
    spec = MachineSpec("packer", worked.IDEAL_S, micro_stop_s=120)
    insts = worked.calendar().instances(worked.T0, worked.T1)
    return machine_periods(
        spec, timeline, Counter.from_totals(ts, good), Counter.from_totals(ts, scrap), insts, "shift"
    )


def test_the_worked_example_is_reproduced_to_a_hundredth_of_a_percent() -> None:
    [r] = _example()
    assert r.key == "2026-01-05/A"
    assert r.te.pot == 480 * 60 and r.te.pdt == 60 * 60 and r.te.pbt == 420 * 60
    assert r.te.apt == 373 * 60 and r.te.adet == 47 * 60 and r.te.unknown == 0
    assert r.q.good == worked.GOOD and r.q.scrap == worked.SCRAP
    for name, exact in worked.EXPECTED.items():
        got = getattr(r.kpi, name)
        assert got == pytest.approx(exact, rel=1e-4), name  # 0.01 %
        assert round(got, 4) == worked.PUBLISHED[name], name
    assert r.kpi.failures == 3  # 20, 15 and 12 minutes: none is a micro-stop
    assert r.kpi.mtbf_s == pytest.approx(373 * 60 / 3) and r.kpi.mttr_s == pytest.approx(47 * 60 / 3)


def test_six_big_losses_add_up_to_the_lost_time() -> None:
    [r] = _example()
    lost = sum(r.losses.values())
    fully_productive = worked.GOOD * worked.IDEAL_S
    assert lost + fully_productive == pytest.approx(r.te.pbt)
    assert fully_productive / r.te.pbt == pytest.approx(r.kpi.oee)
    assert r.losses["breakdowns"] == pytest.approx(47 * 60)
    assert r.losses["reduced_speed"] == pytest.approx(373 * 60 - 19_271)
    assert r.losses["process_defects"] == pytest.approx(423)


TE = TimeElements(pot=28_800, pdt=3_600, apt=18_000, aust=1_800, adet=2_400, idle=600, unknown=600)
Q = Quantities(good=15_000, scrap=500)


@pytest.mark.parametrize(
    ("kpi", "expected"),
    [
        ("availability", 18_000 / 25_200),
        ("performance", 1.1 * 15_500 / 18_000),
        ("quality", 15_000 / 15_500),
        ("oee", 18_000 / 25_200 * (1.1 * 15_500 / 18_000) * (15_000 / 15_500)),
        ("allocation_efficiency", (18_000 + 1_800 + 2_400) / 25_200),
        ("utilization_efficiency", 18_000 / (18_000 + 1_800 + 2_400)),
        ("technical_efficiency", 18_000 / (18_000 + 2_400)),
        ("setup_ratio", 1_800 / (18_000 + 1_800)),
        ("nee", (18_000 + 1_800) / 25_200 * (1.1 * 15_500 / 18_000) * (15_000 / 15_500)),
        ("mtbf_s", 18_000 / 4),
        ("mttr_s", 2_400 / 4),
        ("scrap_ratio", 500 / 15_500),
        ("throughput_per_h", 15_500 / 7),
    ],
)
def test_each_iso_22400_kpi_formula(kpi: str, expected: float) -> None:
    assert TE.pbt == 25_200 and TE.aupt == 19_800 and TE.aubt == 22_200
    assert getattr(kpis(TE, Q, 1.1, failures=4), kpi) == pytest.approx(expected)


def test_kpis_with_nothing_to_divide_by_are_none() -> None:
    k = kpis(TimeElements(0, 0, 0, 0, 0, 0, 0), Quantities(0, 0), 1.0)
    assert k.availability is None and k.oee is None and k.mtbf_s is None


def test_gaps_in_the_data_are_unknown_never_running() -> None:
    ts = np.arange(0, 600, dtype=np.int64) * US
    flag = np.ones(ts.size)
    keep = (ts < 100 * US) | (ts >= 400 * US)  # 300 s without data while "running"
    t = derive_timeline(FLAG, ts[keep], flag[keep])
    d = t.durations([(0, 600 * US)])
    assert d[MachineState.running] == 300 and d[MachineState.unknown] == 300
    filled = t.filled(0, 600 * US)
    assert list(filled.states) == [MachineState.running, MachineState.unknown, MachineState.running]
    # before the first sample and after the last one: unknown too
    assert t.durations([(-100 * US, 0)])[MachineState.unknown] == 100


def test_state_tag_and_speed_and_counts_mappings() -> None:
    m = StateMapping.parse(
        {
            "mode": "state_tag",
            "tag": "m/state",
            "codes": {"1": "running", "2": "idle", "3": "setup", "4": "down_unplanned"},
        }
    )
    assert list(m.classify(np.array([1, 2, 3, 4, 9]))) == [1, 2, 5, 4, 0]  # 9 is unmapped: unknown
    s = StateMapping.parse({"mode": "speed", "tag": "m/speed", "threshold": 50, "stopped_state": "idle"})
    assert list(s.classify(np.array([49.9, 50, 80]))) == [MachineState.idle, 1, 1]
    c = StateMapping.parse({"mode": "counts", "tag": "m/count"})
    t = derive_timeline(c, np.arange(5) * US, np.array([0, 1, 1, 2, 3]))
    assert list(t.states) == [MachineState.unknown, 1, MachineState.down_unplanned, 1]


BAD_MAPPINGS = [
    {"mode": "state_tag", "tag": "x", "codes": {"1": "running", "2": None}},
    {"mode": "state_tag", "tag": "x", "codes": {"1": "running", "2": "broken"}},
    {"mode": "state_tag", "tag": "x", "codes": {"2": "idle"}},
    {"mode": "state_tag", "tag": "x"},
    {"mode": "speed", "tag": "x"},
    {"mode": "running_flag", "tag": "x", "stopped_state": None},
    {"mode": "running_flag", "tag": "x", "stopped_state": "running"},
    {"mode": "telepathy", "tag": "x"},
    {"mode": "running_flag"},
]


@pytest.mark.parametrize("spec", BAD_MAPPINGS)
def test_mappings_that_leave_states_undefined_are_refused(spec: dict) -> None:
    with pytest.raises(OeeInputInvalid) as info:
        StateMapping.parse(spec)
    assert info.value.details["reason"] == "state_mapping" and info.value.status == 422


def test_overlapping_shifts_are_refused() -> None:
    day = [{"name": "A", "start": "06:00", "end": "14:00"}, {"name": "B", "start": "13:00", "end": "22:00"}]
    with pytest.raises(OeeInputInvalid, match="'A' and 'B' overlap") as info:
        ShiftCalendar.parse({"shifts": day})
    assert info.value.details["reason"] == "overlapping_shifts"
    night = [{"name": "N", "start": "22:00", "end": "07:00"}, {"name": "A", "start": "06:00", "end": "14:00"}]
    assert shifts_overlap(night)
    ok = [{"name": "A", "start": "06:00", "end": "14:00"}, {"name": "B", "start": "14:00", "end": "22:00"},
          {"name": "N", "start": "22:00", "end": "06:00"}]  # fmt: skip
    assert not shifts_overlap(ok)
    # weekdays that do not meet cannot overlap
    split = [{"name": "W", "start": "06:00", "end": "18:00", "weekdays": [0, 1, 2, 3, 4]},
             {"name": "E", "start": "08:00", "end": "20:00", "weekdays": [5, 6]}]  # fmt: skip
    assert not shifts_overlap(split)


def test_calendar_night_shift_time_zone_and_planned_downtime() -> None:
    cal = ShiftCalendar.parse(
        {
            "tz": "Asia/Shanghai",
            "shifts": [
                {
                    "name": "N",
                    "start": "22:00",
                    "end": "06:00",
                    "breaks": [{"start": "02:00", "end": "02:30"}],
                }
            ],
            "planned": [
                {"start": "2026-01-06T03:00:00+08:00", "end": "2026-01-06T04:00:00+08:00", "machines": ["m1"]}
            ],
        }
    )
    start = int(datetime(2026, 1, 5, 14, 0, tzinfo=UTC).timestamp()) * US  # 22:00 Shanghai
    [inst] = cal.instances(start, start + 8 * 3600 * US, machine="m1")
    assert inst.start == start and inst.pot_s == 8 * 3600 and inst.pdt_s == 90 * 60
    [other] = cal.instances(start, start + 8 * 3600 * US, machine="m2")
    assert other.pdt_s == 30 * 60
    with pytest.raises(OeeInputInvalid, match="outside the shift"):
        ShiftCalendar.parse({"shifts": [{"name": "A", "start": "06:00", "end": "14:00",
                                         "breaks": [{"start": "15:00", "end": "15:10"}]}]})  # fmt: skip
    with pytest.raises(OeeInputInvalid, match="time zone"):
        ShiftCalendar.parse({"shifts": [], "tz": "Mars/Olympus"})


def test_micro_stops_and_pareto() -> None:
    ev = [StopEvent("m", 0, 30 * US, MachineState.down_unplanned),
          StopEvent("m", 100 * US, 700 * US, MachineState.down_unplanned)]  # fmt: skip
    assert [e.micro(120) for e in ev] == [True, False]
    te = TimeElements(3600, 0, 2970, 0, 630, 0, 0)
    losses = six_big_losses(te, Quantities(2900, 10), 1.0, ev, 120)
    assert losses["minor_stops"] == 30 and losses["breakdowns"] == 600
    p = pareto([("jam", 600), ("uncoded", 30), ("jam", 300), ("film", 70)])
    assert [x["key"] for x in p] == ["jam", "film", "uncoded"]
    assert p[0]["share"] == pytest.approx(0.9) and p[-1]["cumulative"] == pytest.approx(1.0)


def test_reason_tree_checks() -> None:
    tree = reason_tree([
        {"code": "mech", "name_en": "Mechanical", "name_zh": "机械"},
        {"code": "jam", "name_en": "Jam", "name_zh": "卡料", "parent": "mech", "loss": "minor_stops"},
    ])  # fmt: skip
    assert tree["jam"].name("zh-CN") == "卡料" and tree["jam"].name("en") == "Jam"
    for bad in (
        [{"code": "a", "name_en": "A"}],
        [{"code": "a", "name_en": "A", "name_zh": "甲", "parent": "zzz"}],
        [
            {"code": "a", "name_en": "A", "name_zh": "甲", "parent": "b"},
            {"code": "b", "name_en": "B", "name_zh": "乙", "parent": "a"},
        ],
        [{"code": "a", "name_en": "A", "name_zh": "甲", "loss": "bad luck"}],
        [{"code": "a", "name_en": "A", "name_zh": "甲"}, {"code": "a", "name_en": "A", "name_zh": "甲"}],
    ):
        with pytest.raises(OeeInputInvalid):
            reason_tree(bad)


def test_line_takes_its_bottleneck_and_site_weights_by_planned_busy_time() -> None:
    [r] = _example()
    ts, running, good, scrap = worked.samples()
    timeline = derive_timeline(FLAG, ts, running)
    insts = worked.calendar().instances(worked.T0, worked.T1)
    filler = MachineSpec("filler", 0.8)
    fr = machine_periods(
        filler, timeline, Counter.from_totals(ts, good), Counter.from_totals(ts, scrap), insts
    )
    packer = MachineSpec("packer", worked.IDEAL_S)
    [line] = line_periods([filler, packer], {"filler": fr, "packer": [r]})
    assert (
        line.bottleneck == "packer"
        and line.kpi.oee == r.kpi.oee
        and set(line.machines) == {"filler", "packer"}
    )
    site = site_summary({"l1": line, "l2": line})
    assert site["oee"] == pytest.approx(r.kpi.oee)


def test_grouping_by_day_and_week() -> None:
    ts, running, good, scrap = worked.samples()
    t = derive_timeline(FLAG, ts, running)
    insts = worked.calendar().instances(worked.T0 - 86400 * US, worked.T1)
    spec = MachineSpec("packer", 1.0)
    days = machine_periods(
        spec, t, Counter.from_totals(ts, good), Counter.from_totals(ts, scrap), insts, "day"
    )
    assert [d.key for d in days] == ["2026-01-04", "2026-01-05"]
    assert days[0].te.unknown == days[0].te.pbt and days[0].kpi.availability == 0.0  # no data: unknown
    weeks = machine_periods(
        spec, t, Counter.from_totals(ts, good), Counter.from_totals(ts, scrap), insts, "week"
    )
    assert [w.key for w in weeks] == ["2026-W01", "2026-W02"]


def test_bad_quantities_and_cycle_are_refused() -> None:
    with pytest.raises(OeeInputInvalid):
        MachineSpec("m", 0)
    with pytest.raises(OeeInputInvalid):
        kpis(TE, Quantities(-1, 0), 1.0)
    assert len(Timeline.empty().filled(0, 10)) == 1


def test_good_parts_from_a_total_counter_less_rejects() -> None:
    ts = np.arange(6, dtype=np.int64) * US
    total = Counter.from_totals(ts, np.array([0, 2, 4, 6, 8, 10]))
    rejects = Counter.from_totals(ts, np.array([0, 0, 1, 1, 1, 2]))
    good = total.minus(rejects)
    assert good.total(0, 6 * US) == 8 and good.total(0, 3 * US) == 3
