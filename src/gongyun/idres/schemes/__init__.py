"""Scheme adapters: GS1 Digital Link, OIDs and Ecodes resolved onto the same records.

An adapter parses and validates its own syntax, turns a key into reverse-lookup
criteria (most specific first) and mounts its HTTP endpoints on a node. Built-in and
third-party adapters alike register under the ``gongyun.idschemes`` entry-point group.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Protocol

import orjson
from sqlalchemy import select

from gongyun.db import utcnow
from gongyun.idres.answers import AnswerCache, note_ttl
from gongyun.idres.asgi import AsgiApp
from gongyun.idres.models import IdRecord, IdValue
from gongyun.idres.registry import Record, Registry
from gongyun.idres.values import decode_values

log = logging.getLogger(__name__)
Lookup = Callable[[list[dict[str, str]]], Awaitable[Record | None]]


class SchemeAdapter(Protocol):
    """What a scheme module provides."""

    @property
    def name(self) -> str:
        """The scheme's name (``gs1``, ``oid``...)."""
        ...

    def install(self, app: AsgiApp, lookup: Lookup) -> None:
        """Mount the scheme's endpoints."""
        ...


def make_lookup(registry: Registry, tenant_id: str | None) -> Lookup:
    """The first record (public values) matching one of the criteria, tried in order.

    A key ``"!TYPE"`` in a criteria dict means the record must not carry that type. With
    ``tenant_id`` None (a node serving every tenant) records of any tenant answer.
    """

    async def lookup(candidates: list[dict[str, str]]) -> Record | None:
        for criteria in candidates:
            wanted = {k: v[:255] for k, v in criteria.items() if not k.startswith("!")}
            excluded = {k[1:] for k in criteria if k.startswith("!")}
            if not wanted:
                continue
            # one query: the records carrying the most selective value (a GTIN is shared the most)
            vtype, key = min(wanted.items(), key=lambda kv: kv[0] == "GS1_GTIN")
            q = (
                select(IdRecord.handle, IdRecord.values_json, IdRecord.min_ttl)
                .join(IdValue, IdValue.handle_norm == IdRecord.handle_norm)
                .where(IdValue.type == vtype, IdValue.value_key == key, IdValue.public.is_(True))
            )
            if tenant_id is not None:
                q = q.where(IdValue.tenant_id == tenant_id)
            async with registry.db.sessions() as s:
                rows = (await s.execute(q.order_by(IdRecord.handle).limit(50))).all()
            for handle, values_json, min_ttl in rows:
                public = [v for v in decode_values(orjson.loads(values_json)) if v.public]
                texts = {(v.type, v.text()[:255]) for v in public}
                if all(item in texts for item in wanted.items()) and not excluded & {v.type for v in public}:
                    note_ttl(float(min_ttl))
                    return Record(handle, public, 0, utcnow())
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


def install_schemes(app: AsgiApp, registry: Registry, tenant_id: str | None) -> AnswerCache:
    """Mount every scheme adapter's endpoints on a node, behind one answer cache.

    The cache forgets its answers on every change of this process's registry; a node adds
    ``cache.changed`` to its change feed's listeners for the changes of other processes.
    """
    lookup = make_lookup(registry, tenant_id)
    cache = AnswerCache()
    before = set(app.routes)
    for adapter in adapters():
        adapter.install(app, lookup)
    app.routes = [(p, h if (p, h) in before else cache.wrap(h)) for p, h in app.routes]
    registry.listeners.append(cache.changed)

    def fast_raw(target: bytes, headers: list[tuple[bytes, bytes]], keep: bool) -> bytes | None:
        key = cache.key(target, headers)
        return None if key is None else cache.raw(key, keep)

    app.fast_raw = fast_raw
    return cache
