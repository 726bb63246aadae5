"""The machine state model: states derived from mapped tags into a timeline where gaps are unknown.

Each sample stands for ``sample_period_s`` seconds from its timestamp, cut short by the next
sample; time no sample covers is ``unknown`` (never running). Mappings:

- ``state_tag``: a tag of integer codes, each code mapped to a state (all codes must be mapped)
- ``running_flag``: non-zero is running, zero is ``stopped_state``
- ``speed``: at or above ``threshold`` is running, below is ``stopped_state``
- ``counts``: a counter tag; a sample whose counter rose since the previous one is running
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import numpy as np

from gongyun.apps.oee.errors import OeeInputInvalid

US = 1_000_000


class MachineState(IntEnum):
    """States of a machine (the integer is what a timeline stores)."""

    unknown = 0
    running = 1
    idle = 2
    down_planned = 3
    down_unplanned = 4
    setup = 5


STATE_NAMES = {s.name: s for s in MachineState}
Mode = Literal["state_tag", "running_flag", "speed", "counts"]
MODES: tuple[str, ...] = ("state_tag", "running_flag", "speed", "counts")


def _state(name: object, where: str) -> MachineState:
    if isinstance(name, MachineState):
        return name
    if not isinstance(name, str) or name not in STATE_NAMES or name == "unknown":
        raise OeeInputInvalid(
            f"{where}: {name!r} is not a state (use {', '.join(n for n in STATE_NAMES if n != 'unknown')})",
            reason="state_mapping",
        )
    return STATE_NAMES[name]


@dataclass(frozen=True)
class StateMapping:
    """How a machine's state is read from its tags."""

    mode: Mode
    tag: str
    codes: dict[int, MachineState] = field(default_factory=dict)
    threshold: float | None = None
    stopped_state: MachineState = MachineState.down_unplanned
    sample_period_s: float = 1.0

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> StateMapping:
        """A mapping from its JSON form; one that leaves a state undefined is refused."""
        mode = spec.get("mode")
        if mode not in MODES:
            raise OeeInputInvalid(f"mapping mode must be one of {', '.join(MODES)}", reason="state_mapping")
        tag = spec.get("tag")
        if not isinstance(tag, str) or not tag:
            raise OeeInputInvalid("the mapping needs the tag it reads", reason="state_mapping")
        period = float(spec.get("sample_period_s", 1.0))
        if not period > 0:
            raise OeeInputInvalid("sample_period_s must be positive", reason="state_mapping")
        codes: dict[int, MachineState] = {}
        threshold = None
        if mode == "state_tag":
            raw = spec.get("codes")
            if not isinstance(raw, Mapping) or not raw:
                raise OeeInputInvalid("a state tag mapping must map codes to states", reason="state_mapping")
            for code, name in raw.items():
                if name is None:
                    raise OeeInputInvalid(f"state code {code} is left undefined", reason="state_mapping")
                codes[int(code)] = _state(name, f"state code {code}")
            if MachineState.running not in codes.values():
                raise OeeInputInvalid("no state code maps to running", reason="state_mapping")
        elif "stopped_state" in spec and spec["stopped_state"] is None:
            raise OeeInputInvalid("the state when not running is left undefined", reason="state_mapping")
        if mode == "speed":
            if spec.get("threshold") is None:
                raise OeeInputInvalid("a speed mapping needs a threshold", reason="state_mapping")
            threshold = float(spec["threshold"])
        stopped = _state(spec.get("stopped_state", "down_unplanned"), "stopped_state")
        if stopped == MachineState.running:
            raise OeeInputInvalid("the stopped state cannot be running", reason="state_mapping")
        return cls(mode, tag, codes, threshold, stopped, period)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        d: dict[str, Any] = {
            "mode": self.mode,
            "tag": self.tag,
            "sample_period_s": self.sample_period_s,
            "stopped_state": self.stopped_state.name,
        }
        if self.codes:
            d["codes"] = {str(k): v.name for k, v in self.codes.items()}
        if self.threshold is not None:
            d["threshold"] = self.threshold
        return d

    def classify(self, values: np.ndarray) -> np.ndarray:
        """The state of each value (counts mode: of each increment); unmapped codes are unknown."""
        v = np.asarray(values, dtype=np.float64)
        if self.mode == "state_tag":
            out = np.zeros(v.size, dtype=np.int8)
            for code, st in self.codes.items():
                out[v == code] = int(st)
            return out
        if self.mode == "running_flag":
            run = v != 0
        elif self.mode == "speed":
            assert self.threshold is not None
            run = v >= self.threshold
        else:
            run = v > 0
        return np.where(run, int(MachineState.running), int(self.stopped_state)).astype(np.int8)

    @property
    def uses_increments(self) -> bool:
        """True when states come from a counter's increments (counts mode)."""
        return self.mode == "counts"


@dataclass(frozen=True)
class Timeline:
    """Segments [starts[i], ends[i]) in state ``states[i]`` (µs), sorted, not overlapping."""

    starts: np.ndarray
    ends: np.ndarray
    states: np.ndarray

    @classmethod
    def empty(cls) -> Timeline:
        """No segments."""
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8))

    def __len__(self) -> int:
        return int(self.starts.size)

    def merged(self) -> Timeline:
        """Adjacent segments of one state joined."""
        if len(self) < 2:
            return self
        join = (self.starts[1:] == self.ends[:-1]) & (self.states[1:] == self.states[:-1])
        keep_start = np.concatenate([[True], ~join])
        keep_end = np.concatenate([~join, [True]])
        return Timeline(self.starts[keep_start], self.ends[keep_end], self.states[keep_start])

    def filled(self, start: int, end: int) -> Timeline:
        """The timeline over [start, end) with every uncovered stretch as an unknown segment."""
        s, e, st = self.clip(start, end)
        bounds_s = np.concatenate([[start], e])
        bounds_e = np.concatenate([s, [end]])
        gap = bounds_e > bounds_s
        gs, ge = bounds_s[gap], bounds_e[gap]
        all_s = np.concatenate([s, gs])
        order = np.argsort(all_s, kind="stable")
        return Timeline(
            all_s[order],
            np.concatenate([e, ge])[order],
            np.concatenate([st, np.zeros(gs.size, np.int8)])[order],
        ).merged()

    def clip(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segments cut to [start, end) (empty ones dropped)."""
        lo = int(np.searchsorted(self.ends, start, side="right"))
        hi = int(np.searchsorted(self.starts, end, side="left"))
        s = np.maximum(self.starts[lo:hi], start)
        e = np.minimum(self.ends[lo:hi], end)
        keep = e > s
        return s[keep], e[keep], self.states[lo:hi][keep]

    def durations(self, windows: list[tuple[int, int]]) -> np.ndarray:
        """Seconds spent in each state (index = MachineState) inside the windows; uncovered time
        inside a window counts as unknown."""
        out = np.zeros(len(MachineState), dtype=np.float64)
        for a, b in windows:
            s, e, st = self.clip(a, b)
            out += np.bincount(st.astype(np.int64), weights=(e - s) / US, minlength=len(MachineState))
            out[MachineState.unknown] += (b - a) / US - float(np.sum(e - s)) / US
        return out

    @staticmethod
    def concat(parts: list[Timeline]) -> Timeline:
        """Timelines of consecutive stretches joined (sorted by start)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Timeline.empty()
        s = np.concatenate([p.starts for p in parts])
        order = np.argsort(s, kind="stable")
        return Timeline(
            s[order],
            np.concatenate([p.ends for p in parts])[order],
            np.concatenate([p.states for p in parts])[order],
        ).merged()


def derive_timeline(mapping: StateMapping, ts_us: np.ndarray, values: np.ndarray) -> Timeline:
    """Segments from raw samples: each holds ``sample_period_s`` or until the next sample."""
    ts = np.asarray(ts_us, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if ts.size == 0:
        return Timeline.empty()
    order = np.argsort(ts, kind="stable")
    ts, v = ts[order], v[order]
    if mapping.uses_increments:
        inc = np.concatenate([[np.nan], np.diff(v)])
        states = mapping.classify(np.nan_to_num(inc, nan=0.0))
        states[0] = MachineState.unknown  # the first sample has no increment to judge
    else:
        states = mapping.classify(v)
    hold = int(mapping.sample_period_s * US)
    ends = np.minimum(ts + hold, np.concatenate([ts[1:], [ts[-1] + hold]]))
    keep = ends > ts
    return Timeline(ts[keep], ends[keep], states[keep]).merged()
