"""A partner's URLs may not reach private addresses (refused when set, checked again before each
delivery) unless ``outbound_allow`` lists them; its secrets are sealed at rest and never answered
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any, ClassVar

import httpx
from sqlalchemy import select, update

from gongyun.apps import WorkerContext
from gongyun.apps.trace import outbox, vault
from gongyun.apps.trace.manifest import MANIFEST
from gongyun.apps.trace.tables import notices, partners
from gongyun.security.classify.keyring import shared_keyring
from tests.apps.helpers import eps, running_with_apps, tenant_with_users

APPS = eps(trace="gongyun.apps.trace.manifest:MANIFEST")
API = "/api/v1/apps/trace"
GTIN = "09506000134352"
REFUSED = [
    ("notify_url", "http://127.0.0.1:8080/x"),
    ("notify_url", "http://169.254.169.254/latest/meta-data/"),
    ("notify_url", "http://localhost:9000/x"),  # a name, resolved: loopback
    ("notify_url", "http://[::1]/x"),
    ("notify_url", "http://[::ffff:10.0.0.1]/x"),
    ("notify_url", "http://user:pw@93.184.216.34/x"),
    ("resolver_url", "http://10.1.2.3/"),
    ("resolver_url", "http://192.168.0.1:8000"),
    ("resolver_url", "file:///etc/passwd"),
]


class _Sink(BaseHTTPRequestHandler):
    """Records what is posted to it and answers 201."""

    got: ClassVar[list[tuple[dict[str, str], Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Sink.got.append((dict(self.headers), json.loads(body)))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        return None


async def _ok(r: Any, status: int = 200) -> Any:
    resp = await r
    assert resp.status_code == status, resp.text
    return resp.json()


async def test_private_targets_are_refused_and_secrets_sealed(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, platform):
        t = await tenant_with_users(client, "supplier", "tenant-admin")
        tenant, h = t["id"], t["headers"]["tenant-admin"]
        assert (
            await client.patch("/api/v1/apps/trace", json={"enabled": True}, headers=h)
        ).status_code == 200
        for field, url in REFUSED:
            r = await client.post(f"{API}/partners", json={"name": "maker-m", field: url}, headers=h)
            problem = r.json()
            assert r.status_code == 422, (url, r.text)
            assert problem["code"] in {"outbound_target_refused", "validation_failed"}, problem
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await client.post(
            f"{API}/partners", json={"name": "maker-m", "notify_url": "http://10.0.0.5/x"}, headers=h
        )
        assert r.json()["code"] == "outbound_target_refused" and r.json()["field"] == "notify_url"
        assert (await client.get(f"{API}/recalls", headers=h)).status_code == 200

        # a public address is taken; the secrets are sealed in the database and never answered
        partner = {
            "name": "maker-m",
            "notify_url": "http://93.184.216.34/x",
            "resolver_url": "https://id.example.com",
            "notify_key": "key-secret-123",
            "token": "token-secret-456",
        }
        saved = await _ok(client.post(f"{API}/partners", json=partner, headers=h), 201)
        assert "notify_key" not in saved and "token" not in saved
        ctx = WorkerContext(
            MANIFEST,
            platform.db,
            platform.bus,
            logging.getLogger("test"),
            platform.apps.services,
            platform.settings,
        )
        ring = shared_keyring(platform.settings)
        async with ctx.acting_in(tenant) as app:
            row = (await app.session.execute(select(partners).where(partners.c.name == "maker-m"))).one()
            assert row.notify_key.startswith("sealed:") and "key-secret-123" not in row.notify_key
            assert row.token.startswith("sealed:") and "token-secret-456" not in row.token
            assert await vault.secrets_of(app.session, ring, tenant, row) == {
                "token": "token-secret-456",
                "notify_key": "key-secret-123",
            }
        audit = (await client.get("/api/v1/audit?action=app.trace.partner.save", headers=h)).text
        assert "secret-123" not in audit and "secret-456" not in audit

        # a row stored before the guard (private endpoint, key in clear): refused at delivery
        sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        _Sink.got.clear()
        try:
            url = f"http://127.0.0.1:{sink.server_address[1]}/notices"
            async with ctx.acting_in(tenant) as app:
                await app.session.execute(
                    update(partners)
                    .where(partners.c.name == "maker-m")
                    .values(notify_url=url, notify_key="legacy-clear-key")
                )
            tpl = {
                "name": "lots",
                "kind": "material_lot",
                "scheme": "gtin_lot",
                "gtin": GTIN,
                "pattern": "R{seq}",
            }
            await _ok(client.post(f"{API}/templates", json=tpl, headers=h), 201)
            mint = {"template": "lots", "count": 1, "receiver": "maker-m"}
            (lot,) = (await _ok(client.post(f"{API}/mint", json=mint, headers=h), 201))["ids"]
            recall = await _ok(
                client.post(f"{API}/recalls", json={"item": str(lot), "name": "x"}, headers=h), 201
            )
            async with httpx.AsyncClient(timeout=5, trust_env=False) as direct:
                assert await outbox.deliver_once(ctx, direct) == 0
                (n,) = (await _ok(client.get(f"{API}/recalls/{recall['id']}", headers=h)))["notices"]
                assert n["delivered_at"] is None and n["last_error"].startswith("refused: notify_url")
                assert _Sink.got == []
                # the clear key is sealed where it lies; a deployment that allows loopback delivers
                async with ctx.acting_in(tenant) as app:
                    assert await vault.seal_legacy(app.session, ring, tenant) == 1
                    row = (
                        await app.session.execute(select(partners).where(partners.c.name == "maker-m"))
                    ).one()
                    assert row.notify_key.startswith("sealed:")
                    await app.session.execute(update(notices).values(next_attempt_at=None))
                allow = platform.settings.model_copy(update={"outbound_allow": [ip_network("127.0.0.0/8")]})
                ctx.config = allow
                assert await outbox.deliver_once(ctx, direct) == 1
            ((headers, body),) = _Sink.got
            assert headers["X-API-Key"] == "legacy-clear-key" and body["notice"] == n["id"]
        finally:
            sink.shutdown()
