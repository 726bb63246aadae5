"""``gongyun app trace labels``: identifiers minted from a template, one QR label each, offline."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gongyun.apps.trace.cli import app


def test_labels_with_progress_and_bad_template(tmp_path: Path) -> None:
    tpl = tmp_path / "units.json"
    tpl.write_text(
        json.dumps({"name": "units", "kind": "serial", "scheme": "gtin_serial", "gtin": "04012345000016"})
    )
    out = tmp_path / "labels"
    result = CliRunner().invoke(
        app,
        [
            "labels",
            str(tpl),
            "-n",
            "5",
            "--out",
            str(out),
            "--format",
            "svg",
            "--resolver",
            "https://id.example/",
        ],
    )
    assert result.exit_code == 0, result.output
    index = (out / "index.csv").read_text().splitlines()
    assert (
        index[1]
        == "1,/01/04012345000016/21/000001,https://id.example/01/04012345000016/21/000001,units-0000001.svg"
    )
    assert len(list(out.glob("*.svg"))) == 5 and b"<svg" in (out / "units-0000005.svg").read_bytes()
    tpl.write_text(
        json.dumps({"name": "bad", "kind": "serial", "scheme": "gtin_serial", "gtin": "04012345000017"})
    )
    result = CliRunner().invoke(app, ["labels", str(tpl), "--out", str(out)])
    assert result.exit_code == 2 and "check digit" in result.output
