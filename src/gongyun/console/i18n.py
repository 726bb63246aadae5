"""The console's message catalogue (English and Simplified Chinese) and language negotiation.

Every string the console shows, server-rendered or from ``console.js``, is a key of the
catalogues in ``locales/<lang>.json`` (plain JSON objects a translator can edit; the
package ships them as data). Placeholders use ``{name}`` and must match between the two
languages. Apps bring their own titles and texts in their manifests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

DEFAULT_LANG = "en"
COOKIE = "gy_lang"
LOCALES_DIR = Path(__file__).parent / "locales"


def load_catalogue(lang: str) -> dict[str, str]:
    """The catalogue of ``lang`` from ``locales/<lang>.json``."""
    data = json.loads((LOCALES_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"locales/{lang}.json must be an object of strings")
    return data


EN: dict[str, str] = load_catalogue("en")
ZH_CN: dict[str, str] = load_catalogue("zh-CN")

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "zh-CN": ZH_CN}
LANGUAGES: tuple[str, ...] = tuple(CATALOGUES)


def normalize_lang(value: str | None) -> str | None:
    """Map a language tag (``zh``, ``zh-cn``, ``zh-Hans-CN``, ``en-GB`` ...) to a supported one."""
    if not value:
        return None
    tag = value.strip().lower().replace("_", "-")
    if tag == "zh" or tag.startswith(("zh-cn", "zh-hans", "zh-sg")):
        return "zh-CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language to render: the ``gy_lang`` cookie, then Accept-Language, then English."""
    chosen = normalize_lang(cookie)
    if chosen:
        return chosen
    for part in (accept_language or "").split(","):
        chosen = normalize_lang(part.split(";", 1)[0])
        if chosen:
            return chosen
    return DEFAULT_LANG


def translator(lang: str) -> Callable[..., str]:
    """A strict ``t(key, **params)`` for ``lang``: an unknown key raises ``KeyError``."""
    catalogue: Mapping[str, str] = CATALOGUES[lang]

    def t(key: str, **params: object) -> str:
        text = catalogue[key]
        return text.format(**params) if params else text

    return t
