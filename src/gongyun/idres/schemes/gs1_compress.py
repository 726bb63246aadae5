"""GS1 Digital Link compression: decompress a compressed path segment into AI values.

A port of the decompression half of GS1's Digital Link compression prototype (Apache-2.0, as
shipped in ``digital-link.js``); its tables (AI value formats, AI lengths by first two digits
and the optimisation codes) are in ``gs1_ai.json`` beside this module.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

SAFE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
HEX = "0123456789ABCDEF"
_SAFE64_RE = re.compile(r"[A-Za-z0-9_-]+")


class InvalidCompressedLink(ValueError):
    """A compressed Digital Link segment does not decode (``gs1`` turns it into ``InvalidGS1Key``)."""


@cache
def tables() -> dict[str, Any]:
    """The AI tables (formats, query-allowed AIs, AI lengths, optimisation codes)."""
    data: dict[str, Any] = json.loads((Path(__file__).parent / "gs1_ai.json").read_text())
    return data


def looks_compressed(segment: str) -> bool:
    """True when a path segment is made of base64url characters only (and is not all digits)."""
    return bool(_SAFE64_RE.fullmatch(segment)) and not segment.isdigit()


def _length_bits(max_length: int) -> int:
    return math.ceil(math.log(max_length) / math.log(2) + 0.01)


def _value_bits(digits: int) -> int:
    return math.ceil(digits * math.log(10) / math.log(2) + 0.01)


class _Reader:
    def __init__(self, bits: str) -> None:
        self.bits = bits
        self.pos = 0

    def take(self, n: int) -> str:
        if n < 0 or self.pos + n > len(self.bits):
            raise InvalidCompressedLink("the compressed Digital Link ends early")
        out = self.bits[self.pos : self.pos + n]
        self.pos += n
        return out

    def number(self, n: int) -> int:
        return int(self.take(n), 2) if n else 0

    def left(self) -> int:
        return len(self.bits) - self.pos


def _chars(r: _Reader, enc: int, count: int) -> str:
    if enc == 0:
        return str(r.number(_value_bits(count))) if count else ""
    if enc in {1, 2}:
        s = "".join(HEX[r.number(4)] for _ in range(count))
        return s.lower() if enc == 1 else s
    if enc == 3:
        return "".join(SAFE64[r.number(6)] for _ in range(count))
    if enc == 4:
        return "".join(chr(r.number(7)) for _ in range(count))
    raise InvalidCompressedLink(f"unknown character encoding {enc}")


def _value(r: _Reader, ai: str) -> str:
    formats = tables()["formats"].get(ai)
    if formats is None:
        raise InvalidCompressedLink(f"AI {ai} is not known")
    out = ""
    for kind, fixed, length in formats:
        if kind == "N" and fixed == "L":
            out += str(r.number(_value_bits(length))).zfill(length)
        elif kind == "N":
            digits = r.number(_length_bits(length))
            out += str(r.number(_value_bits(digits))) if digits else ""
        elif fixed == "L":
            enc = r.number(3)
            out += _chars(r, enc, length)
        else:
            enc = r.number(3)
            out += _chars(r, enc, r.number(_length_bits(length)))
    return out


def decompress(segment: str) -> dict[str, str]:
    """The AI values (and non-GS1 key/value pairs) of one compressed segment, in order."""
    if not _SAFE64_RE.fullmatch(segment):
        raise InvalidCompressedLink("a compressed Digital Link is base64url")
    t = tables()
    r = _Reader("".join(format(SAFE64.index(c), "06b") for c in segment))
    out: dict[str, str] = {}
    while r.left() > 8:
        h1, h2 = r.number(4), r.number(4)
        if h1 <= 9 and h2 <= 9:
            ai = f"{h1}{h2}"
            length = t["tableP"].get(ai)
            if length is None:
                raise InvalidCompressedLink(f"AI prefix {ai} is reserved")
            for _ in range(length - 2):
                digit = r.number(4)
                if digit > 9:
                    raise InvalidCompressedLink("an AI is all digits")
                ai += str(digit)
            out[ai] = _value(r, ai)
            continue
        code = f"{HEX[h1]}{HEX[h2]}"
        if code in t["tableOpt"]:
            for ai in t["tableOpt"][code]:
                out[ai] = _value(r, ai)
        elif h1 == 15:
            r.pos -= 4
            key_len = r.number(7)
            key = "".join(SAFE64[r.number(6)] for _ in range(key_len))
            enc = r.number(3)
            out[key] = _chars(r, enc, r.number(7))
        else:
            raise InvalidCompressedLink(f"no optimisation code {code}")
    return out
