"""The trust CLI end to end: audit export, checkpoint, offline verify, witness; data key rotation."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gongyun.cli.main import _add_room_commands, app
from gongyun.db import Database
from gongyun.security.classify.keyring import DataKey, Keyring

K1, K2 = b"\x11" * 32, b"\x22" * 32


def _run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


async def _unwrap_with(db_file: Path, master: bytes) -> int:
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with db.session() as s:
            row = (await s.execute(select(DataKey))).scalar_one()
            return len(Keyring([master])._unwrap(row))
    finally:
        await db.dispose()


def test_audit_and_key_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _add_room_commands()
    data = tmp_path / "var"
    monkeypatch.setenv("GONGYUN_DATA_DIR", str(data))
    k1, k2 = base64.b64encode(K1).decode(), base64.b64encode(K2).decode()
    monkeypatch.setenv("GONGYUN_DATA_MASTER_KEY", k1)
    assert "new data key version 1" in _run("classify", "rotate-key", "-t", "default")
    monkeypatch.setenv("GONGYUN_DATA_MASTER_KEY", f"{k2} {k1}")
    assert "rewrapped 1" in _run("classify", "rotate-master")
    assert asyncio.run(_unwrap_with(data / "gongyun.db", K2)) == 32  # the old master key is not needed
    export, cp = tmp_path / "export.jsonl", tmp_path / "default.checkpoint"
    _run("audit", "export", "-t", "default", "-o", str(export))
    cp.write_text(_run("audit", "checkpoint", "-t", "default"))
    assert "ok:" in _run("audit", "verify", str(export), "-c", str(cp))
    assert "accepted" in _run("audit", "witness", str(tmp_path / "w"), "-c", str(cp))
    lines = export.read_text().splitlines()
    export.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # the first event removed
    assert "FAIL" in _run("audit", "verify", str(export), "-c", str(cp), code=1)
