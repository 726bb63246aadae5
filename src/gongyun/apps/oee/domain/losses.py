"""Losses: downtime events, micro-stops, the six big losses, the reason tree and Pareto charts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gongyun.apps.oee.domain.kpi import Quantities, TimeElements
from gongyun.apps.oee.domain.states import MachineState, Timeline
from gongyun.apps.oee.errors import OeeInputInvalid

US = 1_000_000
SIX_BIG_LOSSES = (
    "breakdowns",
    "setup_adjustments",
    "minor_stops",
    "reduced_speed",
    "process_defects",
    "reduced_yield",
)
STOP_STATES = (MachineState.down_unplanned, MachineState.idle, MachineState.setup, MachineState.unknown)
UNCODED = "uncoded"


@dataclass(frozen=True)
class StopEvent:
    """A stretch of not running inside planned busy time."""

    machine: str
    start: int
    end: int
    state: MachineState
    shift: str = ""

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return (self.end - self.start) / US

    def micro(self, threshold_s: float) -> bool:
        """True for a micro-stop: an unplanned stop or idle shorter than the threshold."""
        stop = self.state in (MachineState.down_unplanned, MachineState.idle)
        return stop and self.duration_s < threshold_s


def stop_events(machine: str, timeline: Timeline, windows: Sequence[tuple[int, int, str]]) -> list[StopEvent]:
    """Each maximal non-running segment inside each (start, end, shift) window, as an event."""
    out = []
    for a, b, shift in windows:
        s, e, st = timeline.filled(a, b).clip(a, b)
        for i in np.flatnonzero(st != MachineState.running):
            out.append(StopEvent(machine, int(s[i]), int(e[i]), MachineState(int(st[i])), shift))
    return out


def six_big_losses(
    te: TimeElements,
    q: Quantities,
    ideal_cycle_s: float,
    events: Iterable[StopEvent],
    micro_stop_s: float,
    startup_scrap: float = 0.0,
) -> dict[str, float]:
    """Seconds of PBT lost to each of the six big losses (quality losses as ideal-cycle time).

    breakdowns: unplanned stops at least ``micro_stop_s`` long and unknown time; minor stops:
    shorter unplanned stops and idle time; reduced speed: APT - PRI·PQ; process defects and
    reduced yield: PRI·scrap, split by ``startup_scrap`` (rejects made while starting up).
    """
    evs = list(events)
    micro = sum(e.duration_s for e in evs if e.micro(micro_stop_s))
    startup = min(max(startup_scrap, 0.0), q.scrap)
    return {
        "breakdowns": max(0.0, te.adet + te.idle + te.unknown - micro),
        "setup_adjustments": te.aust,
        "minor_stops": micro,
        "reduced_speed": max(0.0, te.apt - ideal_cycle_s * q.produced),
        "process_defects": ideal_cycle_s * (q.scrap - startup),
        "reduced_yield": ideal_cycle_s * startup,
    }


@dataclass(frozen=True)
class Reason:
    """A node of a tenant's reason tree."""

    code: str
    name_en: str
    name_zh: str
    parent: str | None = None
    loss: str = "breakdowns"  # the six-big-loss category it books to

    def name(self, lang: str) -> str:
        """The name in ``lang`` (zh-CN or English)."""
        return self.name_zh if lang == "zh-CN" else self.name_en


def reason_tree(nodes: Iterable[Mapping[str, Any]]) -> dict[str, Reason]:
    """A checked reason tree: unique codes, both names, known parents, no cycles, known loss."""
    tree: dict[str, Reason] = {}
    for n in nodes:
        code = str(n.get("code", "")).strip()
        if not code or len(code) > 64:
            raise OeeInputInvalid("every reason needs a code of 1-64 characters", reason="reason_tree")
        if code in tree:
            raise OeeInputInvalid(f"reason code {code!r} appears twice", reason="reason_tree")
        en, zh = str(n.get("name_en", "")).strip(), str(n.get("name_zh", "")).strip()
        if not en or not zh:
            raise OeeInputInvalid(f"reason {code!r} needs English and Chinese names", reason="reason_tree")
        loss = str(n.get("loss", "breakdowns"))
        if loss not in SIX_BIG_LOSSES:
            raise OeeInputInvalid(
                f"reason {code!r}: loss must be one of {', '.join(SIX_BIG_LOSSES)}", reason="reason_tree"
            )
        parent = n.get("parent")
        tree[code] = Reason(code, en, zh, str(parent) if parent else None, loss)
    for r in tree.values():
        seen, cur = {r.code}, r.parent
        while cur is not None:
            if cur not in tree:
                raise OeeInputInvalid(f"reason {r.code!r}: no parent {cur!r}", reason="reason_tree")
            if cur in seen:
                raise OeeInputInvalid(f"reason tree has a cycle through {cur!r}", reason="reason_tree")
            seen.add(cur)
            cur = tree[cur].parent
    return tree


def pareto(items: Iterable[tuple[str, float]]) -> list[dict[str, Any]]:
    """Totals by key, largest first, with each one's share and the cumulative share."""
    totals: dict[str, float] = {}
    for key, value in items:
        totals[key] = totals.get(key, 0.0) + value
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    whole = sum(totals.values())
    out, cum = [], 0.0
    for key, value in ranked:
        cum += value
        out.append(
            {
                "key": key,
                "seconds": value,
                "share": value / whole if whole else 0.0,
                "cumulative": cum / whole if whole else 0.0,
            }
        )
    return out
