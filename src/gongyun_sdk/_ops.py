"""Operations written once, run by a sync or an async client.

A resource method only *describes* a call (an ``Op``: method, path, parameters, body), a
page walk (``Pages``) or a live stream (``StreamOp``). The descriptors below bind such a
method to the client's runner, so ``client.assets.create(...)`` returns the asset on the
sync client and an awaitable of it on the async one, and mypy knows both: each typed
method exists once instead of twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import update_wrapper
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import httpx

from gongyun_sdk.errors import raise_for_problem
from gongyun_sdk.sse import AsyncStream, Stream, StreamOp

T = TypeVar("T")
P = ParamSpec("P")
Params = list[tuple[str, str | int | float | bool | None]]


def _json(response: httpx.Response) -> Any:
    return response.json()


def _nothing(response: httpx.Response) -> None:
    return None


def as_is(data: Any) -> Any:
    """Decode an event's JSON as it is (its TypedDict is the method's return type)."""
    return data


@dataclass(frozen=True)
class Op(Generic[T]):
    """One HTTP call and how to turn its answer into ``T``."""

    method: str
    path: str
    params: Params | None = None
    json: Any = None
    form: dict[str, str] | None = None
    decode: Callable[[httpx.Response], T] = _json


def call(method: str, path: str, *, params: Params | None = None, json: Any = None) -> Op[Any]:
    """A call answering JSON (typed by the method that returns it)."""
    return Op(method, path, params=params, json=json)


def call_no_content(method: str, path: str, *, params: Params | None = None, json: Any = None) -> Op[None]:
    """A call answering 204 No Content."""
    return Op(method, path, params=params, json=json, decode=_nothing)


def query(**values: object) -> Params:
    """Query parameters without the ``None`` ones; lists repeat the key; datetimes as ISO 8601."""
    out: Params = []
    for key, value in values.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            if isinstance(item, bool):
                out.append((key, "true" if item else "false"))
            elif isinstance(item, datetime):
                out.append((key, item.isoformat()))
            else:
                out.append((key, str(item)))
    return out


def body(nulls: Iterable[str] = (), **values: object) -> dict[str, object]:
    """A JSON body without the ``None`` members (the server's defaults apply), ``nulls`` sent as null."""
    out: dict[str, object] = {k: v for k, v in values.items() if v is not None}
    out.update((name, None) for name in nulls)
    return out


@dataclass(frozen=True)
class Pages(Generic[T]):
    """A paginated listing: the first page's call, the items of a page, the next page's call."""

    first: Op[Any]
    items: Callable[[Any], list[T]]
    after: Callable[[Op[Any], Any], Op[Any] | None]


class SyncRunner:
    """Runs operations on an ``httpx.Client``."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def run(self, op: Op[T]) -> T:
        """Send the call; raise the API error or decode the answer."""
        response = self.http.request(op.method, op.path, params=op.params, json=op.json, data=op.form)
        raise_for_problem(response)
        return op.decode(response)

    def walk(self, pages: Pages[T]) -> Iterator[T]:
        """Every item of every page, fetching pages as the iteration reaches them."""
        op: Op[Any] | None = pages.first
        while op is not None:
            page = self.run(op)
            yield from pages.items(page)
            op = pages.after(op, page)

    def stream(self, op: StreamOp[T]) -> Stream[T]:
        """A live stream (connects when entered or first iterated)."""
        return Stream(self.http, op)


class AsyncRunner:
    """Runs operations on an ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def run(self, op: Op[T]) -> T:
        """Send the call; raise the API error or decode the answer."""
        response = await self.http.request(op.method, op.path, params=op.params, json=op.json, data=op.form)
        raise_for_problem(response)
        return op.decode(response)

    async def walk(self, pages: Pages[T]) -> AsyncIterator[T]:
        """Every item of every page, fetching pages as the iteration reaches them."""
        op: Op[Any] | None = pages.first
        while op is not None:
            page = await self.run(op)
            for item in pages.items(page):
                yield item
            op = pages.after(op, page)

    def stream(self, op: StreamOp[T]) -> AsyncStream[T]:
        """A live stream (connects when entered or first iterated)."""
        return AsyncStream(self.http, op)


class Sync:
    """Marks a resource bound to the sync client."""


class Async:
    """Marks a resource bound to the async client."""


M = TypeVar("M", Sync, Async)


class Resource(Generic[M]):
    """A group of operations (one API resource) bound to a client's runner."""

    def __init__(self, runner: SyncRunner | AsyncRunner) -> None:
        self._runner = runner


def _bind(build: Callable[..., Any], obj: Resource[Any], runner_step: str) -> Callable[..., Any]:
    """``build`` bound to ``obj``, its description handed to the runner's ``runner_step``."""
    step = getattr(obj._runner, runner_step)

    def bound(*args: Any, **kwargs: Any) -> Any:
        return step(build(obj, *args, **kwargs))

    return update_wrapper(bound, build)


class operation(Generic[P, T]):
    """Decorates a method returning ``Op[T]``: the sync client returns T, the async one awaits it."""

    def __init__(self, build: Callable[Concatenate[Any, P], Op[T]]) -> None:
        self._build = build

    @overload
    def __get__(self, obj: Resource[Sync], owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Resource[Any], owner: type) -> Callable[P, Any]:
        return _bind(self._build, obj, "run")


class paginated(Generic[P, T]):
    """Decorates a method returning ``Pages[T]``: an iterator (sync) or async iterator of items."""

    def __init__(self, build: Callable[Concatenate[Any, P], Pages[T]]) -> None:
        self._build = build

    @overload
    def __get__(self, obj: Resource[Sync], owner: type) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Resource[Any], owner: type) -> Callable[P, Any]:
        return _bind(self._build, obj, "walk")


class streaming(Generic[P, T]):
    """Decorates a method returning ``StreamOp[T]``: a ``Stream`` (sync) or ``AsyncStream``."""

    def __init__(self, build: Callable[Concatenate[Any, P], StreamOp[T]]) -> None:
        self._build = build

    @overload
    def __get__(self, obj: Resource[Sync], owner: type) -> Callable[P, Stream[T]]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type) -> Callable[P, AsyncStream[T]]: ...
    def __get__(self, obj: Resource[Any], owner: type) -> Callable[P, Any]:
        return _bind(self._build, obj, "stream")
