"""The console's catalogue: both languages complete, and every key a template names exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from api.console.i18n import catalogue, parse_lang, translate
from api.console.rendering import TEMPLATES_DIR

# t("key") / t('key', ...) with a literal key; keys built at run time go through label(), which falls back.
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']""")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_has_both_languages_with_the_same_placeholders() -> None:
    messages = catalogue()
    assert len(messages) > 100
    for key, (zh, en) in messages.items():
        assert zh.strip() and en.strip(), key
        assert _fields(zh) == _fields(en), key


def test_every_key_used_by_a_template_or_page_exists() -> None:
    sources = [*TEMPLATES_DIR.rglob("*.html"), *Path(TEMPLATES_DIR.parent).glob("*.py")]
    used = {key for path in sources for key in LITERAL_KEY.findall(path.read_text(encoding="utf-8"))}
    assert "review.title" in used and "login.submit" in used
    keys = catalogue().keys()
    # A key ending in "." is a prefix completed at run time (t("lang." ~ code)): some key must start with it.
    missing = sorted(
        k for k in used if (not any(x.startswith(k) for x in keys) if k.endswith(".") else k not in keys)
    )
    assert not missing, f"keys used but not in the catalogue: {missing}"


@pytest.mark.parametrize(("cookie", "lang"), [(None, "zh"), ("zh", "zh"), ("en", "en"), ("fr", "zh")])
def test_chinese_unless_english_is_asked_for(cookie: str | None, lang: str) -> None:
    assert parse_lang(cookie) == lang


def test_translate_fills_placeholders_and_refuses_unknown_keys() -> None:
    assert translate("en", "review.count", count=3) == "3 pending"
    assert translate("zh", "review.count", count=3) == "待审核 3 件"
    with pytest.raises(KeyError):
        translate("zh", "no.such.key")
