"""Scheme adapters: GS1 Digital Link, OIDs and Ecodes resolved onto the same records.

An adapter parses and validates its own syntax, turns a key into reverse-lookup
criteria (most specific first) and mounts its HTTP endpoints on a node. Built-in and
third-party adapters alike register under the ``gongyun.idschemes`` entry-point group.
An adapter that also offers ``planners()`` (the built-ins do) has its endpoints answered
on a SQLite node by the lean server's hook without the ASGI app: the planner parses the
request into lookups, the lookups run as point reads, the plan's answer is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import orjson
from sqlalchemy import func, select

from gongyun.db import utcnow
from gongyun.idres.answers import AnswerCache, answer_ttls, note_ttl
from gongyun.idres.asgi import AsgiApp, Handler, Request, Response, build_request, error_response, http_bytes
from gongyun.idres.localread import SqliteReader
from gongyun.idres.models import IdRecord, IdValue
from gongyun.idres.registry import Record, Registry
from gongyun.idres.values import encode_values, load_stored

log = logging.getLogger(__name__)
Lookup = Callable[[list[dict[str, str]]], Awaitable[Record | None]]
SyncLookup = Callable[[list[dict[str, str]]], Record | None]


@dataclass(slots=True)
class Plan:
    """A parsed scheme request: the lookups it needs (each a list of candidate criteria) and
    how to answer from their results (one record or None per lookup, in order)."""

    lookups: list[list[dict[str, str]]]
    answer: Callable[[list[Record | None]], Response]


Planner = Callable[[Request], Plan | Response]
"""Parses a request into a ``Plan`` (or answers it at once); raises ``GongyunError`` on bad input."""


class SchemeAdapter(Protocol):
    """What a scheme module provides."""

    @property
    def name(self) -> str:
        """The scheme's name (``gs1``, ``oid``...)."""
        ...

    def install(self, app: AsgiApp, lookup: Lookup) -> None:
        """Mount the scheme's endpoints."""
        ...


@runtime_checkable
class PlannedAdapter(SchemeAdapter, Protocol):
    """An adapter whose endpoints are planners: the node can answer them without the ASGI app."""

    def planners(self) -> dict[str, Planner]:
        """Mount prefix -> planner of each endpoint served this way."""
        ...


def planned(planner: Planner, lookup: Lookup) -> Handler:
    """The ASGI handler of a planner: plan, look up, answer."""

    async def handler(req: Request) -> Response:
        plan = planner(req)
        if isinstance(plan, Response):
            return plan
        return plan.answer([await lookup(c) for c in plan.lookups])

    return handler


def record_response(head: dict[str, Any], rec: Record) -> Response:
    """200: the ``head`` members, the record's identifier and its public values (as stored, if known)."""
    values = (
        rec.public_json.encode() if rec.public_json is not None else orjson.dumps(encode_values(rec.values))
    )
    return Response(200, orjson.dumps({**head, "handle": rec.handle})[:-1] + b',"values":' + values + b"}")


def _split(criteria: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    wanted = {k: v[:255] for k, v in criteria.items() if not k.startswith("!")}
    return wanted, {k[1:] for k in criteria if k.startswith("!")}


def _most_selective(wanted: dict[str, str]) -> tuple[str, str]:
    # a GTIN is the value shared by the most records (every lot and serial of a product)
    return min(wanted.items(), key=lambda kv: kv[0] == "GS1_GTIN")


def _first(rows: Iterable[tuple[str, str, int]], wanted: dict[str, str], excluded: set[str]) -> Record | None:
    """The first record (public values) carrying every wanted value and none of the excluded types."""
    for handle, public_json, min_ttl in rows:
        public = load_stored(orjson.loads(public_json))
        texts = {(v.type, v.text()[:255]) for v in public}
        if all(item in texts for item in wanted.items()) and not excluded & {v.type for v in public}:
            note_ttl(float(min_ttl))
            return Record(handle, public, 0, utcnow(), public_json)
    return None


def make_sync_lookup(reader: SqliteReader) -> SyncLookup:
    """``make_lookup`` on a SQLite file: point reads on the worker's own connection."""

    def lookup(candidates: list[dict[str, str]]) -> Record | None:
        for criteria in candidates:
            wanted, excluded = _split(criteria)
            if wanted:
                rec = _first(reader.by_value(*_most_selective(wanted)), wanted, excluded)
                if rec is not None:
                    return rec
        return None

    return lookup


def make_lookup(registry: Registry, tenant_id: str | None, reader: SqliteReader | None = None) -> Lookup:
    """The first record (public values) matching one of the criteria, tried in order.

    A key ``"!TYPE"`` in a criteria dict means the record must not carry that type. With
    ``tenant_id`` None (a node serving every tenant) records of any tenant answer. With a
    SQLite ``reader`` the lookup reads synchronously (see ``make_sync_lookup``).
    """
    if reader is not None:
        sync = make_sync_lookup(reader)

        async def local(candidates: list[dict[str, str]]) -> Record | None:
            return sync(candidates)

        return local

    async def lookup(candidates: list[dict[str, str]]) -> Record | None:
        for criteria in candidates:
            wanted, excluded = _split(criteria)
            if not wanted:
                continue
            vtype, key = _most_selective(wanted)
            q = (
                select(
                    IdRecord.handle,
                    func.coalesce(IdRecord.public_json, IdRecord.values_json),
                    IdRecord.min_ttl,
                )
                .join(IdValue, IdValue.handle_norm == IdRecord.handle_norm)
                .where(IdValue.type == vtype, IdValue.value_key == key, IdValue.public.is_(True))
            )
            if tenant_id is not None:
                q = q.where(IdValue.tenant_id == tenant_id)
            async with registry.db.sessions() as s:
                rows = (await s.execute(q.order_by(IdRecord.handle).limit(50))).all()
            rec = _first(((h, v, t) for h, v, t in rows), wanted, excluded)
            if rec is not None:
                return rec
        return None

    return lookup


def adapters() -> list[SchemeAdapter]:
    """Every adapter registered under ``gongyun.idschemes`` (the built-ins register there too)."""
    found: list[SchemeAdapter] = []
    for ep in sorted(entry_points(group="gongyun.idschemes"), key=lambda e: e.name):
        try:
            found.append(ep.load())
        except Exception:  # a broken plugin must not stop the node
            log.exception("cannot load identifier scheme %s", ep.name)
    return found


def install_schemes(
    app: AsgiApp, registry: Registry, tenant_id: str | None, reader: SqliteReader | None = None
) -> AnswerCache:
    """Mount every scheme adapter's endpoints on a node, behind one answer cache.

    The cache forgets its answers on every change of this process's registry; a node adds
    ``cache.changed`` to its change feed's listeners for the changes of other processes. On a
    SQLite file (``reader``, opened here when not given) the lean server's hook answers a
    planned endpoint's anonymous GET itself, cached or not: parse, point reads, answer.
    """
    if reader is None:
        reader = SqliteReader.of(registry.db, tenant_id)
    lookup = make_lookup(registry, tenant_id, reader)
    cache = AnswerCache()
    before = set(app.routes)
    fast: dict[str, Planner] = {}
    for adapter in adapters():
        adapter.install(app, lookup)
        if isinstance(adapter, PlannedAdapter):
            fast.update(adapter.planners())
    added = {p for p, h in app.routes if (p, h) not in before}
    fast = {p: planner for p, planner in fast.items() if p in added}
    app.routes = [(p, h if (p, h) in before else cache.wrap(h)) for p, h in app.routes]
    registry.listeners.append(cache.changed)
    sync = make_sync_lookup(reader) if reader is not None else None

    def planner_of(path: str) -> Planner | None:
        for prefix, _ in app.routes:
            if path.startswith(prefix):
                return fast.get(prefix)
        return None

    def fast_raw(target: bytes, headers: list[tuple[bytes, bytes]], keep: bool) -> bytes | None:
        key = cache.key(target, headers)
        if key is None:
            return None
        hit = cache.raw(key, keep)
        if hit is not None or sync is None:
            return hit
        path, _, query = target.partition(b"?")
        req = build_request("GET", path, query, headers)
        planner = planner_of(req.path)
        if planner is None:
            return None
        generation = cache.generation
        ttls: list[float] = []
        token = answer_ttls.set(ttls)
        try:
            plan = planner(req)
            resp = plan if isinstance(plan, Response) else plan.answer([sync(c) for c in plan.lookups])
        except Exception as exc:
            return http_bytes(error_response(exc), keep)
        finally:
            answer_ttls.reset(token)
        cache.put(key, resp, min(ttls, default=cache.max_age), generation)
        return http_bytes(resp, keep)

    app.add_fast_raw(fast_raw)
    return cache
