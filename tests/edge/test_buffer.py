"""The store-and-forward buffer: sequence numbers, order, restarts, bounds, kill -9."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.edge.buffer import Buffer


def samples(n: int, start: int = 0, tag: str = "t") -> list[Sample]:
    now = datetime.now(UTC)
    return [Sample(TagRef("dev", tag), start + i, now, Quality.good) for i in range(n)]


def test_sequence_order_ack_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buf = Buffer(path)
    stamped = buf.append(samples(5))
    assert [s.seq for s in stamped] == [1, 2, 3, 4, 5]
    assert [s.value for s in buf.read(0, 10)] == [0, 1, 2, 3, 4]
    assert [s.seq for s in buf.read(2, 2)] == [3, 4]
    assert buf.ack(3) == 3 and buf.depth == 2
    buf.append([Sample(TagRef("dev", "s"), "text", datetime.now(UTC), Quality.bad)])
    buf.close()
    again = Buffer(path)
    assert again.acked == 3 and again.depth == 3 and again.next_seq == 7
    rows = again.read(again.acked, 10)
    assert [(s.seq, s.value, s.quality) for s in rows] == [
        (4, 3, Quality.good),
        (5, 4, Quality.good),
        (6, "text", Quality.bad),
    ]
    again.ack(6)
    again.close()
    third = Buffer(path)  # sequence numbers are never reused, even when the buffer was emptied
    assert third.append(samples(1))[0].seq == 7
    third.close()


def test_age_bound_drops_oldest_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buf = Buffer(tmp_path / "b.db", max_age_s=0.2)
    buf.append(samples(10))
    time.sleep(0.3)
    buf.append(samples(5, start=10))
    with caplog.at_level(logging.WARNING, logger="gongyun.edge.buffer"):
        buf.enforce()
    assert [s.value for s in buf.read(0, 100)] == [10, 11, 12, 13, 14]
    assert buf.dropped["age"] == 10
    assert "dropped 10 oldest samples, seq 1..10" in caplog.text
    buf.close()
    assert Buffer(tmp_path / "b.db").dropped["age"] == 10


def test_size_bound_drops_oldest_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=20_000)
    with caplog.at_level(logging.WARNING, logger="gongyun.edge.buffer"):
        for i in range(20):
            buf.append(samples(20, start=i * 20))
    assert buf.size <= 20_000
    kept = [s.value for s in buf.read(0, 10_000)]
    assert kept == list(range(400 - len(kept), 400))  # the newest survive, contiguous
    assert buf.dropped["size"] == 400 - len(kept) > 0
    assert "policy drop-oldest" in caplog.text
    buf.close()


WRITER = """
import sys
from datetime import UTC, datetime
from gongyun.core.types import Quality, Sample, TagRef
from gongyun.edge.buffer import Buffer
buf = Buffer(sys.argv[1])
i = 0
while True:
    batch = [Sample(TagRef("d", "t"), i + k, datetime.now(UTC), Quality.good) for k in range(50)]
    out = buf.append(batch)
    i += 50
    print(out[-1].seq, flush=True)
"""


def test_kill_9_loses_no_committed_sample(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    last = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            last = int(line)
            if last >= 5000:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    buf = Buffer(path)
    seqs = [s.seq for s in buf.read(0, 1_000_000)]
    assert seqs[:last] == list(range(1, last + 1))  # every acknowledged append is there, in order
    assert buf.next_seq == seqs[-1] + 1
    buf.close()


def test_epoch_identifies_the_buffer_file(tmp_path: Path) -> None:
    first = Buffer(tmp_path / "a.db")
    epoch = first.epoch
    first.close()
    assert Buffer(tmp_path / "a.db").epoch == epoch != 0
    assert Buffer(tmp_path / "b.db").epoch != epoch


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 40)),
            st.tuples(st.just("ack"), st.integers(0, 60)),
            st.tuples(st.just("reopen"), st.just(0)),
        ),
        max_size=25,
    )
)
def test_buffer_invariants_under_any_history(tmp_path: Path, ops: list[tuple[str, int]]) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    buf = Buffer(path)
    expected: list[int] = []  # values still to deliver, in order
    value = 0
    for op, n in ops:
        if op == "append":
            buf.append(samples(n, start=value))
            expected += list(range(value, value + n))
            value += n
        elif op == "ack":
            rows = buf.read(buf.acked, n)
            if rows:
                buf.ack(rows[-1].seq or 0)
                expected = expected[len(rows) :]
        else:
            buf.close()
            buf = Buffer(path)
        rows = buf.read(buf.acked, 10_000)
        assert [s.value for s in rows] == expected
        seqs = [s.seq or 0 for s in rows]
        assert seqs == list(range(buf.next_seq - len(rows), buf.next_seq))
        assert buf.depth == len(rows)
    buf.close()
