"""The trace app in ``gongyun demo``: the packaging line's batches and material lots as identifiers.

The simulated line (``gongyun.sim.packaging``) reports the number of the batch it fills and of
the material lot loaded (tags ``batch`` and ``material_lot``); this seeds the default tenant with
two GTIN + lot templates and an edge line, and enables the app, so every finished batch becomes
a batch item linked to the lots it consumed (see :mod:`gongyun.apps.trace.edge`). An existing
installation keeps its settings; only a missing edge line for the device is added.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gongyun.apps.models import AppInstallation, installation
from gongyun.apps.trace import __version__
from gongyun.apps.trace.domain.ids import parse_template
from gongyun.apps.trace.settings import EdgeLine, Settings
from gongyun.apps.trace.tables import templates
from gongyun.db import Database
from gongyun.security.tenancy import scope_session

BATCHES = {
    "name": "demo-packs",
    "kind": "batch",
    "scheme": "gtin_lot",
    "gtin": "04012345000016",
    "pattern": "PK{seq}",
}
LOTS = {
    "name": "demo-film",
    "kind": "material_lot",
    "scheme": "gtin_lot",
    "gtin": "09506000134352",
    "pattern": "F{seq}",
}


def edge_line(device: str) -> EdgeLine:
    """The demo line: the device's ``batch`` tag and its ``material_lot`` tag."""
    return EdgeLine(
        machine=device,
        batch_tag=f"{device}/batch",
        batch_template=BATCHES["name"],
        lot_tags={f"{device}/material_lot": LOTS["name"]},
    )


async def seed(db: Database, tenant_id: str, device: str, base_url: str) -> None:
    """Templates, the edge line and the app enabled in ``tenant_id`` (kept when present)."""
    async with db.session() as session:
        scope_session(session.sync_session, tenant_id)
        make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        for raw in (BATCHES, LOTS):
            body = {**parse_template(raw).to_json(), "links": []}
            stmt = make(templates).values(tenant_id=tenant_id, name=raw["name"], body=body, next_seq=1)
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["tenant_id", "name"]))
        row = await installation(session, "trace")
        if row is None:
            cfg = Settings(base_url=base_url, edge_lines=[edge_line(device)])
            session.add(
                AppInstallation(
                    tenant_id=tenant_id,
                    app="trace",
                    version=__version__,
                    enabled=True,
                    settings=cfg.model_dump(mode="json"),
                    updated_by="demo",
                )
            )
        else:
            cfg = Settings.model_validate(row.settings)
            if not any(line.machine == device for line in cfg.edge_lines):
                cfg.edge_lines.append(edge_line(device))
                row.settings = cfg.model_dump(mode="json")
        await session.commit()
