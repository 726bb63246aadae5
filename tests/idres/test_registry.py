"""Registry contract suite, run on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from gongyun.idres import prefixes as pfx
from gongyun.idres.bulk import import_records
from gongyun.idres.errors import FilingTransition, HandleExists, HandleNotFound, PrefixNotServed
from gongyun.idres.registry import MAX_BATCH, Registry
from gongyun.idres.syntax import fold
from gongyun.idres.templates import TemplateViolation
from gongyun.idres.values import decode_values, string_value

from .conftest import OTHER, TENANT


def url(i: int, u: str = "https://example.org/p") -> list[dict[str, object]]:
    return [{"index": 1, "type": "URL", "data": f"{u}/{i}"}, {"index": 2, "type": "GY_KIND", "data": "pump"}]


async def test_create_get_update_delete(registry: Registry) -> None:
    rec, created = await registry.put(TENANT, "88.100.1/Pump-1", decode_values(url(1)))
    assert created and rec.handle == "88.100.1/Pump-1"
    got = await registry.get(TENANT, "88.100.1/PUMP-1")
    assert [v.type for v in got.values] == ["URL", "GY_KIND"]
    with pytest.raises(HandleExists):
        await registry.put(TENANT, "88.100.1/pump-1", decode_values(url(2)))
    _, created = await registry.put(TENANT, "88.100.1/pump-1", decode_values(url(2)), overwrite=True)
    assert not created
    rec = await registry.update_values(TENANT, "88.100.1/pump-1", [string_value(3, "EMAIL", "a@b.c")])
    assert [v.index for v in rec.values] == [1, 2, 3] and rec.version == 3
    rec = await registry.delete_values(TENANT, "88.100.1/pump-1", [2])
    assert [v.index for v in rec.values] == [1, 3]
    await registry.delete(TENANT, "88.100.1/pump-1")
    with pytest.raises(HandleNotFound):
        await registry.get(TENANT, "88.100.1/pump-1")


async def test_tenant_isolation(registry: Registry) -> None:
    await registry.put(TENANT, "88.100.1/a", decode_values(url(1)))
    with pytest.raises(HandleNotFound):
        await registry.get(OTHER, "88.100.1/a")
    with pytest.raises(HandleNotFound):
        await registry.delete(OTHER, "88.100.1/a")
    with pytest.raises(PrefixNotServed):
        await registry.put(OTHER, "88.100.1/b", decode_values(url(1)))
    with pytest.raises(PrefixNotServed):
        await registry.put(TENANT, "88.200/x", decode_values(url(1)))
    assert await registry.reverse_lookup(OTHER, {"URL": "*"}) == []


async def test_batch_per_item_and_idempotent(registry: Registry) -> None:
    items = [(f"88.100.1/b{i}", url(i)) for i in range(50)]
    items.append(("no-slash", url(0)))
    items.append(("88.100.1/bad", [{"index": 1, "type": "URL", "data": {"format": "weird", "value": "x"}}]))
    items.append(("88.200/theirs", url(0)))
    res = await registry.register_batch(TENANT, items)
    assert [r.status for r in res[:50]] == ["created"] * 50
    assert [(r.status, r.response_code) for r in res[50:]] == [("error", 102), ("error", 202), ("error", 301)]
    again = await registry.register_batch(TENANT, items[:50])
    assert {r.status for r in again} == {"unchanged"}
    changed = await registry.register_batch(TENANT, [("88.100.1/b0", url(99))])
    assert changed[0].status == "error" and changed[0].response_code == 101
    changed = await registry.register_batch(TENANT, [("88.100.1/b0", url(99))], overwrite=True)
    assert changed[0].status == "updated"
    with pytest.raises(Exception, match="at most"):
        await registry.register_batch(TENANT, [("88.100.1/x", url(1))] * (MAX_BATCH + 1))


async def test_list_and_reverse_lookup(registry: Registry) -> None:
    await registry.register_batch(TENANT, [(f"88.100.1/r{i:02d}", url(i)) for i in range(25)])
    hidden = [{"index": 1, "type": "URL", "data": "https://example.org/p/secret", "permissions": "1100"}]
    await registry.register_batch(TENANT, [("88.100.1/hidden", hidden)])
    total, page = await registry.list_handles(TENANT, "88.100.1", page=1, page_size=10)
    assert total == 26 and page[0] == "88.100.1/r09"
    assert await registry.reverse_lookup(TENANT, {"URL": "https://example.org/p/7"}) == ["88.100.1/r07"]
    assert len(await registry.reverse_lookup(TENANT, {"URL": "*example.org/p/1*"})) == 11
    assert await registry.reverse_lookup(TENANT, {"URL": "*secret"}) == []
    assert await registry.reverse_lookup(TENANT, {"URL": "*secret"}, include_private=True) == [
        "88.100.1/hidden"
    ]
    assert await registry.reverse_lookup(TENANT, {"URL": "*", "GY_KIND": "pump"}, prefixes=["88.999"]) == []
    assert await registry.reverse_lookup(TENANT, {"URL": "100%"}) == []


async def test_reverse_lookup_pages_by_key_through_every_match(registry: Registry) -> None:
    def values(i: int, kind: str) -> list[dict[str, object]]:
        return [
            {"index": 1, "type": "URL", "data": f"https://example.org/p/{i}"},
            {"index": 2, "type": "GY_KIND", "data": kind},
        ]

    items = [(f"88.100.1/p{i:03d}", values(i, "pump" if i % 3 else "valve")) for i in range(120)]
    assert {r.status for r in await registry.register_batch(TENANT, items)} == {"created"}
    pumps = [h for h, v in items if v[-1]["data"] == "pump"]
    seen: list[str] = []
    after: str | None = None
    while True:  # exact value, a second criterion, pages of 7
        page = await registry.reverse_page(TENANT, {"GY_KIND": "pump", "URL": "*"}, after=after, limit=7)
        seen += [h for h, _ in page]
        if len(page) < 7:
            break
        after = page[-1][1]
    assert seen == pumps and len(seen) == 80
    # a wildcard first criterion pages the same way; prefixes and tenants limit the matches
    deep = await registry.reverse_page(TENANT, {"URL": "*example.org*"}, after=fold("88.100.1/p115"), limit=3)
    assert [h for h, _ in deep] == ["88.100.1/p116", "88.100.1/p117", "88.100.1/p118"]
    assert len(await registry.reverse_page(TENANT, {"GY_KIND": "valve"}, prefixes=["88.100.1"])) == 40
    assert await registry.reverse_page(TENANT, {"GY_KIND": "pump"}, prefixes=["88.200"]) == []
    assert await registry.reverse_page(TENANT, {"GY_KIND": "pump"}, prefixes=[]) == []
    assert await registry.reverse_page(OTHER, {"GY_KIND": "pump"}) == []


async def test_templates_versioned_and_enforced(registry: Registry) -> None:
    t1 = await registry.save_template(
        TENANT, {"prefix": "88.100", "name": "pump", "items": [{"type": "GY_MODEL", "required": True}]}
    )
    t2 = await registry.save_template(
        TENANT,
        {
            "prefix": "88.100",
            "name": "pump",
            "items": [{"type": "GY_MODEL", "required": True, "maxLength": 3}],
        },
    )
    assert (t1.version, t2.version) == (1, 2)
    ok = [
        {"index": 1, "type": "GY_TEMPLATE", "data": "pump@1"},
        {"index": 2, "type": "GY_MODEL", "data": "LONGER"},
    ]
    await registry.put(TENANT, "88.100.1/t1", decode_values(ok))
    latest = [
        {"index": 1, "type": "GY_TEMPLATE", "data": "pump"},
        {"index": 2, "type": "GY_MODEL", "data": "LONGER"},
    ]
    with pytest.raises(TemplateViolation):
        await registry.put(TENANT, "88.100.1/t2", decode_values(latest))
    res = await registry.register_batch(TENANT, [("88.100.1/t3", latest)])
    assert res[0].errors and res[0].errors[0]["rule"] == "maxLength"
    assert [t.ref for t in await registry.list_templates(TENANT)] == ["pump@1", "pump@2"]


async def test_filing_workflow(registry: Registry) -> None:
    async with registry.db.session() as s:
        info = await pfx.submit(s, TENANT, "88.100.2", "enterprise", org_name="Acme")
        assert info.status == "submitted"
    with pytest.raises(PrefixNotServed):
        await registry.put(TENANT, "88.100.2/x", decode_values(url(1)))
    async with registry.db.session() as s:
        await pfx.transition(s, TENANT, "88.100.2", "verified", "docs ok")
        await pfx.transition(s, TENANT, "88.100.2", "active")
    await registry.put(TENANT, "88.100.2/x", decode_values(url(1)))
    async with registry.db.session() as s:
        info = await pfx.transition(s, TENANT, "88.100.2", "suspended")
        assert [h["status"] for h in info.history] == ["submitted", "verified", "active", "suspended"]
        with pytest.raises(FilingTransition):
            await pfx.transition(s, TENANT, "88.100.2", "verified")
        with pytest.raises(PrefixNotServed):
            await pfx.get(s, OTHER, "88.100.2")
        assert [p.prefix for p in await pfx.list_prefixes(s, TENANT, "active")] == ["88.100.1"]
    with pytest.raises(PrefixNotServed):
        await registry.put(TENANT, "88.100.2/y", decode_values(url(1)))


async def test_bulk_import(registry: Registry) -> None:
    rows: list[tuple[str, object]] = [(f"88.100.1/imp-{i}", url(i)) for i in range(3000)]
    rows.append(("bad id", url(0)))
    odd = "tab\there back\\slash\nnew line ✓"
    rows.append(("88.100.1/odd", [{"index": 1, "type": "NOTE", "data": odd}]))
    # all or nothing by default: the bad row (line 3001) refuses the whole import
    refused = await import_records(registry.db, TENANT, rows, batch_size=1000)
    assert (refused.inserted, refused.failed, refused.rolled_back) == (0, 1, True)
    assert refused.errors[0]["line"] == 3001 and refused.errors[0]["code"] == "identifier_malformed"
    assert (await registry.list_handles(TENANT, "88.100.1"))[0] == 0
    stats = await import_records(registry.db, TENANT, rows, batch_size=1000, skip_bad=True)
    assert (stats.inserted, stats.failed, stats.rolled_back) == (3001, 1, False)
    assert (await registry.get(TENANT, "88.100.1/odd")).values[0].value == odd
    again = await import_records(registry.db, TENANT, rows[:1500], batch_size=1000)
    assert (again.inserted, again.skipped) == (0, 1500)
    rec = await registry.get(TENANT, "88.100.1/IMP-2999")
    assert rec.values[0].value == "https://example.org/p/2999"
    assert await registry.reverse_lookup(TENANT, {"URL": "https://example.org/p/42"}) == ["88.100.1/imp-42"]
    # keyset pages in key order (text order: IMP-2999 < IMP-3 < ODD)
    assert await registry.handles_after(TENANT, "88.100.1", "88.100.1/IMP-2998", 2) == [
        "88.100.1/imp-2999",
        "88.100.1/imp-3",
    ]
    assert await registry.handles_after(TENANT, "88.100.1", "88.100.1/IMP-999") == ["88.100.1/odd"]


async def test_bulk_import_stores_what_a_registration_stores(registry: Registry) -> None:
    from sqlalchemy import text

    from gongyun.idres.values import ADMIN_ONLY, HandleValue, admin_value

    values = [  # out of index order, one value readable by admins only, ttls that differ, a JSON value
        string_value(7, "GY_LOT", "L-1", ttl=600),
        HandleValue(index=2, type="EMAIL", format="string", value="ops@x.cn", ttl=60, permissions=ADMIN_ONLY),
        admin_value("88.100.1/admin"),
        string_value(1, "URL", "https://example.org/p/1"),
    ]
    await registry.put(TENANT, "88.100.1/reg", values)
    stats = await import_records(registry.db, TENANT, [("88.100.1/imp", values)])
    assert (stats.inserted, stats.failed) == (1, 0)
    cols = "values_json, public_json, all_public, min_ttl"
    async with registry.db.session() as s:
        rows = {}
        for key in ("REG", "IMP"):
            rec = (
                await s.execute(
                    text(f"SELECT {cols} FROM idres_records WHERE handle_norm = :n"), {"n": f"88.100.1/{key}"}
                )
            ).one()
            vals = (
                await s.execute(
                    text(
                        "SELECT idx, type, value_key, public FROM idres_values"
                        " WHERE handle_norm = :n ORDER BY idx"
                    ),
                    {"n": f"88.100.1/{key}"},
                )
            ).all()
            rows[key] = (tuple(rec), [tuple(v) for v in vals])
    assert rows["IMP"] == rows["REG"]
    imp = rows["IMP"][0]
    assert not imp[2] and imp[3] == 60 and "ops@x.cn" in imp[0] and "ops@x.cn" not in imp[1]
    assert [v[0] for v in rows["IMP"][1]] == [1, 2, 7, 100]
    got = await registry.get(TENANT, "88.100.1/imp")
    assert [v.index for v in got.values] == [1, 2, 7, 100]


async def test_an_all_public_record_is_stored_once(registry: Registry) -> None:
    from sqlalchemy import text

    from gongyun.idres.values import ADMIN_ONLY, HandleValue

    await registry.put(TENANT, "88.100.1/pub", decode_values(url(1)))
    stats = await import_records(registry.db, TENANT, [("88.100.1/pub-bulk", decode_values(url(2)))])
    assert stats.inserted == 1
    secret = HandleValue(index=3, type="EMAIL", format="string", value="ops@x.cn", permissions=ADMIN_ONLY)
    await registry.put(TENANT, "88.100.1/mixed", [*decode_values(url(3)), secret])
    sql = "SELECT handle_norm, public_json IS NULL, all_public FROM idres_records WHERE handle_norm LIKE :p"
    async with registry.db.session() as s:
        stored = {r[0]: (bool(r[1]), bool(r[2])) for r in await s.execute(text(sql), {"p": "88.100.1/%"})}
    assert stored == {
        "88.100.1/PUB": (True, True),
        "88.100.1/PUB-BULK": (True, True),
        "88.100.1/MIXED": (False, False),
    }
    for norm in ("88.100.1/PUB", "88.100.1/PUB-BULK"):
        raw = await registry.get_raw(TENANT, norm)
        assert raw is not None and raw[2] == raw[1] and "https://example.org/p/" in raw[2]
    mixed = await registry.get_raw(TENANT, "88.100.1/MIXED")
    assert mixed is not None and "ops@x.cn" in mixed[1] and "ops@x.cn" not in mixed[2]
    # a row written before idres_0004 (the full rendering twice) reads the same
    async with registry.db.session() as s:
        await s.execute(
            text("UPDATE idres_records SET public_json = values_json WHERE handle_norm = '88.100.1/PUB'")
        )
        await s.commit()
    legacy = await registry.get_raw(TENANT, "88.100.1/PUB")
    assert legacy is not None and legacy[2] == legacy[1]


async def test_bulk_import_applies_prefixes_and_templates(registry: Registry) -> None:
    await registry.save_template(
        TENANT, {"prefix": "88.100.1", "name": "pump", "items": [{"type": "GY_MODEL", "required": True}]}
    )
    pump = [{"index": 1, "type": "GY_TEMPLATE", "data": "pump"}]
    rows = [
        ("88.100.1/p1", [*pump, {"index": 2, "type": "GY_MODEL", "data": "X1"}], 2),
        ("88.100.1/p2", pump, 3),  # GY_MODEL missing
        ("88.200/other", url(1), 4),  # the other tenant's prefix
        ("88.100.1/p3", [{"index": 1, "type": "GY_TEMPLATE", "data": "nope"}], 5),
        ("88.100.1/p4", [{"index": 1, "type": "URL"}], 6),  # no data
    ]
    stats = await import_records(registry.db, TENANT, rows, skip_bad=True)
    assert (stats.inserted, stats.failed) == (1, 4)
    assert [(e["line"], e["code"]) for e in stats.errors] == [
        (3, "identifier_template_violation"),
        (4, "identifier_prefix_not_served"),
        (5, "identifier_not_found"),
        (6, "identifier_value_invalid"),
    ]
    assert (await registry.get(TENANT, "88.100.1/P1")).values[1].value == "X1"
    with pytest.raises(HandleNotFound):
        await registry.get(TENANT, "88.100.1/p2")
