"""Health index 0-100 of equipment and its roll-up over the asset tree (no database here).

An equipment's health is the lowest of what is known of it: the anomaly score relative to its
detector's threshold (100 up to half the threshold, 0 at twice it) and the remaining useful life
relative to the RUL cap. A group (line, area, site: the prefixes of an equipment's asset path) has
two figures: its worst child, and the mean weighted by each equipment's weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def health_index(
    score_ratio: float | None = None, rul: float | None = None, cap: float = 125.0
) -> float | None:
    """Health 0-100 from the anomaly score / threshold ratio and the RUL (None when neither is known)."""
    parts = []
    if score_ratio is not None:
        parts.append(100.0 * min(1.0, max(0.0, (2.0 - score_ratio) / 1.5)))
    if rul is not None:
        parts.append(100.0 * min(1.0, max(0.0, rul / cap)))
    return round(min(parts), 1) if parts else None


@dataclass(frozen=True)
class Equipment:
    """One equipment's health for the roll-up."""

    name: str
    path: str  # "site/area/line", may be empty
    health: float | None
    weight: float = 1.0


@dataclass
class Group:
    """A node of the asset tree with the health of what is under it."""

    path: str
    worst: float | None
    weighted: float | None
    equipment: int
    worst_equipment: str | None


def rollup(items: Iterable[Equipment]) -> list[Group]:
    """Every prefix of every equipment's path (and the root ``""``), with worst and weighted health."""
    acc: dict[str, list[Equipment]] = {}
    for e in items:
        parts = [p for p in e.path.split("/") if p]
        for i in range(len(parts) + 1):
            acc.setdefault("/".join(parts[:i]), []).append(e)
    out = []
    for path in sorted(acc):
        known = [e for e in acc[path] if e.health is not None]
        worst = min(known, key=lambda e: e.health or 0.0) if known else None
        total_w = sum(e.weight for e in known)
        weighted = sum((e.health or 0.0) * e.weight for e in known) / total_w if total_w > 0 else None
        out.append(
            Group(
                path,
                worst.health if worst else None,
                round(weighted, 1) if weighted is not None else None,
                len(acc[path]),
                worst.name if worst else None,
            )
        )
    return out
