"""docs/operations.md followed step by step: role and database, config, upgrade, two processes."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.opsdoc import DOC, doc_blocks, doc_deployment, login, pid_gone, wait_ready
from tests.services import POSTGRES_ADMIN_DSN

STEPS = ("variables", "database", "config", "secrets", "upgrade", "start", "check")


def test_document_marks_the_steps_in_order() -> None:
    names = list(doc_blocks())
    assert [n for n in names if n in (*STEPS, "metrics", "idnode", "stop")] == [
        *STEPS,
        "metrics",
        "idnode",
        "stop",
    ], names
    assert {"backup", "restore"} <= set(names)


def test_no_doc_puts_config_after_the_command() -> None:
    # `gongyun serve --config x` is refused by the CLI: --config belongs before the command
    root = DOC.parents[1]
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        wrong = re.findall(r"gongyun (?:serve|demo|db upgrade)[^\n`]*--config", text)
        assert not wrong, f"{path.name}: {wrong}"


@pytest.mark.slow
def test_operations_doc_two_processes(tmp_path: Path) -> None:
    with doc_deployment(tmp_path) as shell:
        for step in STEPS:
            out = shell.run(step)
        assert out.count('"database":"ok"') == 2 and out.count('"status":"ok"') == 4, out
        env = shell.env()
        home = Path(env["GONGYUN_HOME"])
        assert (home / "secrets.env").stat().st_mode & 0o077 == 0, "secrets.env is readable by others"
        one = f"http://127.0.0.1:{env['GONGYUN_PORT_1']}"
        two = f"http://127.0.0.1:{env['GONGYUN_PORT_2']}"
        pids = [int((home / f"api-{i}.pid").read_text()) for i in (1, 2)]
        for base, pid in zip((one, two), pids, strict=True):
            wait_ready(base, pid=pid)
            ready = httpx.get(f"{base}/readyz", timeout=10, trust_env=False)
            assert ready.json()["checks"] == {"database": "ok", "bus": "ok"}
            assert httpx.get(f"{base}/healthz", timeout=10, trust_env=False).status_code == 200

        # sign in on one process, create an asset, read it through the other
        headers = login(one, shell.secrets()["GONGYUN_ADMIN_PASSWORD"])
        name = f"Plant {uuid.uuid4().hex[:6]}"
        made = httpx.post(
            f"{one}/api/v1/assets",
            json={"level": "enterprise", "name": name, "parent_id": None},
            headers=headers,
            timeout=30,
            trust_env=False,
        )
        assert made.status_code == 201, made.text
        seen = httpx.get(
            f"{two}/api/v1/assets/{made.json()['id']}", headers=headers, timeout=30, trust_env=False
        )
        assert seen.status_code == 200, seen.text
        assert seen.json()["name"] == name

        # the documented configuration really is the server profile on the documented database
        with psycopg.connect(f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{env['GONGYUN_DB']}") as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'tenants'").fetchone()
        assert owner == (env["GONGYUN_DB"],), owner

        # the documented auditor key reads the metrics of the other process
        metrics = shell.run("metrics")
        assert "gongyun_http_requests_total" in metrics, metrics

        # the platform's identifier node resolves the new asset's identifier, anonymously
        out = shell.run("idnode")
        assert '"role": "secondary"' in out or '"role":"secondary"' in out, out
        identifier = made.json()["identifier"]
        node = f"http://127.0.0.1:{env['GONGYUN_IDNODE_PORT']}"
        record = httpx.get(f"{node}/api/handles/{identifier}", timeout=30, trust_env=False)
        assert record.status_code == 200, record.text
        assert record.json()["responseCode"] == 1 and name in record.text, record.text
        pids.append(int((home / "idnode.pid").read_text()))

        shell.run("stop")
        deadline = time.monotonic() + 60
        while not all(pid_gone(p) for p in pids):
            assert time.monotonic() < deadline, "the processes did not stop on the documented kill"
            time.sleep(0.2)
