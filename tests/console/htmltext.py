"""Extract what a person sees from an HTML page: text nodes and human-facing attributes."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_VISIBLE_ATTRS = {"title", "placeholder", "aria-label", "alt"}
_SKIP = {"script", "style"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        for name, value in attrs:
            if name in _VISIBLE_ATTRS and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_strings(html: str) -> list[str]:
    """Every text node and visible attribute value, outside scripts and styles."""
    parser = _Visible()
    parser.feed(html)
    return parser.parts


def foreign_words(text: str, allowed: set[str]) -> set[str]:
    """Latin-script words in ``text`` that are not in ``allowed`` (for checking Chinese pages)."""
    return {w.rstrip(".-") for w in WORD.findall(text)} - allowed


# Latin-script words that legitimately appear in Chinese text: product, protocol and standard names.
ZH_ALLOWED_WORDS = {
    "API",
    "B",
    "English",
    "GONGYUN_ADMIN_PASSWORD",
    "ISA-18.2",
    "ISA-95",
    "JSON",
    "JavaScript",
    "MQTT",
    "Modbus",
    "OEE",
    "OPC",
    "SPC",
    "Sparkplug",
    "TCP",
    "UA",
}
