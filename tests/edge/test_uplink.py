"""The platform side of the uplink: duplicates dropped by sequence number, new buffers recognised."""

from __future__ import annotations

from datetime import UTC, datetime

from gongyun.core.types import Quality, Sample
from gongyun.edge.codec import DataType
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.uplink import EPOCH_METRIC, SEQ_PROP, spb_type
from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.decode import Metric, Metrics


def data(*seqs: int, quality: int = 192) -> Metrics:
    now = datetime.now(UTC)
    return Metrics.of(
        [Metric("pump1/flow", float(s), now, 10, {SEQ_PROP: s, "Quality": quality}) for s in seqs]
    )


def birth(epoch: int) -> Metrics:
    return Metrics.of([Metric(EPOCH_METRIC, epoch, datetime.now(UTC), 4, {})])


def test_receiver_drops_duplicates_and_resets_on_new_epoch() -> None:
    got: list[Sample] = []
    rx = UplinkReceiver(("127.0.0.1", 1), "g", lambda key, s: got.extend(s))
    rx._on_data("g/gw", None, birth(11), "NBIRTH")
    rx._on_data("g/gw", None, data(1, 2, 3), "NDATA")
    rx._on_data("g/gw", None, data(2, 3, 4), "NDATA")  # replay after a reconnect
    assert [s.seq for s in got] == [1, 2, 3, 4] and rx.duplicates == 2
    rx._on_data("g/gw", None, birth(11), "NBIRTH")  # same buffer, a rebirth: keep counting
    rx._on_data("g/gw", None, data(4, 5), "NDATA")
    assert [s.seq for s in got][-1] == 5 and rx.duplicates == 3
    rx._on_data("g/gw", None, birth(12), "NBIRTH")  # the gateway's buffer was replaced
    rx._on_data("g/gw", None, data(1, 2, quality=0), "NDATA")
    assert [s.seq for s in got][-2:] == [1, 2]
    assert got[-1].quality is Quality.bad and str(got[-1].tag) == "pump1/flow"


def test_receiver_drops_data_after_a_gap_until_the_replay() -> None:
    """Sequence numbers missing (messages lost on the way): nothing past the gap is taken or confirmed
    until the gateway's next birth, whose replay fills the gap; each sample is kept once, in order."""
    got: list[Sample] = []
    rx = UplinkReceiver(("127.0.0.1", 1), "g", lambda key, s: got.extend(s))
    rx._on_data("g/gw", None, birth(11), "NBIRTH")
    rx._on_data("g/gw", None, data(1, 2, 3), "NDATA")
    rx._on_data("g/gw", None, data(6, 7), "NDATA")  # 4 and 5 were lost
    rx._on_data("g/gw", None, data(8), "NDATA")
    assert [s.seq for s in got] == [1, 2, 3] and rx.gaps == 1 and rx.confirmed["g/gw"] == 3
    rx._on_data("g/gw", None, birth(11), "NBIRTH")  # the rebirth it asked for: the gateway replays
    rx._on_data("g/gw", None, data(2, 3, 4, 5, 6, 7, 8), "NDATA")
    assert [s.seq for s in got] == list(range(1, 9)) and rx.gaps == 1


def test_published_types() -> None:
    assert spb_type(DataType.uint16, scaled=False) is spb.SpbType.Int64
    assert spb_type(DataType.uint16, scaled=True) is spb.SpbType.Double
    assert spb_type(DataType.bool, scaled=False) is spb.SpbType.Boolean
    assert spb_type(DataType.string, scaled=False) is spb.SpbType.String


def test_metric_values_survive_odd_inputs() -> None:
    cases = [
        (spb.SpbType.Int64, "12", 12),
        (spb.SpbType.Int64, 2**60 + 1, 2**60 + 1),
        (spb.SpbType.Int32, -5, -5),
        (spb.SpbType.Int64, float("nan"), None),
        (spb.SpbType.Double, "RUNNING", None),
        (spb.SpbType.Double, "1.5", 1.5),
        (spb.SpbType.Boolean, "true", True),
        (spb.SpbType.String, 42, "42"),
        (spb.SpbType.Int64, None, None),
    ]
    for dtype, value, expected in cases:
        payload = spb.Payload()
        metric = payload.metrics.add()
        spb.set_metric_value(metric, value, dtype)
        assert spb.metric_value(spb.parse(payload.SerializeToString()).metrics[0]) == expected, (dtype, value)
