"""The store's message catalogue (api.messages): complete in both languages, and every code the code uses
is catalogued, so a note or an error never reaches a reader as a bare code or an English-only sentence."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from api.messages import LOCALISED_PARAMS, MESSAGES, NOTE_KEY, msg, stored
from common.messages import Message
from tests.conftest import REPO

# Placeholders only the Chinese text uses: names people read where the English keeps the codes an API
# client matches on, and the *_zh words a renderer fills (api.console.formatting.say).
ZH_ONLY = {
    "place_name",
    "violation_name",
    "unit_name",
    "parent_name",
    "actor_name",
    "skipped_zh",
    "state_zh",
    "known_zh",
    "what_zh",
    *(f"{name}_zh" for name in LOCALISED_PARAMS),
}
# ASCII words the Chinese texts may contain: formats and units people know by these names.
ZH_ASCII = {"JPEG", "PNG", "MB", "HH", "MM", "mon", "sun", "days", "start", "end", "Asia", "Shanghai"}
MSG_CALL = re.compile(r"""\bmsg\(\s*["']([a-z0-9_.\-]+)["']""")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_message_reads_in_both_languages(code: str) -> None:
    zh, en = MESSAGES[code]
    assert zh.strip() and en.strip()
    assert _fields(zh) - _fields(en) <= ZH_ONLY, "a Chinese placeholder the English does not have"
    literal = re.sub(r"\{[^{}]*\}", "", zh)
    words = set(re.findall(r"[A-Za-z]+", literal))
    assert words <= ZH_ASCII, f"English words in the Chinese text: {sorted(words - ZH_ASCII)}"


def test_every_code_the_store_uses_is_catalogued() -> None:
    sources = [*Path(REPO / "api").rglob("*.py")]
    used = {code for path in sources for code in MSG_CALL.findall(path.read_text(encoding="utf-8"))}
    assert {"route.rule", "error.wrong_status", "overdue.escalated"} <= used
    assert not sorted(used - MESSAGES.keys())


def test_msg_refuses_an_unknown_code() -> None:
    with pytest.raises(KeyError, match=r"no\.such"):
        msg("no.such")


def test_a_stored_note_reads_back_and_old_rows_have_none() -> None:
    note = msg("route.resumed", unit="traffic", unit_name="交通大队")
    data = {"unit": "traffic", NOTE_KEY: note.as_data()}
    back = stored(data)
    assert back == note and back is not None
    assert back.text("zh") == "恢复派遣给原责任单位交通大队"
    assert str(back) == "resumed with its unit traffic"
    assert stored({"unit": "traffic"}) is None  # a row from before notes were catalogued
    assert stored({NOTE_KEY: {"code": "gone.code", "params": {}}}) is None
    assert stored(None) is None


def test_a_missing_parameter_shows_as_a_question_mark_not_an_error() -> None:
    assert Message("route.resumed", {}, MESSAGES).text("en") == "resumed with its unit ?"
