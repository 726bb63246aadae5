"""Two enterprises, each its own Gongyun deployment (process, data directory) and enterprise node,
under one secondary node, with a root and a recursive resolver: the supplier ships a lot and grants
the manufacturer read access; the manufacturer traces its serial back to the supplier's lot and its
granted values and events; values not granted stay hidden; revoking ends access at once; a recall
at the supplier reaches the manufacturer's serials; reads are audited on both sides."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.idres.nodeproc import NodeProcess
from tests.services import free_port

OP = {"Authorization": "Bearer op-token"}
PASSWORD = "Adm1n-passw0rd!"
GONGYUN = Path(sys.executable).parent / "gongyun"
API = "/api/v1/apps/trace"
GTIN = "09506000134352"


class Deployment:
    """``gongyun serve`` on its own data directory, and its enterprise node on the same database."""

    def __init__(self, tmp: Path, name: str, id_prefix: str) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.id_prefix = id_prefix
        self.env = dict(
            os.environ,
            GONGYUN_DATA_DIR=str(self.dir),
            GONGYUN_ADMIN_PASSWORD=PASSWORD,
            GONGYUN_SECRET_KEY=f"{name}-secret-key-0123456789abcdef0123456789",
            GONGYUN_BUS_URL="memory://",
            GONGYUN_ID_PREFIX=id_prefix,
            GONGYUN_DEPLOYMENT_ID=f"trace{name}{self.port}",
            GONGYUN_OUTBOUND_ALLOW="127.0.0.0/8",  # the partners run on this machine
        )
        self.log = (tmp / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            [str(GONGYUN), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        self.node: NodeProcess | None = None

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"see {self.log.name}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.url} not ready")

    def start_node(self, tmp: Path, name: str) -> NodeProcess:
        db = f"sqlite+aiosqlite:///{(self.dir / 'gongyun.db').resolve()}"
        self.node = NodeProcess(
            "enterprise",
            tmp,
            name,
            "--db",
            db,
            "--prefix",
            self.id_prefix,
            "--tenant",
            "platform",
            "--platform-auth",
            "--all-tenants",
            db=False,
            env={"GONGYUN_SECRET_KEY": self.env["GONGYUN_SECRET_KEY"]},
        )
        return self.node

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    started: list[Any] = []
    try:
        root = NodeProcess("root", tmp_path, "root")
        started.append(root)
        sec = NodeProcess("secondary", tmp_path, "secondary", "--prefix", "88.100", "--root", root.url)
        started.append(sec)
        rec = NodeProcess("recursive", tmp_path, "recursive", "--root", root.url, "--max-ttl", "1", db=False)
        started.append(rec)
        supplier = Deployment(tmp_path, "supplier", "88.100.1")
        started.append(supplier)
        maker = Deployment(tmp_path, "maker", "88.100.2")
        started.append(maker)
        for p in (root, sec, rec):
            p.wait_ready(180)
        for d in (supplier, maker):
            d.wait_ready(180)
        yield {"root": root, "secondary": sec, "recursive": rec, "supplier": supplier, "maker": maker}
    finally:
        for p in reversed(started):
            p.stop()


def _login(c: httpx.Client, base: str) -> dict[str, str]:
    r = c.post(f"{base}/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert c.patch(f"{base}/api/v1/apps/trace", json={"enabled": True}, headers=h).status_code == 200
    return h


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("GONGYUN_TRACE_ENTERPRISES") != "1",
    reason="seven processes, about a minute: run with make test-trace-enterprises",
)
def test_supplier_and_manufacturer(world: dict[str, Any], tmp_path: Path) -> None:
    root, sec, rec = world["root"], world["secondary"], world["recursive"]
    supplier: Deployment = world["supplier"]
    maker: Deployment = world["maker"]
    c = httpx.Client(timeout=30, trust_env=False)
    site = lambda node: {"address": "127.0.0.1", "port": node.port}  # noqa: E731
    _ok(
        c.post(
            f"{root.url}/api/filings",
            headers=OP,
            json={"prefix": "88.100", "kind": "secondary", "site": site(sec), "ttl": 1},
        ),
        201,
    )
    for action in ("verify", "activate"):
        _ok(c.post(f"{root.url}/api/filings/88.100/{action}", headers=OP))

    hs = _login(c, supplier.url)
    hm = _login(c, maker.url)
    # the supplier's lots, registered in its prefix (allocated under 88.100.1 on first use)
    _ok(
        c.post(
            f"{supplier.url}{API}/templates",
            headers=hs,
            json={
                "name": "lots",
                "kind": "material_lot",
                "scheme": "gtin_lot",
                "gtin": GTIN,
                "pattern": "R{seq:03d}",
            },
        ),
        201,
    )
    lot_ids = _ok(
        c.post(f"{supplier.url}{API}/mint", headers=hs, json={"template": "lots", "count": 2}), 201
    )["ids"]
    lot = _ok(c.get(f"{supplier.url}{API}/items/{lot_ids[0]}", headers=hs))
    s_prefix = lot["handle"].split("/", 1)[0]
    assert s_prefix.startswith("88.100.1.")
    # each enterprise node serves its deployment's identifiers; the secondary refers to them
    for d, name in ((supplier, "snode"), (maker, "mnode")):
        d.start_node(tmp_path, name).wait_ready(180)
        _ok(
            c.post(
                f"{sec.url}/api/allocations",
                headers=OP,
                json={"prefix": d.id_prefix, "site": site(d.node), "ttl": 1},
            ),
            201,
        )
    assert supplier.node is not None
    # the lot's label resolves on the supplier's node (a node serving every tenant) to its product page
    dl = c.get(f"{supplier.node.url}{lot['key']}")
    assert dl.status_code == 307 and dl.headers["location"].endswith(f"/apps/trace/product?key={lot['key']}")
    # private values on the lot's record: a certificate (to be granted) and a cost (not granted)
    for index, vtype, data in ((30, "GY_MATERIAL_CERT", "cert-2026-77"), (31, "GY_COST", "12.40 CNY/kg")):
        _ok(
            c.put(
                f"{supplier.node.url}/api/handles/{lot['handle']}?index={index}",
                headers=hs,
                json={"index": index, "type": vtype, "data": data, "permissions": "1100"},
            )
        )
    # an EPCIS shipping event of the lot
    event = {
        "type": "ObjectEvent",
        "eventID": "urn:uuid:2b7a3a2e-5b1e-4d9f-8a44-0c1d2e3f4a5b",
        "eventTime": "2026-03-01T08:00:00.000+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
        "quantityList": [
            {"epcClass": f"https://id.example/01/{GTIN}/10/R001", "quantity": 500, "uom": "KGM"}
        ],
    }
    doc = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T08:00:00.000+08:00",
        "epcisBody": {"eventList": [event]},
    }
    _ok(c.post(f"{supplier.url}{API}/epcis/capture", headers=hs, json=doc), 202)

    # grants: an unknown enterprise is refused; the manufacturer gets the certificate and the events
    r = c.post(
        f"{supplier.url}{API}/grants",
        headers=hs,
        json={"partner": "nobody", "items": [str(lot["id"])], "types": ["GY_MATERIAL_CERT"]},
    )
    assert (r.status_code, r.json()["code"]) == (404, "trace_enterprise_unknown")
    _ok(c.post(f"{supplier.url}{API}/partners", headers=hs, json={"name": "maker-m"}), 201)
    grant = _ok(
        c.post(
            f"{supplier.url}{API}/grants",
            headers=hs,
            json={
                "partner": "maker-m",
                "items": [str(lot["id"])],
                "types": ["GY_MATERIAL_CERT"],
                "events": True,
                "expires_in": 3600,
            },
        ),
        201,
    )

    # the manufacturer receives the lot and builds it into its serials
    _ok(
        c.post(
            f"{maker.url}{API}/partners",
            headers=hm,
            json={
                "name": "supplier-s",
                "prefix": s_prefix,
                "resolver_url": rec.url,
                "grant_handle": grant["handle"],
                "token": grant["token"],
            },
        ),
        201,
    )
    received = _ok(
        c.post(
            f"{maker.url}{API}/items",
            headers=hm,
            json={
                "id": f"https://id.example{lot['key']}",
                "kind": "material_lot",
                "attrs": {"partner": "supplier-s"},
            },
        ),
        201,
    )
    _ok(
        c.post(
            f"{maker.url}{API}/templates",
            headers=hm,
            json={"name": "units", "kind": "serial", "scheme": "own", "pattern": "PUMP-{seq:04d}"},
        ),
        201,
    )
    serials = _ok(c.post(f"{maker.url}{API}/mint", headers=hm, json={"template": "units", "count": 3}), 201)[
        "ids"
    ]
    _ok(
        c.post(
            f"{maker.url}{API}/links",
            headers=hm,
            json={"parents": [str(received["id"])], "children": [str(s) for s in serials]},
        ),
        201,
    )

    # trace a finished serial back to the supplier's lot, then read the lot across enterprises
    back = _ok(c.get(f"{maker.url}{API}/trace/backward/{serials[0]}", headers=hm))
    assert lot["key"] in {n["key"] for n in back["nodes"]}
    remote = _ok(c.get(f"{maker.url}{API}/remote/supplier-s/{received['id']}", headers=hm))
    assert remote["node"] == supplier.node.url
    public_types = {v["type"] for v in remote["public"]}
    assert {"GS1_GTIN", "GY_LOT"} <= public_types and "GY_COST" not in public_types
    granted = {v["type"]: v for v in remote["granted"]}
    assert set(granted) == {"GY_MATERIAL_CERT", "GY_EPCIS"}
    assert remote["events"]["epcisBody"]["eventList"] == [event]
    # the grant cannot write, list or read other records
    bad = c.put(
        f"{supplier.node.url}/api/handles/{lot['handle']}?index=32",
        auth=(grant["admin"], grant["token"]),
        json={"index": 32, "type": "X", "data": "y"},
    )
    assert bad.status_code == 403
    other = _ok(c.get(f"{supplier.url}{API}/items/{lot_ids[1]}", headers=hs))
    seen = _ok(
        c.get(f"{supplier.node.url}/api/handles/{other['handle']}", auth=(grant["admin"], grant["token"]))
    )
    assert "GY_TRACE_STATUS" not in {v["type"] for v in seen["values"]}

    # revoking ends access at once
    _ok(c.delete(f"{supplier.url}{API}/grants/{grant['id']}", headers=hs))
    after = _ok(c.get(f"{maker.url}{API}/remote/supplier-s/{received['id']}", headers=hm))
    assert after["granted"] == [] and "events" not in after

    # audited on both sides
    s_audit = _ok(c.get(f"{supplier.url}/api/v1/audit?action=identifier.read.granted", headers=hs))
    # newest first: after the revocation, the record outside the grant, the granted read
    assert [e["outcome"] for e in s_audit][:3] == ["denied", "denied", "success"]
    assert all(e["actor"] == f"handle:{grant['admin']}" for e in s_audit)
    m_audit = _ok(c.get(f"{maker.url}/api/v1/audit?action=app.trace.remote.read", headers=hm))
    assert len(m_audit) >= 2 and m_audit[0]["target"] == lot["handle"]

    # a recall at the supplier reaches the manufacturer's serials: the supplier's node pushes the
    # notice to the manufacturer's endpoint with an API key the manufacturer gave it
    key = _ok(
        c.post(f"{maker.url}/api/v1/apikeys", headers=hm, json={"name": "supplier-s", "role": "engineer"}),
        201,
    )
    notify = {
        "name": "maker-m",
        "notify_url": f"{maker.url}{API}/partners/supplier-s/notices",
        "notify_key": key["key"],
    }
    _ok(c.post(f"{supplier.url}{API}/partners", headers=hs, json=notify), 201)
    recall = _ok(
        c.post(
            f"{supplier.url}{API}/recalls",
            headers=hs,
            json={"item": str(lot["id"]), "name": "contaminated resin"},
        ),
        201,
    )
    assert recall["published"] == 1 and recall["pushed"] == 1
    assert [(n["receiver"], n["keys"]) for n in recall["notices"]] == [("maker-m", [lot["key"]])]
    deadline = time.monotonic() + 30
    frozen: set[int] = set()
    while time.monotonic() < deadline and not set(serials) <= frozen:
        time.sleep(0.3)
        frozen = {i["id"] for i in _ok(c.get(f"{maker.url}{API}/items?status=frozen", headers=hm))}
    assert set(serials) <= frozen, "the pushed notice did not freeze the manufacturer's serials"
    inbox = _ok(c.get(f"{maker.url}{API}/inbox", headers=hm))
    assert inbox[0]["sender"] == "supplier-s" and inbox[0]["local_recall"] is not None
    campaign = _ok(c.get(f"{supplier.url}{API}/recalls/{recall['id']}", headers=hs))
    assert campaign["notices"][0]["delivered_at"]
    assert campaign["progress"]["stage"] in {"acknowledging", "complete"}
    # the manufacturer acknowledges, and its node tells the supplier's with a key the supplier gave
    # it; pulling the partner's records finds nothing more to recall
    back = _ok(
        c.post(f"{supplier.url}/api/v1/apikeys", headers=hs, json={"name": "maker-m", "role": "engineer"}),
        201,
    )
    again = {
        "name": "supplier-s",
        "notify_url": f"{supplier.url}{API}/partners/maker-m/notices",
        "notify_key": back["key"],
    }
    _ok(c.post(f"{maker.url}{API}/partners", headers=hm, json=again), 201)
    _ok(c.post(f"{maker.url}{API}/inbox/{inbox[0]['id']}/ack", headers=hm, json={"apply": True}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and campaign["progress"]["percent"] < 100:
        time.sleep(0.3)
        campaign = _ok(c.get(f"{supplier.url}{API}/recalls/{recall['id']}", headers=hs))
    assert campaign["progress"]["stage"] == "complete", "the acknowledgement did not reach the supplier"
    assert campaign["notices"][0]["acked_by"] == "partner:maker-m"
    synced = _ok(c.post(f"{maker.url}{API}/partners/supplier-s/sync", headers=hm))
    assert synced["checked"] == 1 and synced["recalls"] == []
