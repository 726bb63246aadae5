"""Server-sent events: a line parser and the live streams (sync and async) built on it.

Parsing follows the WHATWG event-stream rules for the fields the server sends (``event``,
``data``, comments); it is a few lines, so no SSE library is pulled in for it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from gongyun_sdk.errors import raise_for_problem

T = TypeVar("T")

# The server sends a keep-alive comment every 15 s; a silent connection is dead after this.
STREAM_READ_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Event:
    """One dispatched event."""

    event: str
    data: str


@dataclass
class EventParser:
    """Turns event-stream lines into events; ``comments`` counts comment lines seen."""

    comments: int = 0
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Event | None:
        """Take one line (without its end of line); return an event when the line ends one."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = Event(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


@dataclass(frozen=True)
class StreamOp(Generic[T]):
    """A live stream: the GET to open, the event name to keep and how to decode its data."""

    path: str
    params: list[tuple[str, str | int | float | bool | None]]
    event: str
    decode: Callable[[Any], T]

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The request opening the stream (a long read timeout: the server sends keep-alives)."""
        timeout = httpx.Timeout(http.timeout.connect, read=STREAM_READ_TIMEOUT_S)
        return http.build_request(
            "GET", self.path, params=self.params, headers={"Accept": "text/event-stream"}, timeout=timeout
        )

    def take(self, parser: EventParser, line: str) -> list[T]:
        """Feed a line; the decoded item when the line completed an event of this stream."""
        event = parser.feed(line)
        if event is None or event.event != self.event:
            return []
        return [self.decode(json.loads(event.data))]


class Stream(Generic[T]):
    """A live stream for the sync client: a context manager and an iterator of decoded events.

    Entering it connects and waits for the server's first block (``: connected``), so a
    point written after ``with`` is delivered on it.
    """

    def __init__(self, http: httpx.Client, op: StreamOp[T]) -> None:
        self._http, self._op = http, op
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._parser = EventParser()
        self._ready: list[T] = []

    def open(self) -> None:
        """Connect (raises the API error when the server refuses)."""
        if self._response is not None:
            return
        response = self._http.send(self._op.request(self._http), stream=True)
        if response.is_error:
            response.read()
            response.close()
            raise_for_problem(response)
        self._response, self._lines = response, response.iter_lines()
        for line in self._lines:  # up to the end of the first block
            self._ready += self._op.take(self._parser, line)
            if not line:
                break

    def close(self) -> None:
        """Disconnect."""
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        self.open()
        assert self._lines is not None
        if self._ready:
            return self._ready.pop(0)
        for line in self._lines:
            items = self._op.take(self._parser, line)
            if items:
                return items[0]
        self.close()
        raise StopIteration


class AsyncStream(Generic[T]):
    """A live stream for the async client: an async context manager and an async iterator.

    Entering it connects and waits for the server's first block (``: connected``), so a
    point written after ``async with`` is delivered on it.
    """

    def __init__(self, http: httpx.AsyncClient, op: StreamOp[T]) -> None:
        self._http, self._op = http, op
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._parser = EventParser()
        self._ready: list[T] = []

    async def open(self) -> None:
        """Connect (raises the API error when the server refuses)."""
        if self._response is not None:
            return
        response = await self._http.send(self._op.request(self._http), stream=True)
        if response.is_error:
            await response.aread()
            await response.aclose()
            raise_for_problem(response)
        self._response, self._lines = response, response.aiter_lines()
        async for line in self._lines:  # up to the end of the first block
            self._ready += self._op.take(self._parser, line)
            if not line:
                break

    async def aclose(self) -> None:
        """Disconnect."""
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        await self.open()
        assert self._lines is not None
        if self._ready:
            return self._ready.pop(0)
        async for line in self._lines:
            items = self._op.take(self._parser, line)
            if items:
                return items[0]
        await self.aclose()
        raise StopAsyncIteration
