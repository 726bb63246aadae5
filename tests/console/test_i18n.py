"""The message catalogue: complete in both languages, and every key the console uses exists."""

from __future__ import annotations

import json
import re
import string
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gongyun.console import i18n
from gongyun.console.pages import LOGIN, PAGES, STATIC_DIR, TEMPLATE_DIR
from gongyun.security.rbac import Perm, Role
from tests.console.htmltext import ZH_ALLOWED_WORDS, foreign_words

JS = "\n".join(p.read_text(encoding="utf-8") for p in sorted(STATIC_DIR.glob("*.js")))
TEMPLATES = {p.name: p.read_text(encoding="utf-8") for p in TEMPLATE_DIR.glob("*.html")}
NAMESPACES = {key.split(".", 1)[0] for key in i18n.EN}
KEY_LITERAL = re.compile(r"""["']([a-z]+(?:\.[a-z0-9_-]+)+)["']""")


def _key_literals(source: str) -> set[str]:
    """String literals that look like catalogue keys ("admin.keys.empty", 'field.role' ...)."""
    found = KEY_LITERAL.findall(source)
    return {m for m in found if m.split(".", 1)[0] in NAMESPACES and not m.endswith((".html", ".js"))}


JS_KEYS = _key_literals(JS)
TEMPLATE_KEYS = set().union(*(_key_literals(src) for src in TEMPLATES.values()))
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_catalogues_have_the_same_keys() -> None:
    assert set(i18n.EN) == set(i18n.ZH_CN)
    assert set(i18n.CATALOGUES) == {"en", "zh-CN"}


def _pairs_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"keys given twice: {duplicates}"
    return dict(pairs)


def test_the_data_files_have_the_same_keys_and_are_what_the_console_loads() -> None:
    files = {p.stem: p for p in i18n.LOCALES_DIR.glob("*.json")}
    assert set(files) == set(i18n.LANGUAGES)
    loaded = {
        lang: json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_pairs_without_duplicates)
        for lang, path in files.items()
    }
    en_keys, zh_keys = set(loaded["en"]), set(loaded["zh-CN"])
    assert en_keys - zh_keys == set(), "keys missing from zh-CN.json"
    assert zh_keys - en_keys == set(), "keys missing from en.json"
    assert loaded["en"] == i18n.EN and loaded["zh-CN"] == i18n.ZH_CN


@pytest.mark.parametrize("key", sorted(i18n.EN))
def test_entries_are_non_empty_and_share_placeholders(key: str) -> None:
    en, zh = i18n.EN[key], i18n.ZH_CN[key]
    assert en.strip() and zh.strip()
    assert _fields(en) == _fields(zh), key


def _proper_name(key: str) -> bool:
    """Entries that are the same in both languages: product and protocol names only."""
    zh = i18n.ZH_CN[key]
    return zh == i18n.EN[key] and not foreign_words(zh, ZH_ALLOWED_WORDS)


def test_chinese_entries_are_chinese_and_english_entries_are_not() -> None:
    endonyms = {"lang.en", "lang.zh-CN"}
    for key, zh in i18n.ZH_CN.items():
        if key in endonyms or _proper_name(key):
            continue
        assert CJK.search(zh), f"{key}: {zh!r} is not translated"
        bare = zh.format(**dict.fromkeys(_fields(zh), ""))
        assert not foreign_words(bare, ZH_ALLOWED_WORDS), (key, zh)
    for key, en in i18n.EN.items():
        if key != "lang.zh-CN":
            assert not CJK.search(en), (key, en)


def test_every_key_used_by_templates_and_script_exists() -> None:
    assert len(TEMPLATE_KEYS) > 30, "the key scan of the templates found too little"
    assert len(JS_KEYS) > 30, "the key scan of console.js found too little"
    assert TEMPLATE_KEYS - set(i18n.EN) == set()
    assert JS_KEYS - set(i18n.EN) == set()


def test_keys_built_at_run_time_exist() -> None:
    for page in (*PAGES, LOGIN):
        assert page.title_key in i18n.EN
    for page in PAGES:
        assert page.desc_key in i18n.EN
    for role in Role:
        assert f"role.{role.value}" in i18n.EN
    for perm in Perm:
        resource, action = perm.value.split(":")
        assert f"perm.res.{resource}" in i18n.EN
        assert f"perm.act.{action}" in i18n.EN
    for lang in i18n.LANGUAGES:
        assert f"lang.{lang}" in i18n.EN


def test_no_key_is_dead() -> None:
    dynamic = (
        {p.title_key for p in (*PAGES, LOGIN)}
        | {p.desc_key for p in PAGES}
        | {f"role.{r.value}" for r in Role}
        | {f"perm.res.{p.value.split(':')[0]}" for p in Perm}
        | {f"perm.act.{p.value.split(':')[1]}" for p in Perm}
        | {f"lang.{lang}" for lang in i18n.LANGUAGES}
    )
    unused = set(i18n.EN) - TEMPLATE_KEYS - JS_KEYS - dynamic
    assert unused == set()


def test_translator_is_strict_and_formats() -> None:
    t = i18n.translator("zh-CN")
    assert t("nav.overview") == "概览"
    assert t("overview.welcome", name="张工") == "欢迎，张工"
    with pytest.raises(KeyError):
        t("no.such.key")


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh_cn", "zh-CN"),
        ("zh-Hans-CN", "zh-CN"),
        ("en", "en"),
        ("en-GB", "en"),
        ("de-DE", None),
        ("zh-TW", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_lang(tag: str | None, expected: str | None) -> None:
    assert i18n.normalize_lang(tag) == expected


@pytest.mark.parametrize(
    ("cookie", "accept", "expected"),
    [
        ("zh-CN", "en-US,en;q=0.9", "zh-CN"),
        ("en", "zh-CN,zh;q=0.9", "en"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, "fr-FR, de;q=0.8, zh;q=0.5", "zh-CN"),
        ("klingon", "fr", "en"),
        (None, None, "en"),
    ],
)
def test_negotiate(cookie: str | None, accept: str | None, expected: str) -> None:
    assert i18n.negotiate(cookie, accept) == expected


@pytest.mark.slow
def test_the_wheel_ships_the_catalogues(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("gongyun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"gongyun/console/locales/{lang}.json" for lang in i18n.LANGUAGES} <= names
