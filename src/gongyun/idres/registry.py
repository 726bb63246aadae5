"""The identifier registry: records, batch registration, reverse lookup, templates.

Every function takes the tenant id and only sees that tenant's records; a record of
another tenant is ``HandleNotFound``. Methods take an optional ``AsyncSession`` (the API's
request session); without one they open and commit their own. Prefixes and filing live
in ``gongyun.idres.prefixes``; bulk import in ``gongyun.idres.bulk``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gongyun.db import Database, utcnow
from gongyun.errors import GongyunError, InvalidInput
from gongyun.idres import prefixes as pfx
from gongyun.idres.changes import announce
from gongyun.idres.errors import HandleExists, HandleNotFound, response_code
from gongyun.idres.models import IdRecord, IdTemplate, IdValue
from gongyun.idres.sealing import needs_sealing, open_values, seal_values
from gongyun.idres.syntax import Handle, fold, parse, prefix_chain
from gongyun.idres.templates import Template, parse_template, template_ref
from gongyun.idres.values import (
    DEFAULT_TTL,
    MAX_RECORD_BYTES,
    HandleValue,
    RecordTooLarge,
    decode_stored,
    decode_values,
    encode_values,
)
from gongyun.security.classify.keyring import DataKeyGone, Keyring

MAX_BATCH = 2_000
_CHUNK = 500
# handle, values_json, public_json (the same object when every value is public), min_ttl, tenant
RawRecord = tuple[str, str, str, int, str]


@dataclass(slots=True)
class Record:
    """A record as stored: identifier (as registered) and its values."""

    handle: str
    values: list[HandleValue]
    version: int
    updated_at: datetime
    public_json: str | None = None  # the public values as stored (Handle JSON), when read for resolution

    def to_json(self, public_only: bool = False) -> dict[str, Any]:
        """Handle.Net REST JSON (without ``responseCode``)."""
        return {"handle": self.handle, "values": encode_values(self.values, public_only)}


@dataclass(slots=True)
class ItemResult:
    """The outcome of one item of a batch registration."""

    handle: str
    status: str  # created | updated | unchanged | error
    response_code: int = 1
    code: str | None = None
    message: str | None = None
    errors: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (errors only when the item failed)."""
        out: dict[str, Any] = {
            "handle": self.handle,
            "status": self.status,
            "responseCode": self.response_code,
        }
        if self.code:
            out.update(code=self.code, message=self.message)
        if self.errors:
            out["errors"] = self.errors
        return out


def encode_row(tenant_id: str, handle: Handle, values: list[HandleValue], version: int = 1) -> dict[str, Any]:
    """The ``idres_records`` row for a record (raises ``RecordTooLarge``)."""
    full = orjson.dumps(encode_values(values)).decode()
    if len(full) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"the record is {len(full)} bytes, at most {MAX_RECORD_BYTES} allowed")
    public = [v for v in values if v.public]
    now = utcnow()
    return {
        "handle_norm": handle.norm,
        "tenant_id": tenant_id,
        "handle": str(handle),
        "prefix_norm": handle.prefix_norm,
        "values_json": full,
        "public_json": None if len(public) == len(values) else orjson.dumps(encode_values(public)).decode(),
        "all_public": len(public) == len(values),
        "min_ttl": min((v.ttl for v in values), default=DEFAULT_TTL),
        "version": version,
        "created_at": now,
        "updated_at": now,
    }


def value_rows(tenant_id: str, norm: str, values: list[HandleValue]) -> list[dict[str, Any]]:
    """The reverse-lookup rows of a record (none for core values: their text is kept nowhere in clear)."""
    return [
        {
            "handle_norm": norm,
            "idx": v.index,
            "tenant_id": tenant_id,
            "type": v.type[:255],
            "value_key": v.text()[:255],
            "public": v.public,
        }
        for v in values
        if not v.sealed
    ]


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


class Registry:
    """Tenant-scoped access to identifier records on one database."""

    def __init__(self, db: Database, enforce_prefixes: bool = True, keyring: Keyring | None = None) -> None:
        self.db = db
        self.enforce_prefixes = enforce_prefixes
        self.keyring = keyring  # seals and opens core values (None: core values are refused)
        self.listeners: list[Any] = []  # callables(norm) told about every change (cache invalidation)

    @asynccontextmanager
    async def _session(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        if session is not None:
            yield session
        else:
            async with self.db.session() as s:
                yield s

    def _changed(self, norms: list[str]) -> None:
        for listener in self.listeners:
            for norm in norms:
                listener(norm)

    async def get(
        self, tenant_id: str, handle: str, session: AsyncSession | None = None, *, reveal: bool = False
    ) -> Record:
        """The record of ``handle``; ``HandleNotFound`` if absent or another tenant's.

        Core values come back sealed unless ``reveal`` (then opened: ``DataKeyGone`` once shredded).
        """
        h = parse(handle)
        async with self._session(session) as s:
            row = await s.get(IdRecord, h.norm)
            if row is None or row.tenant_id != tenant_id:
                raise HandleNotFound(f"identifier {handle} not found", handle=handle)
            values = decode_stored(orjson.loads(row.values_json))
            if reveal:
                values = await open_values(self.keyring, s, tenant_id, h.norm, values)
        return Record(row.handle, values, row.version, row.updated_at)

    async def get_raw(self, tenant_id: str | None, norm: str) -> RawRecord | None:
        """``(handle, values_json, public_json, min_ttl, tenant)`` for a normalised key, or None.

        ``tenant_id`` None reads any tenant's record (a node serving every tenant).
        """
        q = select(
            IdRecord.handle, IdRecord.values_json, IdRecord.public_json, IdRecord.min_ttl, IdRecord.tenant_id
        ).where(IdRecord.handle_norm == norm)
        if tenant_id is not None:
            q = q.where(IdRecord.tenant_id == tenant_id)
        async with self.db.sessions() as s:
            row = (await s.execute(q)).first()
        return None if row is None else (row[0], row[1], row[2] or row[1], row[3], row[4])

    async def _check(self, s: AsyncSession, tenant_id: str, h: Handle, values: list[HandleValue]) -> None:
        if self.enforce_prefixes and not h.is_prefix_record:
            await pfx.require_active(s, tenant_id, h.prefix)
        ref = template_ref(values)
        if ref is not None:
            template = await self.get_template(tenant_id, h.prefix, ref[0], ref[1], session=s)
            template.check(values)

    async def put(
        self,
        tenant_id: str,
        handle: str,
        values: list[HandleValue],
        overwrite: bool = False,
        session: AsyncSession | None = None,
    ) -> tuple[Record, bool]:
        """Create (or with ``overwrite`` replace) a record; returns it and whether it was created."""
        results = await self.register_batch(
            tenant_id,
            [(handle, values)],
            overwrite=overwrite,
            session=session,
            raise_errors=True,
            idempotent=overwrite,
        )
        rec = await self.get(tenant_id, handle, session=session)
        return rec, results[0].status == "created"

    async def update_values(
        self, tenant_id: str, handle: str, values: list[HandleValue], session: AsyncSession | None = None
    ) -> Record:
        """Add or replace the given values (by index), keeping the others."""
        async with self._session(session) as s:
            current = await self.get(tenant_id, handle, session=s)
            merged = {v.index: v for v in current.values}
            merged.update({v.index: v for v in values})
            await self.register_batch(
                tenant_id,
                [(handle, sorted(merged.values(), key=lambda v: v.index))],
                overwrite=True,
                session=s,
                raise_errors=True,
            )
            return await self.get(tenant_id, handle, session=s)

    async def delete(self, tenant_id: str, handle: str, session: AsyncSession | None = None) -> None:
        """Delete a whole record."""
        h = parse(handle)
        async with self._session(session) as s:
            row = await s.get(IdRecord, h.norm)
            if row is None or row.tenant_id != tenant_id:
                raise HandleNotFound(f"identifier {handle} not found", handle=handle)
            await s.delete(row)
            await s.execute(delete(IdValue).where(IdValue.handle_norm == h.norm))
            await announce(s, [h.norm])
        self._changed([h.norm])

    async def delete_values(
        self, tenant_id: str, handle: str, indexes: list[int], session: AsyncSession | None = None
    ) -> Record:
        """Remove the values with the given indexes from a record."""
        async with self._session(session) as s:
            current = await self.get(tenant_id, handle, session=s)
            keep = [v for v in current.values if v.index not in set(indexes)]
            await self.register_batch(
                tenant_id, [(handle, keep)], overwrite=True, session=s, raise_errors=True
            )
            return await self.get(tenant_id, handle, session=s)

    async def register_batch(
        self,
        tenant_id: str,
        items: list[tuple[str, Any]],
        *,
        overwrite: bool = False,
        session: AsyncSession | None = None,
        raise_errors: bool = False,
        idempotent: bool = True,
    ) -> list[ItemResult]:
        """Register up to 2,000 records; idempotent (an identical record is ``unchanged``)."""
        if len(items) > MAX_BATCH:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH} records, got {len(items)}")
        results: list[ItemResult] = []
        parsed: dict[str, tuple[int, Handle, list[HandleValue]]] = {}
        async with self._session(session) as s:
            for i, (handle, raw_values) in enumerate(items):
                results.append(ItemResult(str(handle), "error"))
                try:
                    h = parse(handle)
                    values = raw_values if _all_decoded(raw_values) else decode_values(raw_values)
                    if h.norm in parsed:
                        raise InvalidInput(f"{handle} appears twice in the batch")
                    await self._check(s, tenant_id, h, values)
                    parsed[h.norm] = (i, h, values)
                except GongyunError as exc:
                    if raise_errors:
                        raise
                    _fail(results[i], exc)
            existing: dict[str, IdRecord] = {}
            norms = list(parsed)
            for start in range(0, len(norms), _CHUNK):
                chunk = norms[start : start + _CHUNK]
                rows = (await s.execute(select(IdRecord).where(IdRecord.handle_norm.in_(chunk)))).scalars()
                existing.update({r.handle_norm: r for r in rows})
            changed: list[str] = []
            for norm, (i, h, values) in parsed.items():
                res = results[i]
                try:
                    row = existing.get(norm)
                    if row is not None and row.tenant_id != tenant_id:
                        raise HandleExists(f"identifier {h} is registered elsewhere", handle=str(h))
                    if row is None:
                        stored = await seal_values(self.keyring, s, tenant_id, norm, values)
                        s.add(IdRecord(**encode_row(tenant_id, h, stored)))
                        res.status = "created"
                    else:
                        old = decode_stored(orjson.loads(row.values_json))
                        if idempotent and await self._same(s, tenant_id, norm, old, values):
                            res.status = "unchanged"
                            continue
                        if not overwrite:
                            raise HandleExists(f"identifier {h} already exists", handle=str(h))
                        stored = await seal_values(self.keyring, s, tenant_id, norm, values)
                        fresh = encode_row(tenant_id, h, stored, row.version + 1)
                        for key in (
                            "handle",
                            "values_json",
                            "public_json",
                            "all_public",
                            "min_ttl",
                            "version",
                        ):
                            setattr(row, key, fresh[key])
                        row.updated_at = fresh["updated_at"]
                        await s.execute(delete(IdValue).where(IdValue.handle_norm == norm))
                        res.status = "updated"
                    s.add_all(IdValue(**r) for r in value_rows(tenant_id, norm, stored))
                    changed.append(norm)
                except GongyunError as exc:
                    if raise_errors:
                        raise
                    _fail(res, exc)
            await s.flush()
            await announce(s, changed)
        self._changed(changed)
        return results

    async def _same(
        self, s: AsyncSession, tenant_id: str, norm: str, old: list[HandleValue], new: list[HandleValue]
    ) -> bool:
        """Whether ``new`` says what ``old`` (as stored) says; sealed values are opened to compare."""
        if needs_sealing(new) and any(v.sealed for v in old):
            try:
                old = await open_values(self.keyring, s, tenant_id, norm, old)
            except DataKeyGone:
                return False  # the old core values are gone: the new ones are news
        return _same(old, new)

    async def list_handles(
        self,
        tenant_id: str,
        prefix: str,
        page: int = 0,
        page_size: int = 1000,
        session: AsyncSession | None = None,
    ) -> tuple[int, list[str]]:
        """``(total, handles)`` under a prefix, ordered, one page (``page_size`` 0 = all)."""
        norm = fold(prefix)
        cond = (IdRecord.tenant_id == tenant_id, IdRecord.prefix_norm == norm)
        async with self._session(session) as s:
            total = (await s.execute(select(func.count()).select_from(IdRecord).where(*cond))).scalar_one()
            q = select(IdRecord.handle).where(*cond).order_by(IdRecord.handle_norm)
            if page_size > 0:
                q = q.offset(page * page_size).limit(page_size)
            handles = list((await s.execute(q)).scalars())
        return int(total), handles

    async def handles_after(
        self,
        tenant_id: str,
        prefix: str,
        after: str | None = None,
        limit: int = 1000,
        session: AsyncSession | None = None,
    ) -> list[str]:
        """One page of identifiers under a prefix, in key order, after the normalised key ``after``.

        Keyset pagination: each page is one range scan of ``ix_idres_records_tenant_prefix``,
        the same cost on the first page as deep into a registry of 100 million.
        """
        q = select(IdRecord.handle).where(
            IdRecord.tenant_id == tenant_id, IdRecord.prefix_norm == fold(prefix)
        )
        if after is not None:
            q = q.where(IdRecord.handle_norm > after)
        q = q.order_by(IdRecord.handle_norm).limit(limit)
        async with self._session(session) as s:
            return list((await s.execute(q)).scalars())

    async def reverse_lookup(
        self,
        tenant_id: str | None,
        criteria: dict[str, str],
        *,
        prefixes: list[str] | None = None,
        include_private: bool = False,
        limit: int = 1000,
        session: AsyncSession | None = None,
    ) -> list[str]:
        """Identifiers whose values match every ``type -> pattern`` (``*`` wildcards; every tenant's
        when ``tenant_id`` is None, for a node serving them all): the first page, in key order."""
        page = await self.reverse_page(
            tenant_id,
            criteria,
            prefixes=prefixes,
            include_private=include_private,
            limit=limit,
            session=session,
        )
        return [h for h, _ in page]

    async def reverse_page(
        self,
        tenant_id: str | None,
        criteria: dict[str, str],
        *,
        prefixes: list[str] | None = None,
        include_private: bool = False,
        after: str | None = None,
        limit: int = 1000,
        session: AsyncSession | None = None,
    ) -> list[tuple[str, str]]:
        """One page of ``(identifier, normalised key)`` matching every ``type -> pattern``, in key
        order after the normalised key ``after``.

        Keyset pagination: the first criterion drives the page (an exact value reads one range of
        ``ix_idres_values_lookup``, which ends with the key, so a page costs the same however many
        identifiers match and however deep it is); the others are checked per candidate.
        """
        if not criteria:
            raise InvalidInput("reverse lookup needs at least one TYPE=value criterion")

        def match(v: Any, vtype: str, pattern: str) -> Any:
            cond = [v.type == vtype]
            if tenant_id is not None:
                cond.append(v.tenant_id == tenant_id)
            if "*" in pattern:
                cond.append(v.value_key.like(_like(pattern[:255]), escape="\\"))
            else:
                cond.append(v.value_key == pattern[:255])
            if not include_private:
                cond.append(v.public.is_(True))
            return and_(*cond)

        (first_type, first_pattern), *rest = sorted(criteria.items(), key=lambda kv: "*" in kv[1])
        lead = aliased(IdValue)
        q = (
            select(IdRecord.handle, lead.handle_norm)
            .join(IdRecord, IdRecord.handle_norm == lead.handle_norm)
            .where(match(lead, first_type, first_pattern))
        )
        if tenant_id is not None:
            q = q.where(IdRecord.tenant_id == tenant_id)
        if after is not None:
            q = q.where(lead.handle_norm > after)
        for vtype, pattern in rest:
            other = aliased(IdValue)
            q = q.where(exists().where(other.handle_norm == lead.handle_norm, match(other, vtype, pattern)))
        if prefixes is not None:
            allowed = [fold(p) for p in prefixes]
            if not allowed:
                return []
            q = q.where(
                or_(
                    *(
                        or_(
                            IdRecord.prefix_norm == a, IdRecord.prefix_norm.like(_like(a) + ".%", escape="\\")
                        )
                        for a in allowed
                    )
                )
            )
        q = q.group_by(lead.handle_norm, IdRecord.handle).order_by(lead.handle_norm).limit(limit)
        async with self._session(session) as s:
            return [(h, n) for h, n in (await s.execute(q)).all()]

    async def save_template(self, tenant_id: str, raw: Any, session: AsyncSession | None = None) -> Template:
        """Store a template definition as the next version of its name under its prefix."""
        draft = parse_template(raw)
        norm = fold(draft.prefix)
        async with self._session(session) as s:
            latest = (
                await s.execute(
                    select(func.max(IdTemplate.version)).where(
                        IdTemplate.tenant_id == tenant_id,
                        IdTemplate.prefix_norm == norm,
                        IdTemplate.name == draft.name,
                    )
                )
            ).scalar_one()
            body = draft.to_json() | {"version": (latest or 0) + 1}
            template = parse_template(body)
            s.add(
                IdTemplate(
                    tenant_id=tenant_id,
                    prefix_norm=norm,
                    name=template.name,
                    version=template.version,
                    definition_json=orjson.dumps(template.to_json()).decode(),
                )
            )
            await s.flush()
        return template

    async def get_template(
        self,
        tenant_id: str,
        prefix: str,
        name: str,
        version: int | None = None,
        session: AsyncSession | None = None,
    ) -> Template:
        """A template by name on ``prefix`` or its nearest ancestor (latest version by default)."""
        chain = [fold(p) for p in prefix_chain(prefix)]
        async with self._session(session) as s:
            q = select(IdTemplate).where(
                IdTemplate.tenant_id == tenant_id, IdTemplate.prefix_norm.in_(chain), IdTemplate.name == name
            )
            if version is not None:
                q = q.where(IdTemplate.version == version)
            rows = list((await s.execute(q)).scalars())
        if not rows:
            label = f"{name}@{version}" if version else name
            raise HandleNotFound(f"template {label} not found for prefix {prefix}", template=label)
        best = max(rows, key=lambda r: (len(r.prefix_norm), r.version))
        return parse_template(orjson.loads(best.definition_json))

    async def list_templates(self, tenant_id: str, session: AsyncSession | None = None) -> list[Template]:
        """Every template version of the tenant."""
        async with self._session(session) as s:
            rows = (
                await s.execute(
                    select(IdTemplate)
                    .where(IdTemplate.tenant_id == tenant_id)
                    .order_by(IdTemplate.prefix_norm, IdTemplate.name, IdTemplate.version)
                )
            ).scalars()
            return [parse_template(orjson.loads(r.definition_json)) for r in rows]


def _all_decoded(raw: Any) -> bool:
    return isinstance(raw, list) and all(isinstance(v, HandleValue) for v in raw)


def _same(old: list[HandleValue], new: list[HandleValue]) -> bool:
    if len(old) != len(new):
        return False
    a, b = sorted(old, key=lambda v: v.index), sorted(new, key=lambda v: v.index)
    return all(x.same_content(y) for x, y in zip(a, b, strict=True))


def _fail(res: ItemResult, exc: GongyunError) -> None:
    res.status = "error"
    res.response_code = response_code(exc)[0]
    res.code = exc.code
    res.message = exc.message
    errors = exc.details.get("errors")
    res.errors = errors if isinstance(errors, list) else None
