"""The Handle scheme itself, for symmetry with the other adapters (``hdl:`` URIs)."""

from __future__ import annotations

from gongyun.idres.syntax import Handle, parse

URI_PREFIXES = ("hdl:", "handle:", "https://hdl.handle.net/", "http://hdl.handle.net/")


def parse_uri(text: str) -> Handle:
    """Parse ``hdl:88.100.1/x``, a hdl.handle.net URL, or a bare ``prefix/suffix``."""
    for head in URI_PREFIXES:
        if text.lower().startswith(head):
            return parse(text[len(head) :])
    return parse(text)


def to_uri(handle: Handle) -> str:
    """``hdl:prefix/suffix``."""
    return f"hdl:{handle}"
