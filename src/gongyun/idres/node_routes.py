"""Node endpoints beyond the Handle API: filing (root), allocation (secondary), templates,
mirror export (root) and the recursive resolver's endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from gongyun.errors import AuthError, GongyunError, InvalidInput, PermissionDenied
from gongyun.idres import prefixes as pfx
from gongyun.idres.asgi import AsgiApp, Reply, Request, Response, error_response, http_bytes, json_response
from gongyun.idres.auth import Principal
from gongyun.idres.errors import RC_HANDLE_NOT_FOUND, RC_SUCCESS, HandleNotFound
from gongyun.idres.registry import Registry
from gongyun.idres.resolver import Answer, Resolver
from gongyun.idres.syntax import NA_PREFIX, fold, is_under, parent_prefix, parse, prefix_record
from gongyun.idres.values import (
    ADMIN_ONLY,
    HandleValue,
    admin_value,
    decode_values,
    encode_values,
    site_value,
)

_ACTIONS = {
    "verify": pfx.FilingStatus.verified,
    "activate": pfx.FilingStatus.active,
    "reject": pfx.FilingStatus.rejected,
    "suspend": pfx.FilingStatus.suspended,
}


def _principal(req: Request, write: bool = False) -> Principal:
    if req.principal is None:
        raise AuthError("authentication is needed")
    if write and not req.principal.can_write:
        raise PermissionDenied(f"{req.principal.name} may only read")
    return req.principal


def _operator(req: Request) -> Principal:
    principal = _principal(req)
    if not principal.operator:
        raise PermissionDenied("only the node operator may do this")
    return principal


def _site(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("address"), str)
        or not isinstance(raw.get("port"), int)
    ):
        raise InvalidInput('site must be {"address": host, "port": int, "protocol": "HTTP"|"HTTPS"}')
    return {"address": raw["address"], "port": raw["port"], "protocol": str(raw.get("protocol", "HTTP"))}


ORIGIN_TYPE = "GY_ORIGIN"
ORIGIN_INDEX = 950


def _origin_value(node_id: str) -> HandleValue:
    return HandleValue(ORIGIN_INDEX, ORIGIN_TYPE, "string", node_id, permissions=ADMIN_ONLY)


def _origin(values: list[HandleValue]) -> str | None:
    return next((str(v.value) for v in values if v.type == ORIGIN_TYPE), None)


def _referral(prefix: str, site: dict[str, Any], ttl: int, origin: str) -> list[HandleValue]:
    return [
        site_value(site["address"], site["port"], site.get("protocol", "HTTP"), index=1, ttl=ttl),
        admin_value(f"{NA_PREFIX}/{prefix}", 200, 100),
        _origin_value(origin),
    ]


class NodeRoutes:
    """Filing, allocation, templates and mirroring on top of one registry and tenant."""

    def __init__(self, registry: Registry, tenant_id: str, served: list[str], node_id: str = "local") -> None:
        self.registry = registry
        self.tenant_id = tenant_id
        self.served = served
        self.node_id = node_id

    async def filings(self, req: Request) -> Response:
        """``POST /api/filings``, ``GET /api/filings[/{prefix}]``, ``POST /api/filings/{prefix}/{action}``."""
        rest = req.path[len("/api/filings") :].strip("/")
        async with self.registry.db.session() as s:
            if not rest:
                if req.method == "GET":
                    _operator(req)
                    infos = await pfx.list_prefixes(s, self.tenant_id, req.arg("status"))
                    return json_response(
                        200, {"responseCode": RC_SUCCESS, "filings": [i.to_json() for i in infos]}
                    )
                body = req.json()
                if not isinstance(body, dict) or not isinstance(body.get("prefix"), str):
                    raise InvalidInput('a filing is {"prefix", "kind", "orgName", "contact", "site"}')
                prefix = body["prefix"]
                principal = _principal(req, write=True)
                parent = parent_prefix(prefix)
                if principal.prefixes is not None and (parent is None or not principal.covers(parent)):
                    raise PermissionDenied(f"{principal.name} may not file prefixes under {parent}")
                site = _site(body.get("site"))
                if site is not None:
                    site["ttl"] = int(body.get("ttl", 3600))
                info = await pfx.submit(
                    s,
                    self.tenant_id,
                    prefix,
                    body.get("kind", "enterprise"),
                    org_name=str(body.get("orgName", "")),
                    contact=str(body.get("contact", "")),
                    site=site,
                    note=str(body.get("note", "")),
                )
                return json_response(201, {"responseCode": RC_SUCCESS, "filing": info.to_json()})
            prefix, _, action = rest.partition("/")
            if not action:
                principal = _principal(req)
                if not principal.covers(prefix):
                    raise HandleNotFound(f"filing {prefix} not found")
                info = await pfx.get(s, self.tenant_id, prefix)
                return json_response(200, {"responseCode": RC_SUCCESS, "filing": info.to_json()})
            _operator(req)
            if action not in _ACTIONS or req.method != "POST":
                raise InvalidInput(f"action must be POST one of {sorted(_ACTIONS)}")
            body = req.json() if req.body else {}
            note = str(body.get("note", "")) if isinstance(body, dict) else ""
            info = await pfx.transition(s, self.tenant_id, prefix, _ACTIONS[action], note)
            record = str(prefix_record(info.prefix))
            if info.status == "active" and info.site:
                await self.registry.put(
                    self.tenant_id,
                    record,
                    _referral(info.prefix, info.site, info.site["ttl"], self.node_id),
                    True,
                    s,
                )
            elif info.status == "suspended":
                with contextlib.suppress(HandleNotFound):
                    await self.registry.delete(self.tenant_id, record, s)
        return json_response(200, {"responseCode": RC_SUCCESS, "filing": info.to_json()})

    async def allocations(self, req: Request) -> Response:
        """``POST /api/allocations``: a secondary node allocates an enterprise prefix under its own."""
        async with self.registry.db.session() as s:
            if req.method == "GET":
                _principal(req)
                infos = await pfx.list_prefixes(s, self.tenant_id)
                return json_response(
                    200, {"responseCode": RC_SUCCESS, "prefixes": [i.to_json() for i in infos]}
                )
            body = req.json()
            if not isinstance(body, dict) or not isinstance(body.get("prefix"), str):
                raise InvalidInput('an allocation is {"prefix", "orgName", "contact", "site"}')
            prefix = body["prefix"]
            parent = parent_prefix(prefix)
            if parent is None or not any(is_under(parent, p) for p in self.served):
                raise InvalidInput(
                    f"{prefix} is not under a prefix this node serves ({', '.join(self.served)})"
                )
            principal = _principal(req, write=True)
            if not principal.covers(parent):
                raise PermissionDenied(f"{principal.name} does not administer {parent}")
            site = _site(body.get("site"))
            ttl = int(body.get("ttl", 3600))
            info = await pfx.submit(
                s,
                self.tenant_id,
                prefix,
                pfx.PrefixKind.enterprise,
                org_name=str(body.get("orgName", "")),
                contact=str(body.get("contact", "")),
                site=site,
                status=pfx.FilingStatus.active,
                note=f"allocated by {principal.name}",
            )
            if site is not None:
                await self.registry.put(
                    self.tenant_id,
                    str(prefix_record(prefix)),
                    _referral(prefix, site, ttl, self.node_id),
                    True,
                    s,
                )
        return json_response(201, {"responseCode": RC_SUCCESS, "prefix": info.to_json()})

    async def templates(self, req: Request) -> Response:
        """``GET /api/templates`` (list) and ``POST /api/templates`` (new version)."""
        if req.method == "GET":
            items = await self.registry.list_templates(self.tenant_id)
            return json_response(200, {"responseCode": RC_SUCCESS, "templates": [t.to_json() for t in items]})
        body = req.json()
        prefix = body.get("prefix") if isinstance(body, dict) else None
        principal = _principal(req, write=True)
        if not isinstance(prefix, str) or not principal.covers(prefix):
            raise PermissionDenied("you may only define templates for prefixes you administer")
        template = await self.registry.save_template(self.tenant_id, body)
        return json_response(201, {"responseCode": RC_SUCCESS, "template": template.to_json()})

    async def _prefix_records(self) -> list[tuple[str, list[HandleValue]]]:
        _, handles = await self.registry.list_handles(self.tenant_id, NA_PREFIX, 0, 0)
        out = []
        for handle in handles:
            try:
                out.append((handle, (await self.registry.get(self.tenant_id, handle)).values))
            except HandleNotFound:
                continue
        return out

    async def mirror_export(self, req: Request) -> Response:
        """``GET /api/mirror``: the prefix records this root originated, for its peer root."""
        records = [
            {"handle": handle, "values": encode_values(values, public_only=True)}
            for handle, values in await self._prefix_records()
            if _origin(values) in (None, self.node_id)
        ]
        return json_response(200, {"responseCode": RC_SUCCESS, "node": self.node_id, "records": records})

    async def apply_mirror(self, body: bytes) -> int:
        """Take in a peer root's records: add and update them, drop the ones it no longer has.

        Records this root originated itself are never touched, so two roots can mirror
        each other; the peer's records are remembered with their origin (``GY_ORIGIN``).
        """
        doc = orjson.loads(body)
        peer = str(doc.get("node") or "peer")
        if peer == self.node_id:
            raise InvalidInput("a root cannot mirror itself (same node id)")
        wanted = {
            fold(r["handle"]): r
            for r in doc.get("records", [])
            if isinstance(r, dict) and isinstance(r.get("handle"), str) and isinstance(r.get("values"), list)
        }
        changed = 0
        own: set[str] = set()
        for handle, values in await self._prefix_records():
            origin = _origin(values)
            if origin in (None, self.node_id):
                own.add(fold(handle))
            elif origin == peer and fold(handle) not in wanted:
                await self.registry.delete(self.tenant_id, handle)
                changed += 1
        items = []
        for norm, rec in wanted.items():
            if norm in own:
                continue  # our own filing wins over the peer's copy
            values = [v for v in decode_values(rec["values"]) if v.type != ORIGIN_TYPE]
            items.append((rec["handle"], [*values, _origin_value(peer)]))
        for start in range(0, len(items), 2000):
            results = await self.registry.register_batch(
                self.tenant_id, items[start : start + 2000], overwrite=True
            )
            changed += sum(1 for r in results if r.status in {"created", "updated"})
        return changed

    def install(self, app: AsgiApp, role: str) -> None:
        """Mount the endpoints that fit the node's role."""
        app.mount("/api/templates", self.templates)
        if role == "root":
            app.mount("/api/filings", self.filings)
            app.mount("/api/mirror", self.mirror_export)
        if role == "secondary":
            app.mount("/api/allocations", self.allocations)


class RecursiveRoutes:
    """The recursive node: ``GET /api/handles/{handle}`` answered by the resolver."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def fast_get(self, raw_path: bytes) -> bytes | None:
        """A cached positive answer straight from the memory cache."""
        if not raw_path.startswith(b"/api/handles/"):
            return None
        text = raw_path[13:]
        if b"%" in text:
            text = unquote_to_bytes(text)
        try:
            norm = text.decode("utf-8").translate(_UPPER)
        except UnicodeDecodeError:
            return None
        body = self.resolver.cached_now(norm)
        if body is None or body.startswith(b'{"responseCode":100'):
            return None
        self.resolver.stats.hits += 1
        return body

    def fast_raw(self, url: bytes, headers: list[tuple[bytes, bytes]], keep: bool) -> bytes | None:
        """A cached answer (200, or 404 for a cached 'not found') as a whole HTTP response."""
        if b"?" in url or not url.startswith(b"/api/handles/"):
            return None
        text = unquote_to_bytes(url[13:]) if b"%" in url else url[13:]
        try:
            body = self.resolver.cached_now(text.decode("utf-8").translate(_UPPER))
        except UnicodeDecodeError:
            return None
        if body is None:
            return None
        conn = b"" if keep else b"connection: close\r\n"
        if body.startswith(b'{"responseCode":100'):
            self.resolver.stats.negative_hits += 1
            return _NOT_FOUND_HEAD + str(len(body)).encode() + b"\r\n" + conn + b"\r\n" + body
        if any(n in _CREDENTIALS for n, _ in headers):  # as fast_get: positive answers go anonymous
            return None
        self.resolver.stats.hits += 1
        return _OK_HEAD + str(len(body)).encode() + b"\r\n" + conn + b"\r\n" + body

    def miss_raw(self, url: bytes, headers: list[tuple[bytes, bytes]], keep: bool, reply: Reply) -> bool:
        """A plain GET of an identifier not in this worker's tier: answered (through ``reply``) from
        Redis or upstream without the app; False leaves the request to it (queries, credentials,
        malformed identifiers)."""
        if b"?" in url or not url.startswith(b"/api/handles/"):
            return False
        if any(n in _CREDENTIALS for n, _ in headers):
            return False
        text = unquote_to_bytes(url[13:]) if b"%" in url else url[13:]
        try:
            h = parse(text.decode("utf-8"))
        except (UnicodeDecodeError, GongyunError):
            return False
        self.resolver.lookup(h).add_done_callback(lambda f: reply(_http_answer(f, keep)))
        return True

    async def handles(self, req: Request) -> Response:
        """Resolve one identifier (``index`` and ``type`` filter the answer)."""
        if req.method != "GET":
            raise PermissionDenied("a recursive node only resolves (GET)")
        handle = req.path[len("/api/handles/") :]
        answer = await self.resolver.resolve(handle)
        indexes, types = req.query.get("index"), req.query.get("type")
        if answer.status != 200 or (not indexes and not types):
            return Response(answer.status, answer.body)
        doc = orjson.loads(answer.body)
        keep = [
            v
            for v in doc.get("values", [])
            if str(v.get("index")) in (indexes or []) or v.get("type") in (types or [])
        ]
        return json_response(
            200, {"responseCode": RC_SUCCESS if keep else 200, "handle": doc.get("handle"), "values": keep}
        )

    async def stats(self, req: Request) -> Response:
        """Cache and upstream counters."""
        st = self.resolver.stats
        return json_response(
            200,
            {
                "hits": st.hits,
                "misses": st.misses,
                "negativeHits": st.negative_hits,
                "upstream": st.upstream,
                "upstreamErrors": st.upstream_errors,
                "bySite": st.by_site,
            },
        )

    async def sites(self, req: Request) -> Response:
        """``GET /api/resolver/sites?prefix=P``: the sites the referrals lead to for a prefix."""
        prefix = req.arg("prefix") or ""
        parse(f"{prefix}/x")
        found = await self.resolver.sites_for(prefix)
        if found is None:
            return json_response(404, {"responseCode": RC_HANDLE_NOT_FOUND, "prefix": prefix, "sites": []})
        return json_response(200, {"responseCode": RC_SUCCESS, "prefix": prefix, "sites": found})

    def install(self, app: AsgiApp) -> None:
        """Mount the resolver endpoints and the fast path."""
        app.mount("/api/handles/", self.handles)
        app.mount("/api/resolver/stats", self.stats)
        app.mount("/api/resolver/sites", self.sites)
        app.fast_get = self.fast_get
        app.fast_raw = self.fast_raw
        app.deferred_raw = self.miss_raw


def _http_answer(fut: asyncio.Future[Answer], keep: bool) -> bytes:
    """The whole HTTP response of a resolution (an error as the app would render it)."""
    exc = fut.exception()
    if exc is not None:
        return http_bytes(error_response(exc), keep)
    answer = fut.result()
    conn = b"" if keep else b"connection: close\r\n"
    head = _OK_HEAD if answer.status == 200 else _NOT_FOUND_HEAD
    return head + str(len(answer.body)).encode() + b"\r\n" + conn + b"\r\n" + answer.body


_NOT_FOUND_HEAD = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: "
_OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
_CREDENTIALS = (b"authorization", b"x-api-key")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
