"""Shared helpers of the scheduling tests: the Brandimarte folder and small instances."""

from __future__ import annotations

from pathlib import Path

from gongyun.apps.scheduling.domain.model import Instance, Machine, Operation, Order, Setup

REPO = Path(__file__).resolve().parents[3]


def fjsp_dir() -> Path | None:
    """``../shared/data/fjsp`` beside the repository (CI lays shared/ there), or None."""
    for cand in (REPO.parent / "shared" / "data" / "fjsp", Path("/work/shared/data/fjsp")):
        if (cand / "mk01.fjs").is_file():
            return cand
    return None


FT06 = """\
# ft06 in OR-Library format
6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
"""


def factory() -> Instance:
    """A small flexible shop with setups, a calendar, releases, due dates and an assembly tree."""
    machines = [
        Machine("CNC1", unavailable=((20, 25),)),
        Machine("CNC2"),
        Machine("PAINT"),
        Machine("ASSY", unavailable=((0, 3),)),
    ]
    orders = [
        Order("A", product="pump", release=0, due=40, weight=2, lot="LOT-A"),
        Order("B", product="valve", release=5, due=30, weight=1),
        Order("C", product="gear", release=2, due=50, weight=3),
    ]
    ops = [
        Operation("A.1", "A", {"CNC1": 6, "CNC2": 8}, family="steel"),
        Operation("A.2", "A", {"CNC1": 5, "CNC2": 4}, family="alu"),
        Operation("A.3", "A", {"PAINT": 4}, ("A.1",), family="red"),
        Operation("A.4", "A", {"ASSY": 7}, ("A.2", "A.3")),  # assembly of two branches
        Operation("B.1", "B", {"CNC2": 5}, family="alu"),
        Operation("B.2", "B", {"PAINT": 3}, ("B.1",), family="blue"),
        Operation("B.3", "B", {"ASSY": 4, "CNC1": 9}, ("B.2",)),
        Operation("C.1", "C", {"CNC1": 7, "CNC2": 7}, family="steel"),
        Operation("C.2", "C", {"PAINT": 2}, ("C.1",), family="red"),
        Operation("C.3", "C", {"ASSY": 5}, ("C.2",)),
    ]
    setups = [
        Setup("PAINT", "red", "blue", 3),
        Setup("PAINT", "blue", "red", 5),
        Setup("CNC1", "steel", "alu", 2),
        Setup("CNC1", "alu", "steel", 2),
        Setup("CNC2", "steel", "alu", 1),
        Setup("CNC2", "alu", "steel", 1),
    ]
    return Instance("factory", machines, orders, ops, setups)
