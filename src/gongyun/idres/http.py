"""The Handle.Net REST API (``/api/handles``, ``/hrls/handles``) served from a registry.

A lean ASGI app (see ``gongyun.idres.asgi``): public GETs of a record are answered from an
LRU of rendered JSON keyed by the raw request path; a miss reads one row (a direct
``sqlite3`` point read on the embedded backend) and concatenates the stored JSON without
re-encoding it. Writes go through the registry and invalidate the cache.

With a shared cache (``shared``, Redis: :mod:`gongyun.idres.rescache`) the in-process LRU is
off, so that a write through any process is visible at once in every other: reads go through
the shared cache, and every committed write deletes the changed identifiers' keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from sqlalchemy import select

from gongyun.errors import (
    AuthError,
    DatabaseUnavailable,
    GongyunError,
    InvalidInput,
    MalformedIdentifier,
    PermissionDenied,
)
from gongyun.idres.asgi import (
    AsgiApp,
    FastAnswer,
    Request,
    Response,
    error_response,
    http_bytes,
    json_response,
)
from gongyun.idres.auth import Authenticator, HandleBasicAuth, Principal
from gongyun.idres.errors import (
    RC_HANDLE_NOT_FOUND,
    RC_SERVER_NOT_RESP,
    RC_SUCCESS,
    RC_VALUE_ALREADY_EXISTS,
    RC_VALUES_NOT_FOUND,
    HandleExists,
)
from gongyun.idres.localread import SqliteReader
from gongyun.idres.models import IdPrefix
from gongyun.idres.pgread import PointReader
from gongyun.idres.registry import MAX_BATCH, RawRecord, Registry
from gongyun.idres.rescache import SharedRecords
from gongyun.idres.sealing import mask_values, open_cached, open_values
from gongyun.idres.sessions import Sessions
from gongyun.idres.syntax import Handle, fold, parse, parse_indexed, prefix_chain
from gongyun.idres.values import (
    CORE,
    SEALED,
    HandleValue,
    admin_value,
    decode_stored,
    decode_values,
    encode_values,
    has_sealed,
)

log = logging.getLogger(__name__)
API = "/api/handles"
_API_SLASH = API.encode() + b"/"
_CREDENTIALS = (b"authorization", b"x-api-key")
_OK_JSON = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
_MISSING_KEPT = 20_000  # kept "not found" answers per worker (a flood of unknowns churns only these)
_IDENTITIES: dict[str, str] = {}  # admin name -> its record's normalised identifier ("" if none)
# HS_ADMIN permission bits (Handle.Net AdminRecord; the JSON string writes bit 11 first)
DELETE_HANDLE, MODIFY_VALUE, REMOVE_VALUE, ADD_VALUE = 1, 4, 5, 6


class RecordCache:
    """An LRU of rendered public responses keyed by normalised identifier, each with an expiry.

    Bodies and expiry times live in two flat dicts (no per-entry tuples), so a million
    entries add almost nothing for the garbage collector to walk.
    """

    def __init__(self, size: int = 200_000, max_age: float = 5.0) -> None:
        self.size = size
        self.max_age = max_age
        self.bodies: OrderedDict[str, bytes] = OrderedDict()
        self.expires: dict[str, float] = {}

    def get(self, norm: str) -> bytes | None:
        """A fresh cached body, or None."""
        body = self.bodies.get(norm)
        if body is None:
            return None
        if self.expires[norm] < time.monotonic():
            self.invalidate(norm)
            return None
        self.bodies.move_to_end(norm)
        return body

    def put(self, norm: str, body: bytes, ttl: float) -> None:
        """Remember a body for ``min(ttl, max_age)`` seconds."""
        if self.size <= 0:
            return
        self.bodies[norm] = body
        self.bodies.move_to_end(norm)
        self.expires[norm] = time.monotonic() + min(ttl, self.max_age)
        if len(self.bodies) > self.size:
            old, _ = self.bodies.popitem(last=False)
            self.expires.pop(old, None)

    def invalidate(self, norm: str) -> None:
        """Forget one identifier."""
        self.bodies.pop(norm, None)
        self.expires.pop(norm, None)

    def clear(self) -> None:
        """Forget everything."""
        self.bodies.clear()
        self.expires.clear()


def _identity_norm(p: Principal | None) -> str | None:
    """The record of a Handle identity (``300:88.100.1/admin`` -> ``88.100.1/ADMIN``), or None."""
    if p is None or p.operator or p.tenant_id is not None:
        return None
    norm = _IDENTITIES.get(p.name)
    if norm is None:
        try:
            norm = parse_indexed(p.name).handle.norm
        except MalformedIdentifier:
            norm = ""
        if len(_IDENTITIES) >= 10_000:
            _IDENTITIES.clear()
        _IDENTITIES[p.name] = norm
    return norm or None


def _not_found(h: Handle, homed: bool) -> Response:
    """The 404 of an identifier this node does not hold (a prefix homed here, or not)."""
    if not homed:
        return json_response(
            404,
            {
                "responseCode": RC_SERVER_NOT_RESP,
                "handle": str(h),
                "message": f"prefix {h.prefix} is not homed at this server",
            },
        )
    return json_response(
        404, {"responseCode": RC_HANDLE_NOT_FOUND, "handle": str(h), "message": "Handle Not Found"}
    )


def _render(handle: str, values_json: str) -> bytes:
    return b'{"responseCode":1,"handle":' + orjson.dumps(handle) + b',"values":' + values_json.encode() + b"}"


class HandleService:
    """Serves one tenant's records over the Handle.Net REST API.

    With ``tenant_id`` None it serves every tenant's records on the database (the platform's
    node for its objects' identifiers): anyone reads public values; a caller sees private
    values only of records of its own tenant (or as the node operator), and writes,
    listings and reverse lookups act in the caller's tenant.
    """

    def __init__(
        self,
        registry: Registry,
        tenant_id: str | None,
        *,
        authenticators: list[Authenticator] | None = None,
        cache_size: int = 200_000,
        cache_max_age: float = 5.0,
        negative_ttl: float = 30.0,
        credential_ttl: float = 60.0,
        shared: SharedRecords | None = None,
        reader: PointReader | None = None,
    ) -> None:
        self.registry = registry
        self.tenant_id = tenant_id
        self.shared = shared
        self.reader = reader
        self.cache = RecordCache(0 if shared is not None else cache_size, cache_max_age)
        # "not found" answers (keep-alive responses) by identifier, with their expiry
        self.missing: dict[str, tuple[float, bytes]] = {}
        # what an administrator sees: identifier -> (expiry, prefix, owner, body; None when sealed)
        self.full: dict[str, tuple[float, str, str, bytes | None]] = {}
        kept = shared is None and cache_size > 0
        self.negative_ttl = min(negative_ttl, cache_max_age) if kept else 0.0
        self.generation = 0  # bumped by every change: a read that overlapped one is not cached
        self._pending: set[str] = set()
        self.basic = HandleBasicAuth(self._secret, credential_ttl)
        self.authenticators: list[Authenticator] = [self.basic, *(authenticators or [])]
        self.sessions = Sessions(self._secret)
        self._grant_names: set[str] = set()
        self._grant_memo: dict[str, tuple[str, str, dict[str, Any] | None]] = {}
        # Handle identities known to carry no read grant -> their record, forgotten when it changes
        # (as remembered credentials are: at once here, within a second elsewhere by the feed)
        self._plain: dict[str, str] = {}
        self._homed_kept: dict[str, tuple[float, bool]] = {}
        registry.listeners.append(self._changed)
        self.local = SqliteReader.of(registry.db, tenant_id)

    def _changed(self, norm: str) -> None:
        self.generation += 1
        self.cache.invalidate(norm)
        self.missing.pop(norm, None)
        self.full.pop(norm, None)
        self.basic.forget(norm)
        self._forget_identity(norm)
        if self.shared is not None:
            self._pending.add(norm)

    def changed_elsewhere(self, norm: str | None) -> None:
        """A change announced on the registry's feed (``None``: forget every cached record)."""
        self.generation += 1
        if norm is None:
            self.cache.clear()
            self.missing.clear()
            self.full.clear()
            self.basic.forget()
            self._plain.clear()
        else:
            self.cache.invalidate(norm)
            self.missing.pop(norm, None)
            self.full.pop(norm, None)
            self.basic.forget(norm)
            self._forget_identity(norm)

    def _forget_identity(self, norm: str) -> None:
        if norm in self._plain.values():
            self._plain = {k: v for k, v in self._plain.items() if v != norm}

    async def flush(self, tenant_id: str | None, norms: Iterable[str] = ()) -> None:
        """Delete the shared keys of ``norms`` and of what other writes changed (committed now).

        A handler names the identifiers it wrote (with their tenant), so that another request's
        flush taking the pending set first cannot leave that tenant's keys behind.
        """
        if self.shared is None:
            return
        changed, self._pending = {*norms, *self._pending}, set()
        if changed:
            await self.shared.forget(sorted(changed), (tenant_id, self.tenant_id))

    async def _secret(self, handle: str, index: int) -> str | None:
        row = await self._fetch(parse(handle).norm)
        if row is None:
            return None
        for v in decode_stored(orjson.loads(row[1])):
            if v.index == index and v.type == "HS_SECKEY" and isinstance(v.value, str):
                return v.value
        return None

    def install(self, app: AsgiApp) -> None:
        """Mount the Handle API routes on an app and enable its fast GET path."""
        app.authenticators.extend(self.authenticators)
        self.sessions.install(app)
        app.mount(API, self.handles)
        app.mount("/hrls/handles", self.reverse)
        app.mount("/api/batch", self.batch)
        app.fast_get = self.fast_get
        app.add_fast_raw(self.fast_raw)

    async def _fetch(self, norm: str) -> RawRecord | None:
        if self.local is not None:
            return self.local.record(norm)
        if self.shared is None:
            if self.reader is not None:
                return await self.reader.get(norm)
            return await self.registry.get_raw(self.tenant_id, norm)

        async def load() -> tuple[bytes, float] | None:
            row = await self.registry.get_raw(self.tenant_id, norm)
            return None if row is None else (orjson.dumps(list(row)), float(row[3]))

        body = await self.shared.get("node", self.tenant_id, norm, load)
        if body is None:
            return None
        r = orjson.loads(body)
        return (r[0], r[1], r[2], r[3], r[4])

    def fast_get(self, raw_path: bytes) -> bytes | None:
        """The public answer to ``GET /api/handles/<handle>`` from the cache or one SQLite read."""
        if not raw_path.startswith(_API_SLASH):
            return None
        tail = raw_path[len(_API_SLASH) :]
        try:
            text = (unquote_to_bytes(tail) if b"%" in tail else tail).decode("utf-8")
        except UnicodeDecodeError:
            return None
        body = self.cache.get(fold(text))
        if body is not None:
            return body
        if self.local is None:
            return None
        try:
            h = parse(text)
        except GongyunError:
            return None
        row = self.local.record(h.norm)
        if row is None:
            return None
        body = _render(row[0], row[2])
        self.cache.put(h.norm, body, float(row[3]))
        return body

    def fast_raw(self, target: bytes, headers: list[tuple[bytes, bytes]], keep: bool) -> FastAnswer:
        """The lean server's whole answer to a ``GET /api/handles/<handle>`` without query: what
        ``fast_get`` answers, a malformed identifier's 400 (no database touched), a kept "not
        found", and the record or its 404 as an anonymous caller or one with a remembered Basic
        credential and no read grant sees it — at once on a SQLite file, as a future of a batched
        read on PostgreSQL. None leaves the request to the app (e.g. credentials not remembered
        yet). A lone ``Authorization: Basic`` header is Handle Basic authentication's: the node's
        other authenticators take Bearer tokens, ``X-API-Key`` and ``Handle`` sessions.
        """
        if not target.startswith(_API_SLASH) or len(target) == len(_API_SLASH) or b"?" in target:
            return None
        principal = None
        for name, value in headers:
            if name in _CREDENTIALS:
                if name != b"authorization" or principal is not None:
                    return None
                principal = self.basic.remembered(value.decode("latin-1"))
                if principal is None:
                    return None
        tail = target[len(_API_SLASH) :]
        handle = (unquote_to_bytes(tail) if b"%" in tail else tail).decode("utf-8", "surrogateescape")
        key = fold(handle)
        body = self.cache.get(key) if principal is None else self._kept_view(key, principal)
        if body is not None:
            conn = b"" if keep else b"connection: close\r\n"
            return _OK_JSON + str(len(body)).encode() + b"\r\n" + conn + b"\r\n" + body
        if keep:
            missing = self.missing.get(key)
            if missing is not None and missing[0] > time.monotonic():
                return missing[1]
        try:
            h = parse(handle)
        except GongyunError as exc:
            return http_bytes(error_response(exc), keep)
        plain = principal is None or principal.name in self._plain
        if self.local is not None:
            if not plain:
                assert principal is not None
                norm = _identity_norm(principal)
                if norm is not None:
                    if self._grant_in(principal, self.local.record(norm)) is not None:
                        return None  # a read grant's reads are audited: the app answers them
                    self._remember_plain(principal.name, norm)
            return self._answer(h, self.local.record(h.norm), principal, keep, self.generation)
        if self.reader is None or not (plain or _identity_norm(principal) is None):
            return None  # the app reads the identity's record first
        generation = self.generation
        out: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self.reader.want(h.norm).add_done_callback(
            partial(self._answer_later, out, h, principal, keep, generation)
        )
        return out

    def _answer_later(
        self,
        out: asyncio.Future[bytes | None],
        h: Handle,
        principal: Principal | None,
        keep: bool,
        generation: int,
        read: asyncio.Future[RawRecord | None],
    ) -> None:
        """Complete a deferred fast answer from a batched PostgreSQL read."""
        if out.done():
            return
        exc = DatabaseUnavailable("the read was cancelled") if read.cancelled() else read.exception()
        if exc is not None:
            out.set_result(http_bytes(error_response(exc), keep))
            return
        try:
            out.set_result(self._answer(h, read.result(), principal, keep, generation))
        except Exception as err:  # the app answers (and logs) what this could not
            log.debug("fast answer failed", exc_info=err)
            out.set_result(None)

    def _answer(
        self, h: Handle, row: RawRecord | None, principal: Principal | None, keep: bool, generation: int
    ) -> bytes | None:
        """The whole response to ``h`` from its stored row (kept when no change overlapped the read)."""
        if row is None:
            homed = self._homed_known(h.prefix)
            if homed is None:
                return None  # the app asks the database whether the prefix is homed here
            answer = http_bytes(_not_found(h, homed), keep)
            if keep and generation == self.generation:
                self._remember_missing(h.norm, answer)
            return answer
        if principal is None:
            body = _render(row[0], row[2])
            if generation == self.generation:
                self.cache.put(h.norm, body, float(row[3]))
        else:
            admin = self._admin_of(principal, h.prefix, row[4])
            if generation == self.generation and self.cache.size > 0:
                full = None if has_sealed(row[1]) else _render(row[0], row[1])
                self._keep_full(h.norm, h.prefix, row[4], full, float(row[3]))
            if admin and has_sealed(row[1]):
                return None  # core values are opened or masked by the app for this caller
            body = _render(row[0], row[1] if admin else row[2])
        conn = b"" if keep else b"connection: close\r\n"
        return _OK_JSON + str(len(body)).encode() + b"\r\n" + conn + b"\r\n" + body

    def _kept_view(self, norm: str, principal: Principal) -> bytes | None:
        """The kept answer for a caller known to carry no read grant, or None."""
        if principal.name not in self._plain and _identity_norm(principal) is not None:
            return None
        kept = self.full.get(norm)
        if kept is None or kept[0] < time.monotonic():
            return None
        if self._admin_of(principal, kept[1], kept[2]):
            return kept[3]  # None when sealed: the app opens or masks the core values
        return self.cache.get(norm)

    def _keep_full(self, norm: str, prefix: str, owner: str, body: bytes | None, ttl: float) -> None:
        """Keep a record's whole rendering for its administrators (for its TTL, capped)."""
        full = self.full
        if len(full) >= self.cache.size:
            del full[next(iter(full))]
        full[norm] = (time.monotonic() + min(ttl, self.cache.max_age), prefix, owner, body)

    def _remember_plain(self, name: str, norm: str) -> None:
        """Remember that a Handle identity carries no read grant (until its record changes)."""
        if len(self._plain) >= 10_000:
            self._plain.clear()
        self._plain[name] = norm

    def _remember_missing(self, norm: str, answer: bytes) -> None:
        """Keep a 404 for ``negative_ttl`` seconds (oldest dropped first past ``_MISSING_KEPT``)."""
        if self.negative_ttl <= 0:
            return
        missing = self.missing
        if len(missing) >= _MISSING_KEPT:
            del missing[next(iter(missing))]
        missing[norm] = (time.monotonic() + self.negative_ttl, answer)

    def _homed_known(self, prefix: str) -> bool | None:
        """Whether ``prefix`` is homed here, kept for a second (floods of unknowns); read at once on
        a SQLite file, None on PostgreSQL when not kept."""
        kept = self._homed_kept.get(prefix)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        if self.local is None:
            return None
        homed = self.local.homed([fold(p) for p in prefix_chain(prefix)])
        self._keep_homed(prefix, homed)
        return homed

    def _keep_homed(self, prefix: str, homed: bool) -> None:
        if len(self._homed_kept) >= 10_000:
            self._homed_kept.clear()
        self._homed_kept[prefix] = (time.monotonic() + 1.0, homed)

    def _can_admin(self, req: Request, prefix: str, owner: str) -> bool:
        return self._admin_of(req.principal, prefix, owner)

    def _admin_of(self, p: Principal | None, prefix: str, owner: str) -> bool:
        if p is None or not p.covers(prefix):
            return False
        # on a node serving every tenant, only the owner's callers (or the operator) see private values
        return self.tenant_id is not None or p.operator or p.tenant_id == owner

    def _tenant(self, req: Request) -> str:
        """The tenant a write, listing or reverse lookup acts in."""
        if self.tenant_id is not None:
            return self.tenant_id
        if req.principal is None:
            raise AuthError("authentication is needed to change or list identifiers")
        if req.principal.tenant_id is None:
            raise PermissionDenied("this node serves every tenant: use a platform user or API key of yours")
        return req.principal.tenant_id

    def _require_admin(self, req: Request, prefix: str) -> Principal:
        if req.principal is None:
            raise AuthError("authentication is needed to change or list identifiers")
        if req.principal.name in self._grant_names:
            raise PermissionDenied(f"{req.principal.name} is a read grant: it changes nothing")
        if not req.principal.covers(prefix) or not req.principal.can_write:
            raise PermissionDenied(f"{req.principal.name} does not administer prefix {prefix}")
        return req.principal

    async def handles(self, req: Request) -> Response:
        """``GET|PUT|DELETE /api/handles/{handle}`` and ``GET /api/handles?prefix=``."""
        rest = req.path[len(API) :]
        if rest in {"", "/"}:
            if req.method != "GET":
                raise InvalidInput("only GET is allowed on /api/handles")
            return await self._list(req)
        handle = rest[1:]
        if req.method == "GET":
            return await self._get(req, handle)
        if req.method == "PUT":
            return await self._put(req, handle)
        if req.method == "DELETE":
            return await self._delete(req, handle)
        raise InvalidInput(f"method {req.method} is not allowed")

    async def _get(self, req: Request, handle: str) -> Response:
        h = parse(handle)
        generation = self.generation
        row = await self._fetch(h.norm)
        if row is None:
            missing = _not_found(h, await self._homed(h.prefix))
            if not req.query and generation == self.generation:
                self._remember_missing(h.norm, http_bytes(missing, True))
            return missing
        stored, values_json, public_json, min_ttl, owner = row
        grant = await self._grant_of(req.principal)
        if grant is not None:
            return await self._granted_get(req, h.norm, row, grant)
        identity = _identity_norm(req.principal)
        if identity is not None and generation == self.generation:
            assert req.principal is not None  # no grant, as read now: the fast path may answer it
            self._remember_plain(req.principal.name, identity)
        admin = self._can_admin(req, h.prefix, owner) and not req.flag("publicOnly")
        indexes, types = req.query.get("index"), req.query.get("type")
        if not indexes and not types:
            if admin and has_sealed(values_json):  # only the sealed values are decoded and opened
                items = orjson.loads(values_json)
                sealed = [i for i, item in enumerate(items) if item.get("data", {}).get("format") == SEALED]
                shown = await self._shown(req, owner, h.norm, decode_stored([items[i] for i in sealed]))
                for i, value in zip(sealed, shown, strict=True):
                    items[i] = value.to_json()
                return Response(200, _render(stored, orjson.dumps(items).decode()))
            body = _render(stored, values_json if admin else public_json)
            if not req.query and req.principal is None and generation == self.generation:
                self.cache.put(h.norm, body, float(min_ttl))
            return Response(200, body)
        values = decode_stored(orjson.loads(values_json))
        wanted_idx = {int(i) for i in indexes or [] if i.isdigit()}
        wanted_types = set(types or [])
        picked = [
            v
            for v in values
            if (admin or v.public)
            and (
                (not wanted_idx and not wanted_types)
                or v.index in wanted_idx
                or any(_type_matches(t, v.type) for t in wanted_types)
            )
        ]
        if not picked:
            return json_response(200, {"responseCode": RC_VALUES_NOT_FOUND, "handle": stored})
        picked = await self._shown(req, owner, h.norm, picked)
        return json_response(
            200, {"responseCode": RC_SUCCESS, "handle": stored, "values": encode_values(picked)}
        )

    async def _shown(
        self, req: Request, owner: str, norm: str, values: list[HandleValue]
    ) -> list[HandleValue]:
        """Core values opened for a caller cleared for core data, masked for any other."""
        if not any(v.sealed for v in values):
            return values
        if req.principal is None or req.principal.clearance < CORE:
            return mask_values(values)
        opened = open_cached(self.registry.keyring, owner, norm, values)
        if opened is not None:  # the tenant's key is in memory: no session, no database read
            return opened
        async with self.registry.db.sessions() as s:
            return await open_values(self.registry.keyring, s, owner, norm, values)

    def _values_from_body(self, req: Request) -> list[HandleValue]:
        body = req.json()
        if isinstance(body, dict) and "values" not in body and "type" in body:
            body = [body]  # a single value as the body
        raw = body.get("values") if isinstance(body, dict) else body
        return decode_values(raw)

    async def _homed(self, prefix: str) -> bool:
        """True when a filing on this database covers ``prefix`` (for the node's tenant, if one)."""
        known = self._homed_known(prefix)
        if known is not None:
            return known
        chain = [fold(p) for p in prefix_chain(prefix)]
        q = select(IdPrefix.prefix_norm).where(IdPrefix.prefix_norm.in_(chain))
        if self.tenant_id is not None:
            q = q.where(IdPrefix.tenant_id == self.tenant_id)
        async with self.registry.db.session() as s:
            homed = (await s.execute(q.limit(1))).first() is not None
        self._keep_homed(prefix, homed)
        return homed

    async def _authorise(self, req: Request, prefix: str, norm: str, bit: int) -> tuple[Principal, bool]:
        """The caller, if it may write this identifier; and whether the identifier exists.

        A new identifier needs an administrator of its prefix. An existing one with ``HS_ADMIN``
        values needs a Handle admin those values name with the permission ``bit`` (an entry
        ``0.NA/<prefix>`` names the prefix's administrators); platform users, API keys and node
        operators keep the prefix rule.
        """
        p = req.principal
        if p is None:
            raise AuthError("authentication is needed to change or list identifiers")
        if await self._grant_of(p) is not None:
            raise PermissionDenied(f"{p.name} is a read grant: it changes nothing")
        row = await self._fetch(norm)
        if row is None or p.prefixes is None or p.tenant_id is not None or p.operator:
            return self._require_admin(req, prefix), row is not None
        admins = [
            v.value
            for v in decode_stored(orjson.loads(row[1]))
            if v.type == "HS_ADMIN" and isinstance(v.value, dict)
        ]
        if not admins:
            return self._require_admin(req, prefix), True
        try:
            me = parse_indexed(p.name)
        except MalformedIdentifier:
            return self._require_admin(req, prefix), True
        for a in admins:
            perms = str(a.get("permissions", ""))
            if len(perms) != 12 or perms[11 - bit] != "1":
                continue
            target = fold(str(a.get("handle", "")))
            if target == me.handle.norm and int(a.get("index", 0)) == me.index:
                return p, True
            if target == fold(f"0.NA/{prefix}") and p.covers(prefix) and p.can_write:
                return p, True
        raise PermissionDenied(f"{p.name} is not an administrator (HS_ADMIN) of {row[0]} for this change")

    async def _grant_of(self, p: Principal | None) -> dict[str, Any] | None:
        """The read grant a Handle identity carries (a ``GY_GRANT`` value), read fresh each time."""
        norm = _identity_norm(p)
        if p is None or norm is None:
            return None
        return self._grant_in(p, await self._fetch(norm))

    def _grant_in(self, p: Principal, row: RawRecord | None) -> dict[str, Any] | None:
        """The grant of the identity's record as just read (decoded once per stored version)."""
        if row is None:
            return None
        memo = self._grant_memo.get(p.name)
        if memo is not None and memo[0] == row[1] and memo[1] == row[4]:
            return memo[2]
        grant: dict[str, Any] | None = None
        for v in decode_stored(orjson.loads(row[1])):
            if v.type == "GY_GRANT" and isinstance(v.value, str):
                try:
                    found = orjson.loads(v.value)
                except orjson.JSONDecodeError:
                    grant = {"revoked": True, "handles": [], "types": []}
                    break
                if isinstance(found, dict):
                    self._grant_names.add(p.name)
                    grant = {**found, "_owner": row[4]}
                    break
        if len(self._grant_memo) >= 10_000:
            self._grant_memo.clear()
        self._grant_memo[p.name] = (row[1], row[4], grant)
        return grant

    async def _no_grant(self, req: Request) -> None:
        if await self._grant_of(req.principal) is not None:
            assert req.principal is not None
            raise PermissionDenied(f"{req.principal.name} is a read grant: it reads granted records only")

    async def _granted_get(self, req: Request, norm: str, row: RawRecord, grant: dict[str, Any]) -> Response:
        """A record as a read grant sees it: public values, plus the granted types while it holds."""
        stored, values_json, _, _, owner = row
        now = time.time()
        expires = grant.get("expires")
        active = (
            not grant.get("revoked")
            and (not isinstance(expires, int | float) or expires > now)
            and grant.get("_owner") == owner
            and norm in {fold(str(h)) for h in grant.get("handles", [])}
        )
        types = {str(t) for t in grant.get("types", [])} if active else set()
        values = [v for v in decode_stored(orjson.loads(values_json)) if v.public or v.type in types]
        if any(v.sealed for v in values):  # the owner granted these types, core ones included
            async with self.registry.db.sessions() as s:
                values = await open_values(self.registry.keyring, s, owner, norm, values)
        assert req.principal is not None
        await self._audit(
            req,
            owner,
            "identifier.read.granted",
            stored,
            outcome="success" if active else "denied",
            grantee=str(grant.get("grantee", "")),
            types=sorted(types),
        )
        return json_response(
            200, {"responseCode": RC_SUCCESS, "handle": stored, "values": encode_values(values)}
        )

    async def _audit(self, req: Request, tenant_id: str, action: str, target: str, **detail: Any) -> None:
        """Record a write through this API in the tenant's audit trail."""
        from gongyun.security.audit import record

        actor = req.principal.name if req.principal is not None else "anonymous"
        outcome = str(detail.pop("outcome", "success"))
        async with self.registry.db.session() as s:
            await record(
                s, tenant_id, f"handle:{actor}", action, target, outcome, via="handle-rest-api", **detail
            )

    async def _put(self, req: Request, handle: str) -> Response:
        """Create or replace a record (a plain PUT overwrites, as in Handle.Net), or with
        ``index=`` add or replace those values; ``overwrite=false`` refuses to replace either."""
        if req.flag("mintNewSuffix"):
            handle = handle + uuid.uuid4().hex if handle.endswith("/") else f"{handle}{uuid.uuid4().hex}"
        h = parse(handle)
        overwrite = (req.arg("overwrite") or "true").lower() not in {"false", "0", "no"}
        values = self._values_from_body(req)
        tenant = self._tenant_or_none(req)
        if req.query.get("index"):
            principal, exists = await self._authorise(req, h.prefix, h.norm, MODIFY_VALUE)
            if exists:
                tenant = self._tenant(req)
                if not overwrite:
                    current = {v.index for v in (await self.registry.get(tenant, str(h))).values}
                    taken = sorted(current & {v.index for v in values})
                    if taken:
                        return json_response(
                            409,
                            {
                                "responseCode": RC_VALUE_ALREADY_EXISTS,
                                "handle": str(h),
                                "message": f"values at index {taken} exist and overwrite=false",
                            },
                        )
                rec = await self.registry.update_values(tenant, str(h), values)
                await self.flush(tenant, [h.norm])
                await self._audit(
                    req, tenant, "identifier.update", rec.handle, indexes=[v.index for v in values]
                )
                return json_response(200, {"responseCode": RC_SUCCESS, "handle": rec.handle})
        principal, exists = await self._authorise(req, h.prefix, h.norm, MODIFY_VALUE)
        if exists and not overwrite:
            raise HandleExists(f"identifier {h} exists and overwrite=false", handle=str(h))
        if not any(v.type == "HS_ADMIN" for v in values):
            admin_name = principal.name.partition(":")
            used = {v.index for v in values}
            index = next(i for i in range(100, 10_000) if i not in used)
            if admin_name[1] and admin_name[0].isdigit():
                values.append(admin_value(admin_name[2], int(admin_name[0]), index))
            else:
                values.append(admin_value(f"0.NA/{h.prefix}", 200, index))
        tenant = tenant or self._tenant(req)
        rec, created = await self.registry.put(tenant, str(h), values, overwrite=overwrite)
        await self.flush(tenant, [h.norm])
        await self._audit(req, tenant, "identifier.register" if created else "identifier.update", rec.handle)
        return json_response(201 if created else 200, {"responseCode": RC_SUCCESS, "handle": rec.handle})

    def _tenant_or_none(self, req: Request) -> str | None:
        try:
            return self._tenant(req)
        except (AuthError, PermissionDenied):
            return None

    async def _delete(self, req: Request, handle: str) -> Response:
        h = parse(handle)
        indexes = [int(i) for i in req.query.get("index", []) if i.isdigit()]
        await self._authorise(req, h.prefix, h.norm, REMOVE_VALUE if indexes else DELETE_HANDLE)
        tenant = self._tenant(req)
        if indexes:
            await self.registry.delete_values(tenant, str(h), indexes)
        else:
            await self.registry.delete(tenant, str(h))
        await self.flush(tenant, [h.norm])
        await self._audit(req, tenant, "identifier.delete", str(h), indexes=indexes)
        return json_response(200, {"responseCode": RC_SUCCESS, "handle": str(h)})

    async def _list(self, req: Request) -> Response:
        prefix = req.arg("prefix")
        if not prefix:
            raise InvalidInput("GET /api/handles needs ?prefix=")
        await self._no_grant(req)
        self._require_admin(req, prefix)
        try:
            page = int(req.arg("page", "0") or 0)
            size = int(req.arg("pageSize", "1000") or 1000)
        except ValueError:
            raise InvalidInput("page and pageSize must be integers") from None
        if page < 0 or not 0 <= size <= 100_000:
            raise InvalidInput("page must be >= 0 and pageSize 0..100000")
        after = req.arg("after")
        if after is not None:  # keyset paging: the same cost on every page, however deep
            return await self._list_after(req, prefix, after, size)
        total, handles = await self.registry.list_handles(self._tenant(req), prefix, page, max(size, 1))
        body: dict[str, Any] = {"responseCode": RC_SUCCESS, "prefix": prefix, "totalCount": str(total)}
        if size:  # pageSize=0: the count only
            body.update(page=page, pageSize=size, handles=handles)
        return json_response(200, body)

    async def _list_after(self, req: Request, prefix: str, after: str, size: int) -> Response:
        """``?prefix=P&after=H``: the page of identifiers that follow ``H`` (empty: the first page),
        with ``next`` to pass as ``after`` for the following one (absent on the last page). No
        ``totalCount``: counting a large prefix costs what the keyset page saves."""
        if not size:
            raise InvalidInput("pageSize must be 1..100000 with after=")
        handles = await self.registry.handles_after(
            self._tenant(req), prefix, fold(after) if after else None, size
        )
        body: dict[str, Any] = {"responseCode": RC_SUCCESS, "prefix": prefix, "pageSize": size}
        body["handles"] = handles
        if len(handles) == size:
            body["next"] = handles[-1]
        return json_response(200, body)

    async def reverse(self, req: Request) -> Response:
        """``GET /hrls/handles?TYPE=pattern``: matching identifiers in the caller's prefixes (a list;
        with ``after=`` (empty: the first page) a keyset page ``{"handles", "next"}`` instead)."""
        if req.principal is None:
            raise AuthError("reverse lookup needs authentication")
        await self._no_grant(req)
        criteria = {k: v[0] for k, v in req.query.items() if k not in {"limit", "prefix", "after"} and v}
        limit = int(req.arg("limit", "1000") or 1000) if (req.arg("limit") or "1").isdigit() else 1000
        prefixes = list(req.principal.prefixes) if req.principal.prefixes is not None else None
        if req.arg("prefix"):
            wanted = fold(req.arg("prefix") or "")
            prefixes = [wanted] if req.principal.covers(wanted) else []
        after = req.arg("after")
        if after is not None:  # keyset paging: {"handles", "next"}, the same cost on every page
            size = min(max(limit, 1), 10_000)
            page = await self.registry.reverse_page(
                self._tenant(req),
                criteria,
                prefixes=prefixes,
                include_private=True,
                after=fold(after) if after else None,
                limit=size,
            )
            body: dict[str, Any] = {"handles": [h for h, _ in page], "limit": size}
            if len(page) == size:
                body["next"] = page[-1][0]  # folded when passed back, as with /api/handles
            return json_response(200, body)
        handles = await self.registry.reverse_lookup(
            self._tenant(req), criteria, prefixes=prefixes, include_private=True, limit=min(limit, 10_000)
        )
        return json_response(200, handles)

    async def batch(self, req: Request) -> Response:
        """``POST /api/batch``: register up to 2,000 records, one result per item."""
        if req.method != "POST":
            raise InvalidInput("use POST /api/batch")
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise InvalidInput('the body must be {"records": [{"handle", "values"}], "overwrite": false}')
        records = body["records"]
        if len(records) > MAX_BATCH:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH} records, got {len(records)}")
        if req.principal is None:
            raise AuthError("batch registration needs authentication")
        await self._no_grant(req)
        items: list[tuple[str, Any]] = []
        for rec in records:
            handle = str(rec.get("handle", "")) if isinstance(rec, dict) else ""
            values = rec.get("values") if isinstance(rec, dict) else None
            prefix = handle.partition("/")[0]
            if not req.principal.covers(prefix):
                items.append((handle, "forbidden"))
            else:
                items.append((handle, values))
        results = await self.registry.register_batch(
            self._tenant(req),
            [(h, v) for h, v in items if v != "forbidden"],
            overwrite=bool(body.get("overwrite", False)),
        )
        written = [r.handle for r in results if r.status in {"created", "updated"}]
        await self.flush(self._tenant(req), [parse(handle).norm for handle in written])
        if written:
            await self._audit(req, self._tenant(req), "identifier.batch", "", count=len(written))
        it = iter(results)
        out = []
        for handle, v in items:
            if v == "forbidden":
                out.append(
                    {
                        "handle": handle,
                        "status": "error",
                        "responseCode": 401,
                        "code": "forbidden",
                        "message": "not an administrator of this prefix",
                    }
                )
            else:
                out.append(next(it).to_json())
        ok = all(r["status"] != "error" for r in out)
        return json_response(200, {"responseCode": RC_SUCCESS if ok else 2, "results": out})

    def close(self) -> None:
        """Close the direct SQLite reader."""
        if self.local is not None:
            self.local.close()


def _type_matches(wanted: str, actual: str) -> bool:
    """A requested type matches itself; one ending in ``.`` also matches its subtypes."""
    if wanted.endswith("."):
        return actual == wanted[:-1] or actual.startswith(wanted)
    return actual == wanted


def make_app(service: HandleService) -> AsgiApp:
    """An ASGI app serving just the Handle API of one service."""
    app = AsgiApp()
    service.install(app)
    return app


__all__ = ["HandleService", "RecordCache", "make_app"]
