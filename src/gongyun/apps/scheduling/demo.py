"""The scheduling app in ``gongyun demo``: the virtual factory's machines and a few orders.

Seeds the default tenant once (an app already installed there, or machines or orders already
present, are left alone): the app enabled with short solve times, the CNC mill (down while its
spindle turns below 100 rpm), the pump test stand and the packaging line as machines bound to
their equipment, and four pump-housing orders routed mill -> test -> pack with due dates from
now. The planner solves and publishes in the console; stopping the CNC (an injected fault)
then proposes a repair.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from gongyun.apps.models import AppInstallation, installation
from gongyun.apps.scheduling.manifest import MANIFEST
from gongyun.apps.scheduling.settings import Settings
from gongyun.apps.scheduling.tables import machines, orders, routings
from gongyun.db import Database
from gongyun.security.tenancy import scope_session

SETTINGS = Settings(time_limit_s=5, repair_time_limit_s=3, repair_minutes=30)


def demo_machines(cnc: tuple[str, str], pump: str, pack: str) -> dict[str, dict[str, object]]:
    """The machines: the CNC ``(device, equipment path)``, the pump and packaging equipment paths."""
    device, path = cnc
    return {
        "CNC": {
            "name": "CNC mill M-1",
            "equipment": path,
            "watch_tag": f"{device}/spindle_speed",
            "down_below": 100.0,
        },
        "PUMP": {"name": "Pump test stand", "equipment": pump},
        "PACK": {"name": "Packaging line", "equipment": pack},
    }


async def seed(db: Database, tenant_id: str, cnc: tuple[str, str], pump: str, pack: str) -> bool:
    """Enable the app and add the demo's machines and orders; False when the tenant had them."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    async with db.session() as session:
        scope_session(session.sync_session, tenant_id)
        if await installation(session, MANIFEST.name) is not None:
            return False
        session.add(
            AppInstallation(
                tenant_id=tenant_id,
                app=MANIFEST.name,
                version=MANIFEST.version,
                enabled=True,
                settings=SETTINGS.model_dump(mode="json"),
                updated_by="demo",
            )
        )
        have = (
            await session.execute(
                select(func.count()).select_from(orders).where(orders.c.tenant_id == tenant_id)
            )
        ).scalar_one()
        if not have:
            for mid, body in demo_machines(cnc, pump, pack).items():
                await session.execute(
                    machines.insert().values(tenant_id=tenant_id, id=mid, unavailable=[], **body)
                )
            for k in range(4):
                await session.execute(
                    orders.insert().values(
                        tenant_id=tenant_id,
                        id=f"PO{k}",
                        product="pump housing",
                        quantity=1,
                        lot=f"L-{k}",
                        release_at=now,
                        due_at=now + timedelta(minutes=40 + 10 * k),
                        weight=1,
                        created_at=now,
                    )
                )
                # operation ids are qualified by their order, as POST /orders stores them
                steps = (
                    (f"PO{k}.mill", {"CNC": 12 + 2 * k}),
                    (f"PO{k}.test", {"PUMP": 6}),
                    (f"PO{k}.pack", {"PACK": 4}),
                )
                for seq, (op, durations) in enumerate(steps):
                    await session.execute(
                        routings.insert().values(
                            tenant_id=tenant_id,
                            order_id=f"PO{k}",
                            op_id=op,
                            seq=seq,
                            durations=durations,
                            predecessors=[steps[seq - 1][0]] if seq else [],
                        )
                    )
        await session.commit()
    return True
