"""Pure checks of subject syntax, matching and bus URLs (no backend)."""

from __future__ import annotations

import pytest

from gongyun.bus import InvalidBusArgument, InvalidSubject, open_bus, subject_matches, validate_subject
from gongyun.bus.base import filters_overlap, subject_is_subset
from gongyun.bus.memory import MemoryBus
from gongyun.bus.nats import NatsBus
from gongyun.errors import BusUnavailable, InvalidInput
from tests.services import free_port


@pytest.mark.parametrize(
    ("flt", "subject", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.x.c", True),
        ("a.*.c", "a.x.y.c", False),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c.d", True),
        ("a.>", "a", False),
        (">", "anything.at.all", True),
        ("*", "one", True),
        ("*", "one.two", False),
        ("a.*", "b.x", False),
    ],
)
def test_subject_matches(flt: str, subject: str, expected: bool) -> None:
    assert subject_matches(flt, subject) is expected


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("a.>", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*.c", "a.b.*", True),
        ("a.b", "a.c", False),
        (">", "x.y", True),
        ("a.>", "a", False),
    ],
)
def test_filters_overlap(a: str, b: str, overlap: bool) -> None:
    assert filters_overlap(a, b) is overlap
    assert filters_overlap(b, a) is overlap


@pytest.mark.parametrize(
    ("sub", "sup", "subset"),
    [
        ("a.b", "a.>", True),
        ("a.*", "a.>", True),
        ("a.>", "a.>", True),
        ("a.>", "a.*", False),
        ("a.*", "a.b", False),
        ("a.b.c", "a.*.c", True),
        (">", "a.>", False),
        ("a", "a.>", False),
    ],
)
def test_subject_is_subset(sub: str, sup: str, subset: bool) -> None:
    assert subject_is_subset(sub, sup) is subset


def test_validate_subject_wildcards() -> None:
    assert validate_subject("a.*.>", wildcards=True) == "a.*.>"
    with pytest.raises(InvalidSubject):
        validate_subject("a.>.b", wildcards=True)
    with pytest.raises(InvalidSubject):
        validate_subject("a." + "b" * 600)


def test_open_bus_urls() -> None:
    assert isinstance(open_bus("memory://"), MemoryBus)
    assert open_bus("nats://127.0.0.1:4222").scheme == "nats"
    for bad in ("kafka://x", "nonsense", "memory://?max_msgs=lots", "memory://?max_msgs=0"):
        with pytest.raises(InvalidBusArgument):
            open_bus(bad)


async def test_named_memory_brokers_are_shared_and_private_ones_are_not() -> None:
    a, b, c = open_bus("memory://plant"), open_bus("memory://plant"), open_bus("memory://")
    for x in (a, b, c):
        await x.connect()
    await a.ensure_stream("s1", ["shared.>"])
    assert await b.publish("shared.x", b"1") == 1
    with pytest.raises(InvalidInput):
        await c.publish("shared.x", b"1")


async def test_unreachable_nats_is_a_clear_bus_error() -> None:
    bus = NatsBus([f"nats://127.0.0.1:{free_port()}"], connect_timeout_s=1.0)
    with pytest.raises(BusUnavailable) as err:
        await bus.connect()
    assert err.value.code == "bus_unavailable"
    assert err.value.status == 503
    with pytest.raises(BusUnavailable):
        await bus.ping()


def test_nats_credentials_stay_out_of_messages() -> None:
    bus = open_bus("nats://ingest:s3cret@127.0.0.1:4222,nats://127.0.0.1:4223")
    assert isinstance(bus, NatsBus)
    assert bus.where == "nats://***@127.0.0.1:4222, nats://127.0.0.1:4223"
