"""One bus contract suite, run on the in-process bus and on NATS JetStream at 127.0.0.1:4222."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from gongyun.bus import (
    Bus,
    BusClosed,
    DurableConflict,
    Envelope,
    InvalidBusArgument,
    InvalidSubject,
    Message,
    MessageTooLarge,
    NoStreamForSubject,
    StreamConflict,
    Subscription,
    open_bus,
)
from gongyun.bus.base import MAX_PAYLOAD
from gongyun.errors import BusUnavailable, InvalidInput
from tests.services import NATS_URL, require_service

SHORT_ACK_S = 0.5


@pytest.fixture(params=["memory", "nats"])
def bus_url(request: pytest.FixtureRequest) -> str:
    """A bus URL per backend; named memory brokers let two bus objects share state like two NATS clients."""
    if request.param == "nats":
        require_service("nats")
        return NATS_URL
    return f"memory://test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def bus(bus_url: str) -> AsyncIterator[Bus]:
    b = open_bus(bus_url)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


@dataclass
class Stream:
    name: str
    prefix: str

    def subject(self, *tokens: str) -> str:
        return ".".join((self.prefix, *tokens))


@pytest.fixture
async def stream(bus: Bus) -> AsyncIterator[Stream]:
    tag = uuid.uuid4().hex[:10]
    s = Stream(f"gy_test_{tag}", f"gytest.{tag}")
    await bus.ensure_stream(s.name, [f"{s.prefix}.>"])
    try:
        yield s
    finally:
        await bus.delete_stream(s.name)


async def wait_for(cond: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Poll until ``cond()`` holds; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class Collector:
    """A handler that records deliveries; acks them unless told otherwise."""

    def __init__(self, ack: bool | Callable[[Message], bool] = True, delay_s: float = 0.0) -> None:
        self.msgs: list[Message] = []
        self._ack = ack
        self._delay = delay_s

    async def __call__(self, msg: Message) -> None:
        self.msgs.append(msg)
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._ack is True or (callable(self._ack) and self._ack(msg)):
            await msg.ack()

    @property
    def data(self) -> list[bytes]:
        return [m.data for m in self.msgs]


def durable() -> str:
    return f"d_{uuid.uuid4().hex[:8]}"


async def test_round_trip(bus: Bus, stream: Stream) -> None:
    seq = await bus.publish(stream.subject("line1", "temp"), b"21.5", headers={"content-type": "text/plain"})
    assert seq >= 1
    got = Collector()
    sub = await bus.subscribe(stream.subject(">"), durable=durable(), handler=got, ack_wait_s=SHORT_ACK_S)
    await wait_for(lambda: len(got.msgs) == 1, what="one message")
    msg = got.msgs[0]
    assert (msg.subject, msg.data, msg.seq, msg.num_delivered) == (
        stream.subject("line1", "temp"),
        b"21.5",
        seq,
        1,
    )
    assert msg.headers["content-type"] == "text/plain"
    assert msg.msg_id is None
    await asyncio.sleep(SHORT_ACK_S * 2)
    assert len(got.msgs) == 1, "an acked message must not come back"
    await sub.close()
    assert sub.closed
    await bus.ping()


async def test_per_subject_order(bus: Bus, stream: Stream) -> None:
    subjects = [stream.subject("dev", str(i), "v") for i in range(3)]
    expected: dict[str, list[bytes]] = {s: [] for s in subjects}
    for i in range(500):
        subject = subjects[(i * 7 + i // 3) % 3]
        payload = f"{i}".encode()
        expected[subject].append(payload)
        await bus.publish(subject, payload)
    got = Collector()
    await bus.subscribe(stream.subject("dev", "*", "v"), durable=durable(), handler=got, max_in_flight=64)
    await wait_for(lambda: len(got.msgs) >= 500, what="500 messages")
    for subject in subjects:
        assert [m.data for m in got.msgs if m.subject == subject] == expected[subject]
    seqs = [m.seq for m in got.msgs]
    assert seqs == sorted(seqs)


async def test_close_without_ack_redelivers_to_other_member_at_once(bus: Bus, stream: Stream) -> None:
    payloads = [f"m{i}".encode() for i in range(20)]
    for p in payloads:
        await bus.publish(stream.subject("a"), p)
    name = durable()
    # ack_wait is long: only closing the first member can give its messages back this fast.
    holder = Collector(ack=False)
    first = await bus.subscribe(
        stream.subject("a"), durable=name, handler=holder, ack_wait_s=30, max_in_flight=5
    )
    await wait_for(lambda: len(holder.msgs) == 5, what="5 un-acked messages at the first member")
    await asyncio.sleep(0.2)
    assert len(holder.msgs) == 5, "max_in_flight caps un-acked deliveries"
    await first.close()
    taker = Collector()
    await bus.subscribe(stream.subject("a"), durable=name, handler=taker, ack_wait_s=30, max_in_flight=5)
    await wait_for(
        lambda: set(taker.data) == set(payloads), within=10, what="every message at the second member"
    )
    held = {m.data for m in holder.msgs}
    assert all(m.num_delivered == 2 for m in taker.msgs if m.data in held)
    assert all(m.num_delivered == 1 for m in taker.msgs if m.data not in held)


async def test_closed_connection_redelivers(bus_url: str, bus: Bus, stream: Stream) -> None:
    """A consumer on another connection goes away with un-acked messages; nothing is lost."""
    other = open_bus(bus_url)
    await other.connect()
    name = durable()
    holder = Collector(ack=False)
    await other.subscribe(stream.subject("x"), durable=name, handler=holder, ack_wait_s=30)
    for i in range(10):
        await bus.publish(stream.subject("x"), f"{i}".encode())
    await wait_for(lambda: len(set(holder.data)) == 10, what="deliveries to the departing consumer")
    await other.close()
    taker = Collector()
    await bus.subscribe(stream.subject("x"), durable=name, handler=taker, ack_wait_s=30)
    await wait_for(lambda: len(set(taker.data)) == 10, what="all 10 redelivered")
    assert all(m.num_delivered >= 2 for m in taker.msgs)


async def test_ack_wait_expiry_redelivers(bus: Bus, stream: Stream) -> None:
    for i in range(3):
        await bus.publish(stream.subject("w"), f"{i}".encode())
    got = Collector(ack=lambda m: m.num_delivered >= 2)
    await bus.subscribe(stream.subject("w"), durable=durable(), handler=got, ack_wait_s=1.0)
    await wait_for(lambda: len(got.msgs) >= 6, what="each message twice")
    await asyncio.sleep(1.5)
    assert sorted((m.data, m.num_delivered) for m in got.msgs) == [
        (d, n) for d in (b"0", b"1", b"2") for n in (1, 2)
    ]


async def test_nak_and_failing_handler_redeliver(bus: Bus, stream: Stream) -> None:
    await bus.publish(stream.subject("n"), b"nak-me")
    await bus.publish(stream.subject("f"), b"fail-me")
    seen: list[tuple[bytes, int]] = []

    async def handler(msg: Message) -> None:
        seen.append((msg.data, msg.num_delivered))
        if msg.num_delivered == 1 and msg.data == b"nak-me":
            await msg.nak(delay_s=0.1)
        elif msg.num_delivered == 1:
            raise RuntimeError("handler bug")  # the bus naks it; it comes back
        else:
            await msg.ack()

    await bus.subscribe(stream.subject("*"), durable=durable(), handler=handler, ack_wait_s=30)
    await wait_for(lambda: len(seen) >= 4, what="both messages twice")
    assert sorted(seen) == [(b"fail-me", 1), (b"fail-me", 2), (b"nak-me", 1), (b"nak-me", 2)]


async def test_max_in_flight_bounds_unacked(bus: Bus, stream: Stream) -> None:
    for i in range(10):
        await bus.publish(stream.subject("q"), f"{i}".encode())
    got = Collector(ack=False)
    await bus.subscribe(stream.subject("q"), durable=durable(), handler=got, max_in_flight=3)
    await wait_for(lambda: len(got.msgs) == 3, what="three deliveries")
    await asyncio.sleep(0.3)
    assert len(got.msgs) == 3
    await got.msgs[0].ack()
    await wait_for(lambda: len(got.msgs) == 4, what="a fourth delivery after one ack")


async def test_queue_group_shares_load(bus: Bus, stream: Stream) -> None:
    name = durable()
    a, b = Collector(delay_s=0.002), Collector(delay_s=0.002)
    await bus.subscribe(stream.subject("job", ">"), durable=name, handler=a, max_in_flight=16)
    await bus.subscribe(stream.subject("job", ">"), durable=name, handler=b, max_in_flight=16)
    payloads = {f"{i}".encode() for i in range(300)}
    for i in range(300):
        await bus.publish(stream.subject("job", str(i % 5)), f"{i}".encode())
    await wait_for(lambda: set(a.data) | set(b.data) == payloads, what="all jobs done by the group")
    assert len(a.msgs) >= 15, f"member a took {len(a.msgs)} of 300"
    assert len(b.msgs) >= 15, f"member b took {len(b.msgs)} of 300"
    assert len(a.msgs) + len(b.msgs) == 300, "each message goes to one member"


async def test_msg_id_deduplicates(bus: Bus, stream: Stream) -> None:
    first = await bus.publish(stream.subject("d"), b"one", msg_id="sample-42")
    again = await bus.publish(stream.subject("d"), b"one", msg_id="sample-42")
    other = await bus.publish(stream.subject("d"), b"two", msg_id="sample-43")
    assert first == again
    assert other > first
    got = Collector()
    await bus.subscribe(stream.subject("d"), durable=durable(), handler=got)
    await wait_for(lambda: len(got.msgs) == 2, what="two distinct messages")
    await asyncio.sleep(0.3)
    assert [(m.data, m.msg_id) for m in got.msgs] == [(b"one", "sample-42"), (b"two", "sample-43")]


async def test_wildcard_filters(bus: Bus, stream: Stream) -> None:
    for tokens in [("a", "x"), ("b", "x"), ("a", "y"), ("a", "x", "z")]:
        await bus.publish(stream.subject(*tokens), b".".join(t.encode() for t in tokens))
    star, tail = Collector(), Collector()
    await bus.subscribe(stream.subject("*", "x"), durable=durable(), handler=star)
    await bus.subscribe(stream.subject("a", ">"), durable=durable(), handler=tail)
    await wait_for(lambda: len(star.msgs) == 2 and len(tail.msgs) == 3, what="filtered deliveries")
    await asyncio.sleep(0.3)
    assert star.data == [b"a.x", b"b.x"]
    assert tail.data == [b"a.x", b"a.y", b"a.x.z"]


async def test_durable_resumes_where_it_left_off(bus_url: str, bus: Bus, stream: Stream) -> None:
    name = durable()
    for i in range(10):
        await bus.publish(stream.subject("r"), f"old{i}".encode())
    got = Collector()
    sub = await bus.subscribe(stream.subject("r"), durable=name, handler=got)
    await wait_for(lambda: len(got.msgs) == 10, what="first ten")
    await sub.close()
    for i in range(5):
        await bus.publish(stream.subject("r"), f"new{i}".encode())
    again = open_bus(bus_url)  # a new connection, like a restarted worker
    await again.connect()
    try:
        resumed = Collector()
        await again.subscribe(stream.subject("r"), durable=name, handler=resumed)
        await wait_for(lambda: len(resumed.msgs) == 5, what="the five new messages")
        await asyncio.sleep(0.3)
        assert resumed.data == [f"new{i}".encode() for i in range(5)]
    finally:
        await again.close()


async def test_stream_limits(bus: Bus, stream: Stream) -> None:
    await bus.ensure_stream(stream.name, [f"{stream.prefix}.>"], max_msgs=5)
    for i in range(12):
        await bus.publish(stream.subject("l"), f"{i}".encode())
    got = Collector()
    await bus.subscribe(stream.subject("l"), durable=durable(), handler=got)
    await wait_for(lambda: len(got.msgs) == 5, what="the five newest")
    assert got.data == [f"{i}".encode() for i in range(7, 12)]


@pytest.mark.parametrize("subject", ["", "a..b", "a.b.", ".a", "a b", "a.*", "a.>", "a\tb", "a.b*", 42])
async def test_bad_subject_on_publish(bus: Bus, subject: object) -> None:
    with pytest.raises(InvalidSubject) as err:
        await bus.publish(subject, b"x")  # type: ignore[arg-type]
    assert err.value.code == "bus_subject_invalid"
    assert err.value.status == 400
    assert isinstance(err.value, InvalidInput)


async def test_bad_input_is_refused_clearly(bus: Bus, stream: Stream) -> None:
    handler = Collector()
    with pytest.raises(InvalidSubject):
        await bus.subscribe(stream.subject(">", "a"), durable=durable(), handler=handler)
    with pytest.raises(InvalidBusArgument):
        await bus.subscribe(stream.subject(">"), durable="has.dot", handler=handler)
    with pytest.raises(InvalidBusArgument):
        await bus.subscribe(stream.subject(">"), durable=durable(), handler=handler, ack_wait_s=0)
    with pytest.raises(InvalidBusArgument):
        await bus.publish(stream.subject("a"), "text, not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidBusArgument):
        await bus.publish(stream.subject("a"), b"x", headers={"Nats-Expected-Stream": "x"})
    with pytest.raises(InvalidBusArgument):
        await bus.publish(stream.subject("a"), b"x", headers={"bad key": "x"})
    with pytest.raises(MessageTooLarge) as too_large:
        await bus.publish(stream.subject("a"), b"x" * (MAX_PAYLOAD + 1))
    assert too_large.value.status == 413
    with pytest.raises(NoStreamForSubject):
        await bus.publish(f"nostream.{uuid.uuid4().hex}", b"x")
    with pytest.raises(NoStreamForSubject):
        await bus.subscribe(f"nostream.{uuid.uuid4().hex}.>", durable=durable(), handler=handler)
    with pytest.raises(NoStreamForSubject):  # wider than the stream
        await bus.subscribe(stream.prefix.split(".")[0] + ".>", durable=durable(), handler=handler)
    with pytest.raises(InvalidBusArgument):
        await bus.ensure_stream("bad name", [stream.subject("a")])
    with pytest.raises(InvalidSubject):
        await bus.ensure_stream(f"{stream.name}_2", ["a..b"])
    with pytest.raises(StreamConflict):
        await bus.ensure_stream(f"{stream.name}_2", [stream.subject("a", "*")])
    name = durable()
    await bus.subscribe(stream.subject("a"), durable=name, handler=handler)
    with pytest.raises(DurableConflict):
        await bus.subscribe(stream.subject("b"), durable=name, handler=handler)


async def test_closed_bus_says_so(bus_url: str) -> None:
    b = open_bus(bus_url)
    with pytest.raises(BusClosed):
        await b.publish("a.b", b"x")
    await b.connect()
    await b.ping()
    await b.close()
    with pytest.raises(BusUnavailable):
        await b.ping()


async def test_max_deliver_stops_redelivery(bus: Bus, stream: Stream) -> None:
    await bus.publish(stream.subject("p"), b"poison")
    got = Collector(ack=False)
    await bus.subscribe(stream.subject("p"), durable=durable(), handler=got, ack_wait_s=0.3, max_deliver=2)
    await wait_for(lambda: len(got.msgs) == 2, what="two attempts")
    await asyncio.sleep(1.0)
    assert [m.num_delivered for m in got.msgs] == [1, 2]


async def test_publish_many_keeps_order_and_dedups(bus: Bus, stream: Stream) -> None:
    batch = [Envelope(stream.subject("b", str(i % 3)), f"{i}".encode(), msg_id=f"id{i}") for i in range(600)]
    seqs = await bus.publish_many(batch)
    assert seqs == sorted(seqs) and len(set(seqs)) == 600
    again = await bus.publish_many([batch[5], Envelope(stream.subject("b", "0"), b"fresh", msg_id="id-new")])
    assert again[0] == seqs[5] and again[1] > seqs[-1]
    got = Collector()
    await bus.subscribe(stream.subject("b", "*"), durable=durable(), handler=got)
    await wait_for(lambda: len(got.msgs) == 601, what="601 distinct messages")
    for k in range(3):
        expected = [f"{i}".encode() for i in range(600) if i % 3 == k] + ([b"fresh"] if k == 0 else [])
        assert [m.data for m in got.msgs if m.subject == stream.subject("b", str(k))] == expected
    with pytest.raises(InvalidSubject):
        await bus.publish_many([Envelope(stream.subject("ok"), b"x"), Envelope("bad..subject", b"x")])


async def test_handler_may_close_its_own_subscription(bus: Bus, stream: Stream) -> None:
    for i in range(5):
        await bus.publish(stream.subject("s"), f"{i}".encode())
    name = durable()
    first: list[bytes] = []
    subs: list[Subscription] = []

    async def once(msg: Message) -> None:
        first.append(msg.data)
        await msg.ack()
        await subs[0].close()

    subs.append(await bus.subscribe(stream.subject("s"), durable=name, handler=once, ack_wait_s=30))
    await wait_for(lambda: subs[0].closed, what="the subscription to close itself")
    rest = Collector()
    await bus.subscribe(stream.subject("s"), durable=name, handler=rest, ack_wait_s=30)
    await wait_for(lambda: len(rest.msgs) == 4, what="the other four")
    await asyncio.sleep(0.2)
    assert first == [b"0"]
    assert rest.data == [f"{i}".encode() for i in range(1, 5)]


async def test_in_progress_holds_off_redelivery(bus: Bus, stream: Stream) -> None:
    await bus.publish(stream.subject("long"), b"slow job")
    deliveries: list[int] = []
    finished = asyncio.Event()

    async def slow(msg: Message) -> None:
        deliveries.append(msg.num_delivered)
        for _ in range(5):  # 1.25 s of work against a 0.5 s ack_wait
            await msg.in_progress()
            await asyncio.sleep(0.25)
        await msg.ack()
        finished.set()

    await bus.subscribe(stream.subject("long"), durable=durable(), handler=slow, ack_wait_s=SHORT_ACK_S)
    async with asyncio.timeout(10):
        await finished.wait()
    await asyncio.sleep(SHORT_ACK_S * 2)
    assert deliveries == [1]


async def test_forgotten_consumer_starts_over(bus_url: str, bus: Bus, stream: Stream) -> None:
    # a per-process consumer (forget_after_s) is deleted once idle; a kept one resumes
    for i in range(3):
        await bus.publish(stream.subject("f"), f"{i}".encode())
    forgotten, kept = durable(), durable()
    for name, forget in ((forgotten, 1.0), (kept, None)):
        got = Collector()
        sub = await bus.subscribe(stream.subject("f"), durable=name, handler=got, forget_after_s=forget)
        await wait_for(lambda got=got: len(got.msgs) == 3, what="three messages")  # type: ignore[misc]
        await sub.close()
    await asyncio.sleep(4.0 if bus_url.startswith("nats") else 0.1)  # the server checks idleness lazily
    again = {name: Collector() for name in (forgotten, kept)}
    for name, got in again.items():
        await bus.subscribe(stream.subject("f"), durable=name, handler=got)
    await wait_for(lambda: len(again[forgotten].msgs) == 3, what="the forgotten consumer to start over")
    await asyncio.sleep(0.3)
    assert again[kept].msgs == []
    with pytest.raises(InvalidBusArgument):
        await bus.subscribe(stream.subject("f"), durable=durable(), handler=Collector(), forget_after_s=0)
