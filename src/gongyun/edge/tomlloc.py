"""Load TOML keeping the line of every key, so validation errors can name file, line and field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from gongyun.edge.errors import ProfileInvalid

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")
_TOML_ERR = re.compile(r"\(at line (\d+), column (\d+)\)")
Loc = tuple[str | int, ...]


def _split_key(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def key_lines(text: str) -> dict[Loc, int]:
    """Map each table and key path (array-of-table entries indexed) to its 1-based line."""
    lines: dict[Loc, int] = {}
    counters: dict[Loc, int] = {}
    prefix: Loc = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            path: Loc = tuple(_split_key(header.group(2)))
            if header.group(1) == "[[":
                index = counters.get(path, -1) + 1
                counters[path] = index
                prefix = (*path, index)
            else:
                prefix = path
            lines.setdefault(prefix, number)
            continue
        key = _KEY.match(line)
        if key and not line.lstrip().startswith("#"):
            lines.setdefault((*prefix, *_split_key(key.group(1))), number)
    return lines


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc`` or of its nearest enclosing table."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def field_name(loc: Loc) -> str:
    """Render a location as ``tags[3].type``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def load(path: Path) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Parse a TOML file; raise ProfileInvalid naming the line on syntax errors or unreadable files."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileInvalid(
            f"{path}: cannot read: {exc}",
            errors=[{"file": str(path), "line": None, "field": None, "message": str(exc)}],
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_ERR.search(str(exc))
        line = int(found.group(1)) if found else None
        raise ProfileInvalid(
            f"{path}:{line}: TOML syntax error: {exc}",
            errors=[{"file": str(path), "line": line, "field": None, "message": str(exc)}],
        ) from exc
    return data, key_lines(text)


def invalid(path: Path, lines: dict[Loc, int], problems: list[tuple[Loc, str]]) -> ProfileInvalid:
    """Build one ProfileInvalid listing every problem with file, line and field."""
    errors = [
        {"file": str(path), "line": line_of(lines, loc), "field": field_name(loc), "message": msg}
        for loc, msg in problems
    ]
    text = "; ".join(f"{e['file']}:{e['line']}: {e['field']}: {e['message']}" for e in errors)
    return ProfileInvalid(text, errors=errors)
