"""Platform data: a classification on assets and devices; every existing asset, device and tag
gets a registered identifier in its tenant's prefix under the platform's ``id_prefix``.

Revision ID: assets_0004

The data step uses the same value layout and prefix allocation as ``gongyun.idres.objects``
(the running platform), with ``id_prefix`` and ``public_url`` from the configuration. The
down step removes those records and allocated prefixes and gives the objects back their
former unregistered ``88.100.1/gy.<kind>.<id>`` strings.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from gongyun.config import get_settings
from gongyun.idres import objects
from gongyun.idres import prefixes as pfx
from gongyun.idres.registry import encode_row, value_rows
from gongyun.idres.syntax import fold, parse, prefix_record
from gongyun.idres.values import HandleValue

revision = "assets_0004"
down_revision = "assets_0003"
branch_labels = None
depends_on = "idres_0001"

_LEGACY_PREFIX = "88.100.1"


def _table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns))


_OBJECT = ("id", "tenant_id", "name", "classification", "identifier")
_KINDS = (
    ("asset", _table("asset_nodes", *_OBJECT, "parent_id"), "parent_id"),
    ("device", _table("asset_devices", *_OBJECT, "equipment_id"), "equipment_id"),
    ("tag", _table("asset_tags", *_OBJECT, "device_id"), "device_id"),
)
_PREFIXES = _table(
    "idres_prefixes",
    *("id", "tenant_id", "prefix", "prefix_norm", "parent", "kind", "status", "org_name", "contact"),
    *("site_json", "history_json", "created_at", "updated_at"),
)
_RECORDS = _table(
    "idres_records",
    *("handle_norm", "tenant_id", "handle", "prefix_norm", "values_json", "public_json", "all_public"),
    *("min_ttl", "version", "created_at", "updated_at"),
)
_VALUES = _table("idres_values", "handle_norm", "idx", "tenant_id", "type", "value_key", "public")


def _insert_record(conn: sa.Connection, tenant_id: str, handle: str, values: list[HandleValue]) -> None:
    h = parse(handle)
    row = encode_row(tenant_id, h, values)
    # this revision's idres_records still requires public_json (idres_0004 relaxes that)
    row["public_json"] = row["public_json"] or row["values_json"]
    conn.execute(_RECORDS.insert(), [row])
    conn.execute(_VALUES.insert(), value_rows(tenant_id, h.norm, values))


def _allocate(conn: sa.Connection, tenant_id: str, id_prefix: str) -> str:
    """The tenant's prefix under ``id_prefix``: its active one, or the next one filed for it."""
    q = sa.select(_PREFIXES.c.prefix, _PREFIXES.c.tenant_id, _PREFIXES.c.status)
    rows = conn.execute(q.where(_PREFIXES.c.prefix_norm.like(fold(id_prefix) + ".%"))).all()
    children = [(p, t, st) for p, t, st in rows if objects.is_child(p, id_prefix)]
    found = objects.own_prefix(tenant_id, id_prefix, children)
    if found is not None:
        return found
    active = pfx.FilingStatus.active
    if (
        conn.execute(sa.select(_PREFIXES.c.id).where(_PREFIXES.c.prefix_norm == fold(id_prefix))).first()
        is None
    ):
        secondary = pfx.PrefixKind.secondary
        row = pfx.prefix_row(
            objects.PLATFORM_OWNER, id_prefix, secondary, active, note=objects.SECONDARY_NOTE
        )
        conn.execute(_PREFIXES.insert(), [row])
    prefix = objects.next_child(id_prefix, [c[0] for c in children])
    row = pfx.prefix_row(tenant_id, prefix, pfx.PrefixKind.enterprise, active, note=objects.ALLOCATED_NOTE)
    conn.execute(_PREFIXES.insert(), [row])
    _insert_record(
        conn, objects.PLATFORM_OWNER, str(prefix_record(prefix)), objects.referral_values(id_prefix)
    )
    return prefix


def upgrade() -> None:
    """Add the classification columns, then register every object's identifier."""
    for name in ("asset_nodes", "asset_devices"):
        op.add_column(
            name, sa.Column("classification", sa.String(16), nullable=False, server_default="general")
        )
    settings = get_settings()
    conn = op.get_bind()
    found: list[tuple[str, sa.TableClause, Any]] = []
    for kind, table, parent_col in _KINDS:
        q = sa.select(
            table.c.id, table.c.tenant_id, table.c.name, table.c.classification, table.c[parent_col]
        )
        found += [(kind, table, row) for row in conn.execute(q.order_by(table.c.id)).all()]
    prefixes = {t: _allocate(conn, t, settings.id_prefix) for t in sorted({row[1] for _, _, row in found})}
    ids = {row[0]: objects.object_handle(prefixes[row[1]], kind, row[0]) for kind, _, row in found}
    for kind, table, (object_id, tenant_id, title, classification, parent_id) in found:
        values = objects.object_values(
            prefixes[tenant_id],
            kind,
            object_id,
            title,
            classification,
            ids.get(parent_id or ""),
            settings.effective_public_url,
        )
        _insert_record(conn, tenant_id, ids[object_id], values)
        conn.execute(table.update().where(table.c.id == object_id).values(identifier=ids[object_id]))


def _drop_record(conn: sa.Connection, handle: str) -> None:
    norm = fold(handle)
    conn.execute(_VALUES.delete().where(_VALUES.c.handle_norm == norm))
    conn.execute(_RECORDS.delete().where(_RECORDS.c.handle_norm == norm))


def downgrade() -> None:
    """Remove the object records and allocated prefixes; drop the classification columns."""
    conn = op.get_bind()
    for kind, table, _ in _KINDS:
        for object_id, identifier in conn.execute(sa.select(table.c.id, table.c.identifier)).all():
            if identifier:
                _drop_record(conn, identifier)
            legacy = f"{_LEGACY_PREFIX}/gy.{kind}.{object_id}"
            conn.execute(table.update().where(table.c.id == object_id).values(identifier=legacy))
    note = _PREFIXES.c.history_json.like(f"%{objects.ALLOCATED_NOTE}%")
    for prefix in list(conn.execute(sa.select(_PREFIXES.c.prefix).where(note)).scalars()):
        _drop_record(conn, str(prefix_record(prefix)))
        conn.execute(_PREFIXES.delete().where(_PREFIXES.c.prefix_norm == fold(prefix)))
    conn.execute(
        _PREFIXES.delete().where(
            _PREFIXES.c.tenant_id == objects.PLATFORM_OWNER,
            _PREFIXES.c.history_json.like(f"%{objects.SECONDARY_NOTE}%"),
        )
    )
    for name in ("asset_devices", "asset_nodes"):
        op.execute(f"ALTER TABLE {name} DROP COLUMN classification")
