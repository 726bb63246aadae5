"""Third-party JavaScript libraries (tests/js, installed with npm) that tests check Gongyun against.

``make test`` installs them (``npm ci`` in tests/js); a test run without them installs them on
first use. Tests using them skip only when Node.js itself is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS = Path(__file__).parent / "js"


def require_node() -> Path:
    """The tests/js directory with its packages installed (skips the test when node is absent)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed")
    if not (JS / "node_modules" / ".package-lock.json").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True, timeout=600
        )
    return JS


def run_js(script: str, payload: Any, timeout: float = 120) -> Any:
    """Run ``tests/js/<script>`` with ``payload`` as JSON on stdin; its stdout parsed as JSON."""
    js = require_node()
    proc = subprocess.run(
        ["node", str(js / script)],
        input=json.dumps(payload).encode(),
        capture_output=True,
        check=False,
        timeout=timeout,
        cwd=js,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed: {proc.stderr.decode()[-2000:]}")
    return json.loads(proc.stdout)
