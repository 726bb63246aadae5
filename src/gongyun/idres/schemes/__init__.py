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

from gongyun.idres.asgi import AsgiApp
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.registry import Record, Registry
from gongyun.idres.syntax import parse

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
            wanted = {k: v for k, v in criteria.items() if not k.startswith("!")}
            excluded = {k[1:] for k in criteria if k.startswith("!")}
            for handle in await registry.reverse_lookup(tenant_id, wanted, limit=50):
                try:
                    owner = tenant_id
                    if owner is None:
                        raw = await registry.get_raw(None, parse(handle).norm)
                        if raw is None:
                            continue
                        owner = raw[4]
                    rec = await registry.get(owner, handle)
                except HandleNotFound:
                    continue
                rec.values = [v for v in rec.values if v.public]
                if not excluded & {v.type for v in rec.values}:
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


def install_schemes(app: AsgiApp, registry: Registry, tenant_id: str | None) -> None:
    """Mount every scheme adapter's endpoints on a node."""
    lookup = make_lookup(registry, tenant_id)
    for adapter in adapters():
        adapter.install(app, lookup)
