"""Commands to a device behind a remote gateway: the API signs an NCMD, the gateway checks, writes, confirms.

The whole path runs over mutual TLS: the platform's embedded broker requires certificates, the
platform's receiver connects with the platform's, the gateway with the one the CA enrolled it with.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from gongyun.edge.config import load_config
from gongyun.edge.runtime import Gateway
from gongyun.security.accounts import DEFAULT_TENANT, get_tenant_by_name
from gongyun.security.audit import AuditEvent
from gongyun.security.pki.ca import CertificateAuthority, enrol_files
from gongyun.sim.pump import PumpServer
from tests.apphelp import admin_headers, login, running_app
from tests.edge.conftest import PROFILES, wait_for
from tests.services import free_port

SECRET = "the-platform-command-secret"


async def test_remote_command_route_signs_checks_confirms_and_audits(tmp_path: Path) -> None:
    port, group = free_port(), "plantR"
    pump = PumpServer(port=free_port())
    await pump.start()
    async with running_app(
        tmp_path,
        mqtt_url=f"mqtts://127.0.0.1:{port}",
        mqtt_embedded="on",
        sparkplug_groups={group: DEFAULT_TENANT},
        command_secret=SECRET,
    ) as (client, runtime):
        async with runtime.db.session() as s:
            tenant_id = str((await get_tenant_by_name(s, DEFAULT_TENANT)).id)
        ca = CertificateAuthority(runtime.settings.data_dir / "pki")
        enrol_files(ca, tenant_id, group, "gw1", tmp_path / "gw1")
        (tmp_path / "edge.toml").write_text(
            f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "gw1.db"}"\n\n'
            f'[uplink]\nkind = "mqtt"\nurl = "mqtts://127.0.0.1:{port}"\ngroup = "{group}"\n'
            'ca_file = "gw1/ca.pem"\ncert_file = "gw1/client.crt"\nkey_file = "gw1/client.key"\n\n'
            f'[commands]\ntenant = "{DEFAULT_TENANT}"\nsecret = "{SECRET}"\n\n'
            f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
        )
        gateway = Gateway(*load_config(tmp_path / "edge.toml"))
        await gateway.start()
        try:
            admin = await admin_headers(client)
            made = await client.post(
                "/api/v1/users",
                json={"username": "op1", "password": "operator-password", "role": "operator"},
                headers=admin,
            )
            assert made.status_code == 201, made.text
            op = await login(client, "op1", "operator-password")
            await wait_for(
                lambda: any(g.name == f"{group}/gw1" for g in runtime.gateways.remote.of(tenant_id))
            )
            url = f"/api/v1/gateways/{group}/gw1/commands"
            ok = await client.post(
                url, json={"device": "pump1", "tag": "speed_setpoint", "value": 900}, headers=op
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["status"] == "confirmed" and ok.json()["read_back"] == 900
            assert pump.model.speed_setpoint == 900 and ok.json()["requested_by"] == "op1"
            too_fast = await client.post(
                url, json={"device": "pump1", "tag": "speed_setpoint", "value": 5000}, headers=op
            )  # the gateway's limit (max 1800)
            assert too_fast.status_code == 403 and too_fast.json()["code"] == "command_refused", too_fast.text
            by_admin = await client.post(
                url, json={"device": "pump1", "tag": "speed_setpoint", "value": 1000}, headers=admin
            )  # the gateway's role ceiling: operators and engineers only
            assert by_admin.status_code == 403 and "may not command" in by_admin.json()["detail"], (
                by_admin.text
            )
            missing = await client.post(
                f"/api/v1/gateways/{group}/gw9/commands",
                json={"device": "pump1", "tag": "speed_setpoint", "value": 1000},
                headers=op,
            )
            assert missing.status_code == 404, missing.text
            assert pump.model.speed_setpoint == 900  # nothing refused reached the PLC
            async with runtime.db.session() as s:
                q = select(AuditEvent).where(AuditEvent.action == "device.command")
                events = [
                    (e.actor, e.outcome) for e in (await s.execute(q.order_by(AuditEvent.seq))).scalars()
                ]
            assert events == [("op1", "success"), ("op1", "failure"), ("admin", "failure")], events
        finally:
            await gateway.stop()
            await pump.stop()
    await asyncio.sleep(0)
