"""``gongyun id ...`` commands on an embedded data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gongyun.cli.main import app


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GONGYUN_ADMIN_PASSWORD", "admin-Passw0rd!")
    monkeypatch.setenv("GONGYUN_SECRET_KEY", "k" * 40)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--data-dir", str(tmp_path / "var"), "id", *args])
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_cli_flow(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "submitted" in run("prefix", "add", "88.100.5", "--org", "Acme")
    run("prefix", "set", "88.100.5", "verified")
    assert "active" in run("prefix", "set", "88.100.5", "active")
    assert "88.100.5" in run("prefix", "list")
    template = tmp_path / "t.json"
    template.write_text(
        json.dumps({"prefix": "88.100.5", "name": "pump", "items": [{"type": "GY_MODEL", "required": True}]})
    )
    assert "pump@1" in run("template", "add", str(template))
    assert "GY_MODEL" in run("template", "list")
    assert "created" in run(
        "register", "88.100.5/P1", "--url", "https://x.example/1", "--value", "GY_MODEL=X1"
    )
    assert "https://x.example/1" in run("resolve", "88.100.5/p1")
    csv_file = tmp_path / "ids.csv"
    csv_file.write_text(
        "handle,url\n" + "".join(f"88.100.5/c{i},https://x.example/c{i}\n" for i in range(50))
    )
    assert "inserted 50" in run("import", str(csv_file))
    jsonl = tmp_path / "ids.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps({"handle": f"88.100.5/j{i}", "values": [{"index": 1, "type": "URL", "data": "u"}]})
            for i in range(5)
        )
    )
    out = run("import", str(jsonl))
    assert "inserted 5" in out
    assert "skipped 50" in run("import", str(csv_file))
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "handle,url\n88.100.5/g1,https://x.example/g1\nno-slash,https://x.example/\n88.100.5/g2,a,b,c\n"
    )
    out = run("import", str(bad), code=1)
    assert "bad.csv:3: no-slash" in out and "bad.csv:4: 88.100.5/g2" in out and "nothing imported" in out
    assert "inserted 1, skipped 0, failed 2" in run("import", str(bad), "--skip-bad")
