"""The worked example: one 8-hour shift with breaks, unplanned stops, slow cycles and rejects.

Shift 06:00-14:00 (480 min) with breaks 09:00-09:15, 11:30-12:00 and 13:00-13:15 (60 min
planned), unplanned stops of 20, 15 and 12 min (47 min), ideal cycle 1.0 s, 19,271 parts of
which 423 rejects. The known answer: A = 373/420 = 88.81 %, P = 19,271 s / 22,380 s = 86.11 %,
Q = 18,848/19,271 = 97.80 %, OEE = 18,848 s / 25,200 s = 74.79 %.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from gongyun.apps.oee.domain.calendar import ShiftCalendar

US = 1_000_000
DAY = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
T0 = int(DAY.replace(hour=6).timestamp()) * US
T1 = int(DAY.replace(hour=14).timestamp()) * US
GOOD, SCRAP, IDEAL_S = 18_848, 423, 1.0
CALENDAR = {
    "tz": "UTC",
    "shifts": [
        {
            "name": "A",
            "start": "06:00",
            "end": "14:00",
            "breaks": [
                {"start": "09:00", "end": "09:15"},
                {"start": "11:30", "end": "12:00", "reason": "meal"},
                {"start": "13:00", "end": "13:15"},
            ],
        }
    ],
}
STOPS = [("07:10", "07:30"), ("10:00", "10:15"), ("12:30", "12:42")]
BREAKS = [("09:00", "09:15"), ("11:30", "12:00"), ("13:00", "13:15")]
EXPECTED = {
    "availability": 373 / 420,
    "performance": (GOOD + SCRAP) * IDEAL_S / (373 * 60),
    "quality": GOOD / (GOOD + SCRAP),
    "oee": GOOD * IDEAL_S / (420 * 60),
}
PUBLISHED = {"availability": 0.8881, "performance": 0.8611, "quality": 0.9780, "oee": 0.7479}


def _at(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return int(DAY.replace(hour=h, minute=m).timestamp()) * US


def calendar() -> ShiftCalendar:
    """The shift calendar of the example."""
    return ShiftCalendar.parse(CALENDAR)


def samples() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1 Hz samples over the shift: timestamps, running flag, good and scrap counter readings."""
    ts = np.arange(T0, T1, US, dtype=np.int64)
    running = np.ones(ts.size)
    for a, b in STOPS + BREAKS:
        running[(ts >= _at(a)) & (ts < _at(b))] = 0
    done = np.cumsum(running)  # running seconds completed, this one included
    total = done[-1]
    good = np.floor(done * GOOD / total)
    scrap = np.floor(done * SCRAP / total)
    return ts, running, good, scrap
