"""Handle identifier syntax (RFC 3650/3651): parse, format and normalise ``prefix/suffix``.

Rules, as Gongyun applies them:

* An identifier is ``prefix "/" suffix``; the first ``/`` separates the two, the suffix may
  contain further ``/``. Both parts are non-empty. The whole identifier is at most
  ``MAX_HANDLE_BYTES`` bytes of UTF-8.
* The prefix (the Handle "naming authority") is hierarchical: dot-separated segments of
  ASCII letters, digits, ``-`` and ``_`` (``88.100.1`` = top level ``88``, secondary
  ``88.100``, enterprise ``88.100.1``). ``0.NA/<prefix>`` names the prefix record itself.
* The suffix is any UTF-8 text without control characters (C0, DEL, C1), unpaired
  surrogates or non-characters.
* Case: like a Handle.Net server in its default configuration, identifiers compare
  case-insensitively on ASCII letters only (``88.100.1/pump-1`` and ``88.100.1/PUMP-1`` are
  the same identifier). The spelling given at registration is kept and shown; the
  normalised form (ASCII upper case) is the storage and cache key. Non-ASCII characters
  are compared exactly (no Unicode case folding, no NFC rewriting).
* An indexed identifier ``300:88.100.1/admin`` names one value of a record (admin names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gongyun.errors import MalformedIdentifier

MAX_HANDLE_BYTES = 1024
MAX_PREFIX_BYTES = 255
MAX_INDEX = 2**31 - 1
NA_PREFIX = "0.NA"
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX_OK = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_NONCHARS = "".join(f"\\U{p:08X}\\U{p + 1:08X}" for p in range(0xFFFE, 0x110000, 0x10000))
_BAD_CHARS = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\ufdd0-\\ufdef{_NONCHARS}]")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _bad(identifier: str, reason: str, message: str, position: int | None = None) -> MalformedIdentifier:
    details: dict[str, object] = {"reason": reason, "identifier": identifier[:200]}
    if position is not None:
        details["position"] = position
    return MalformedIdentifier(message, **details)


def fold(text: str) -> str:
    """Upper-case ASCII letters only (the Handle case rule); other characters are untouched."""
    # str.upper() is the same mapping on pure ASCII text, and much faster than translate()
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


def _bad_char(ch: str) -> bool:
    cp = ord(ch)
    return (
        cp < 0x20
        or 0x7F <= cp <= 0x9F
        or 0xD800 <= cp <= 0xDFFF
        or 0xFDD0 <= cp <= 0xFDEF
        or (cp & 0xFFFE) == 0xFFFE
    )


def check_prefix(prefix: str, identifier: str | None = None, offset: int = 0) -> str:
    """Validate a prefix and return it unchanged; raise ``MalformedIdentifier`` if it is bad."""
    if _PREFIX_OK.fullmatch(prefix) and len(prefix) <= MAX_PREFIX_BYTES:
        return prefix
    whole = identifier if identifier is not None else prefix
    if not prefix:
        raise _bad(whole, "empty_prefix", "the prefix before '/' is empty", offset)
    if len(prefix.encode("utf-8", "surrogatepass")) > MAX_PREFIX_BYTES:
        raise _bad(whole, "prefix_too_long", f"the prefix is longer than {MAX_PREFIX_BYTES} bytes", offset)
    pos = offset
    for segment in prefix.split("."):
        if not segment:
            raise _bad(whole, "empty_prefix_segment", f"empty prefix segment at position {pos}", pos)
        if not _SEGMENT.fullmatch(segment):
            bad = next(i for i, ch in enumerate(segment) if not _SEGMENT.fullmatch(ch))
            ch = segment[bad]
            raise _bad(
                whole,
                "prefix_character",
                f"character {ch!r} at position {pos + bad} is not allowed in a prefix "
                "(letters, digits, '-', '_' and '.')",
                pos + bad,
            )
        pos += len(segment) + 1
    return prefix


@dataclass(frozen=True, slots=True)
class Handle:
    """A parsed identifier: ``prefix/suffix`` with the spelling it was given."""

    prefix: str
    suffix: str

    def __str__(self) -> str:
        return f"{self.prefix}/{self.suffix}"

    @property
    def norm(self) -> str:
        """The normalised form: the key under which the identifier is stored and cached."""
        return fold(str(self))

    @property
    def prefix_norm(self) -> str:
        """The normalised prefix."""
        return fold(self.prefix)

    @property
    def is_prefix_record(self) -> bool:
        """True for ``0.NA/<prefix>`` records (prefix records held by a root node)."""
        return fold(self.prefix) == NA_PREFIX.upper()

    def prefix_chain(self) -> list[str]:
        """The prefix and its ancestors, shortest first (``88``, ``88.100``, ``88.100.1``)."""
        return prefix_chain(self.prefix)


def prefix_chain(prefix: str) -> list[str]:
    """``88.100.1`` -> ``["88", "88.100", "88.100.1"]``."""
    parts = prefix.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def parent_prefix(prefix: str) -> str | None:
    """The parent of a hierarchical prefix, or None for a top-level one."""
    head, sep, _ = prefix.rpartition(".")
    return head if sep else None


def is_under(prefix: str, ancestor: str) -> bool:
    """True when ``prefix`` equals ``ancestor`` or lies below it (case-insensitive)."""
    p, a = fold(prefix), fold(ancestor)
    return p == a or p.startswith(a + ".")


def parse(identifier: str) -> Handle:
    """Parse ``prefix/suffix``; raise ``MalformedIdentifier`` with a reason and position."""
    if not isinstance(identifier, str):
        raise MalformedIdentifier("an identifier must be text", reason="not_text")
    if not identifier:
        raise _bad(identifier, "empty", "the identifier is empty")
    if len(identifier) > MAX_HANDLE_BYTES:  # more characters than bytes allowed: refused unread
        raise _bad(identifier, "too_long", f"the identifier is longer than {MAX_HANDLE_BYTES} bytes of UTF-8")
    # printable ASCII has none of the characters refused below (the search costs far more), and
    # its length in bytes is its length in characters, checked above
    if not (identifier.isascii() and identifier.isprintable()):
        found = _BAD_CHARS.search(identifier)
        if found is not None:
            i, ch = found.start(), found.group()
            if _bad_char(ch):
                raise _bad(
                    identifier,
                    "control_character",
                    f"character U+{ord(ch):04X} at position {i} is not allowed in an identifier",
                    i,
                )
        if len(identifier.encode("utf-8", "surrogatepass")) > MAX_HANDLE_BYTES:
            raise _bad(
                identifier, "too_long", f"the identifier is longer than {MAX_HANDLE_BYTES} bytes of UTF-8"
            )
    prefix, sep, suffix = identifier.partition("/")
    if not sep:
        raise _bad(identifier, "missing_slash", "an identifier is 'prefix/suffix' but has no '/'")
    check_prefix(prefix, identifier)
    if not suffix:
        raise _bad(identifier, "empty_suffix", "the suffix after '/' is empty", len(prefix) + 1)
    return Handle(prefix, suffix)


def parse_bytes(raw: bytes) -> Handle:
    """Parse an identifier given as UTF-8 bytes (as it arrives on the wire)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedIdentifier(
            f"the identifier is not valid UTF-8 (byte {exc.start})",
            reason="invalid_utf8",
            position=exc.start,
        ) from None
    return parse(text)


def format_handle(handle: Handle) -> str:
    """Format a parsed identifier back to text (the inverse of ``parse``)."""
    return f"{handle.prefix}/{handle.suffix}"


def normalise(identifier: str) -> str:
    """Parse and return the normalised key of an identifier."""
    return parse(identifier).norm


@dataclass(frozen=True, slots=True)
class IndexedHandle:
    """``index:prefix/suffix``: one value of a record, e.g. the admin name ``300:88.100.1/admin``."""

    index: int
    handle: Handle

    def __str__(self) -> str:
        return f"{self.index}:{self.handle}"


def parse_indexed(text: str) -> IndexedHandle:
    """Parse ``index:prefix/suffix``; raise ``MalformedIdentifier`` when it is not that."""
    head, sep, rest = text.partition(":")
    if not sep:
        raise _bad(text, "missing_index", "an admin name is 'index:prefix/suffix' but has no ':'")
    if not head.isascii() or not head.isdigit():
        raise _bad(text, "bad_index", f"the index {head[:20]!r} is not a positive integer", 0)
    index = int(head)
    if not 0 < index <= MAX_INDEX:
        raise _bad(text, "bad_index", f"the index {index} is out of range 1..{MAX_INDEX}", 0)
    return IndexedHandle(index, parse(rest))


def prefix_record(prefix: str) -> Handle:
    """The ``0.NA/<prefix>`` record naming a prefix."""
    check_prefix(prefix)
    return Handle(NA_PREFIX, prefix)
