"""The error tree drawn in ``gongyun.errors`` is complete, and a code never means two statuses."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

import gongyun
from gongyun import errors
from gongyun.errors import GongyunError

# One drawn line: tree prefix, class name, status, code and (for classes defined elsewhere) module.
_LINE = re.compile(
    r"^    (?P<prefix>(?:[│ ]   )*(?:[├└]── )?)(?P<name>\w+) +(?P<status>\d{3}) (?P<code>\w+)"
    r"(?: +(?P<module>gongyun(?:\.\w+)+))?$"
)


@dataclass(frozen=True)
class Drawn:
    """A class as the docstring draws it."""

    status: int
    code: str
    module: str
    parent: str | None


def _import_everything() -> set[str]:
    """Import every gongyun module; return those skipped for a missing optional dependency."""
    skipped: set[str] = set()
    for info in pkgutil.walk_packages(gongyun.__path__, "gongyun."):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "gongyun":
                raise  # a broken import of our own is a failure, not an optional extra
            skipped.add(info.name)
    return skipped


def _subclasses(cls: type[GongyunError]) -> list[type[GongyunError]]:
    found: list[type[GongyunError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def _drawn(doc: str) -> dict[str, Drawn]:
    """Parse the tree drawn in ``doc``: name -> status, code, module, parent."""
    drawn: dict[str, Drawn] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        depth = len(match["prefix"]) // 4
        del stack[depth:]
        name = match["name"]
        assert name not in drawn, f"{name} is drawn twice"
        drawn[name] = Drawn(
            int(match["status"]),
            match["code"],
            match["module"] or "gongyun.errors",
            stack[-1] if stack else None,
        )
        stack.append(name)
    return drawn


def _problems(doc: str, skipped: set[str]) -> list[str]:
    """What the drawing ``doc`` gets wrong about the classes that exist."""
    drawn = _drawn(doc)
    problems = []
    if drawn.get("GongyunError") != Drawn(500, "internal", "gongyun.errors", None):
        problems.append("GongyunError is not the root of the drawing")
    classes = _subclasses(GongyunError)
    for cls in classes:
        [base] = [b for b in cls.__bases__ if issubclass(b, GongyunError)]
        want = Drawn(cls.status, cls.code, cls.__module__, base.__name__)
        got = drawn.get(cls.__name__)
        if got != want:
            problems.append(f"{cls.__module__}.{cls.__name__}: drawn {got}, is {want}")
    names = {cls.__name__ for cls in classes} | {"GongyunError"}
    for name, seen in drawn.items():
        if name not in names and seen.module not in skipped:
            problems.append(f"{name} is drawn but no such class exists in {seen.module}")
    return problems


def test_every_error_class_is_drawn_with_its_parent_status_code_and_module() -> None:
    skipped = _import_everything()
    assert len(_subclasses(GongyunError)) > 50  # the walk really imported the rooms
    assert errors.__doc__
    problems = _problems(errors.__doc__, skipped)
    assert problems == [], "\n".join(problems)


def test_a_code_has_one_status() -> None:
    _import_everything()
    statuses: dict[str, dict[int, list[str]]] = {}
    every: list[type[GongyunError]] = [GongyunError, *_subclasses(GongyunError)]
    for cls in every:
        statuses.setdefault(cls.code, {}).setdefault(cls.status, []).append(cls.__qualname__)
    clashes = {code: by_status for code, by_status in statuses.items() if len(by_status) > 1}
    assert clashes == {}


def test_the_check_notices_a_missing_or_wrong_line() -> None:
    skipped = _import_everything()
    assert errors.__doc__
    lines = errors.__doc__.splitlines()
    missing = "\n".join(line for line in lines if "HandleExists" not in line)
    assert _problems(missing, skipped) == [
        "gongyun.idres.errors.HandleExists: drawn None, is "
        "Drawn(status=409, code='identifier_exists', module='gongyun.idres.errors', parent='Conflict')"
    ]
    wrong = "\n".join(line.replace("404 identifier_not_found", "400 identifier_not_found") for line in lines)
    [problem] = _problems(wrong, skipped)
    assert problem.startswith("gongyun.idres.errors.HandleNotFound: drawn Drawn(status=400")
