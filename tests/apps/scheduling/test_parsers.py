"""Readers: OR-Library / Taillard job shops, Brandimarte .fjs, JSON and CSV, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gongyun.apps.scheduling.domain.model import Instance, Machine, Operation, Order
from gongyun.apps.scheduling.domain.parsers import (
    instance_from_csv,
    instance_from_json,
    load_instance,
    parse_fjs,
    parse_jobshop,
    schedule_to_csv,
    schedule_to_json,
)
from gongyun.apps.scheduling.errors import InstanceFileInvalid, InstanceInvalid
from tests.apps.scheduling.helpers import FT06, factory, fjsp_dir

TAILLARD = """\
Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound
2 2 1 1 10 10
Times
3 4
2 5
Machines
1 2
2 1
"""


def test_orlibrary_jobshop() -> None:
    inst = parse_jobshop(FT06, "ft06")
    assert len(inst.operations) == 36 and len(inst.machines) == 6
    assert inst.operations[0].durations == {"M2": 1}
    assert inst.operations[1].predecessors == ("J0.0",)


def test_taillard_jobshop() -> None:
    inst = parse_jobshop(TAILLARD, "t")
    assert [dict(o.durations) for o in inst.operations] == [{"M0": 3}, {"M1": 4}, {"M1": 2}, {"M0": 5}]


def test_brandimarte_files() -> None:
    folder = fjsp_dir()
    if folder is None:
        pytest.skip("shared/data/fjsp is not beside the repository")
    sizes = {}
    for path in sorted(folder.glob("mk*.fjs")):
        inst = load_instance(path)
        sizes[path.stem] = (len(inst.orders), len(inst.machines), len(inst.operations))
    assert sizes["mk01"] == (10, 6, 55) and sizes["mk10"] == (20, 15, 240)
    first = load_instance(folder / "mk01.fjs").operations[0]
    assert dict(first.durations) == {"M1": 5, "M3": 4}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        ("2 2\n0 3 1 4\n", 3, "expected 2 job lines"),
        ("1 2\n0 3 1\n", 2, "pairs"),
        ("1 2\n0 3 x 4\n", 2, "'x' is not an integer"),
        ("1 2\n0 3 7 4\n", 2, "unknown machine"),
        ("1 2\n0 3 1 0\n", 2, "not positive"),
        ("1 2\n0 3 1 -2\n", 2, "not positive"),
        ("1 2\n0 3 1 4\n0 3 1 4\n", 3, "more job lines"),
    ],
)
def test_malformed_jobshop_names_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InstanceFileInvalid) as err:
        parse_jobshop(text)
    assert f"line {line}" in err.value.message and words in err.value.message
    assert err.value.code == "scheduling_file_invalid"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("2 3\n1 1 1 5\n", 3, "expected 2 job lines"),
        ("1 3\n2 1 1 5 1 2\n", 2, "ends where"),
        ("1 3\n1 0\n", 2, "no eligible machine"),
        ("1 3\n1 1 4 5\n", 2, "unknown machine 4"),
        ("1 3\n1 1 2 0\n", 2, "not positive"),
        ("1 3\n1 1 2 5 9\n", 2, "values left"),
        ("x 3\n", 1, "header"),
    ],
)
def test_malformed_fjs_names_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InstanceFileInvalid) as err:
        parse_fjs(text)
    assert f"line {line}" in err.value.message and words in err.value.message


def _inst(**changes: object) -> Instance:
    machines = [Machine("M1"), Machine("M2")]
    orders = [Order("O1", release=5, due=30)]
    ops = [Operation("O1.a", "O1", {"M1": 3}), Operation("O1.b", "O1", {"M2": 4}, ("O1.a",))]
    base: dict[str, object] = {"machines": machines, "orders": orders, "operations": ops}
    base.update(changes)
    return Instance("t", **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"operations": [Operation("O1.a", "O1", {})]}, "no eligible machine"),
        (
            {
                "operations": [
                    Operation("O1.a", "O1", {"M1": 3}, ("O1.c",)),
                    Operation("O1.b", "O1", {"M1": 3}, ("O1.a",)),
                    Operation("O1.c", "O1", {"M1": 3}, ("O1.b",)),
                ]
            },
            "cycle in the precedence",
        ),
        ({"operations": [Operation("O1.a", "O1", {"M1": 0})]}, "not a positive integer"),
        ({"operations": [Operation("O1.a", "O1", {"M1": -3})]}, "not a positive integer"),
        ({"orders": [Order("O1", release=10, due=5)]}, "due date 5 is before the release date 10"),
        ({"operations": [Operation("O1.a", "O1", {"M9": 3})]}, "unknown machine 'M9'"),
        ({"operations": [Operation("O1.a", "O1", {"M1": 3}, ("nope",))]}, "unknown predecessor"),
    ],
)
def test_bad_instances_are_refused(changes: dict[str, object], words: str) -> None:
    with pytest.raises(InstanceInvalid) as err:
        _inst(**changes).check()
    assert words in err.value.message
    assert err.value.code == "scheduling_instance_invalid"


def test_json_round_trip_and_refusal() -> None:
    inst = factory()
    again = instance_from_json(json.loads(json.dumps(inst.to_dict())))
    assert again.to_dict() == inst.to_dict()
    bad = inst.to_dict()
    bad["orders"][0]["due"] = -1
    with pytest.raises(InstanceInvalid, match="before the release"):
        instance_from_json(bad)
    with pytest.raises(InstanceFileInvalid):
        instance_from_json({"operations": [{"id": "x"}]})


def test_csv_orders_and_refusals() -> None:
    text = (
        "order,operation,machine,time,release,due,weight\n"
        "O1,10,M1,3,0,20,2\n"
        "O1,10,M2,4,0,20,2\n"
        "O1,20,M2,5,0,20,2\n"
        "O2,10,M1,2,1,9,1\n"
    )
    inst = instance_from_csv(text, "orders")
    assert {o.id: dict(o.durations) for o in inst.operations}["O1.10"] == {"M1": 3, "M2": 4}
    assert inst.operations[1].predecessors == ("O1.10",)
    assert inst.order_by_id["O1"].weight == 2
    with pytest.raises(InstanceFileInvalid, match="line 2: unknown machine 'M1'"):
        instance_from_csv(text, machines=[Machine("M2")])
    with pytest.raises(InstanceFileInvalid, match="line 2: processing time 0"):
        instance_from_csv("order,operation,machine,time\nO1,1,M1,0\n")
    with pytest.raises(InstanceFileInvalid, match="no eligible machine"):
        instance_from_csv("order,operation,machine,time\nO1,1,,3\n")
    with pytest.raises(InstanceFileInvalid, match="missing column"):
        instance_from_csv("order,machine\n")
    with pytest.raises(InstanceInvalid, match="due date 1 is before"):
        instance_from_csv("order,operation,machine,time,release,due\nO1,1,M1,3,5,1\n")


def test_load_instance_prefixes_the_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fjs"
    bad.write_text("1 2\n1 1 3 4\n")
    with pytest.raises(InstanceFileInvalid, match=r"bad.fjs: line 2: unknown machine 3"):
        load_instance(bad)
    js = tmp_path / "bad.json"
    js.write_text('{"machines": [\n  oops]}')
    with pytest.raises(InstanceFileInvalid, match="line 2: invalid JSON"):
        load_instance(js)


def test_exports() -> None:
    from gongyun.apps.scheduling.domain.compiled import compile_instance
    from gongyun.apps.scheduling.domain.dispatch import dispatch

    inst = factory()
    c = compile_instance(inst)
    m, s = dispatch(c)
    sched = c.to_schedule(m, s)
    rows = schedule_to_csv(inst, sched).splitlines()
    assert rows[0] == "order,operation,machine,start,end" and len(rows) == 11
    data = json.loads(schedule_to_json(sched))
    assert len(data["assignments"]) == 10 and data["makespan"] == sched.makespan
