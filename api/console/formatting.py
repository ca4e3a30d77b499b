"""How the console writes times, durations, catalogued messages and actors: one place for every page.

Templates get these through :mod:`api.console.rendering` (``dt``, ``time_tag``, ``duration``, ``countdown``,
``say``, ``note_of``, ``actor``); handlers and other modules (CSV exports, pushed reports) call them directly
with a language and the store's time zone (:class:`~api.models.CalendarSettings`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from api.console.i18n import Lang, catalogue, translate
from api.messages import LOCALISED_PARAMS, MESSAGES, stored
from common.messages import Message

MINUTE_FORMAT = "%Y-%m-%d %H:%M"
SECOND_FORMAT = "%Y-%m-%d %H:%M:%S"


def local_time(moment: dt.datetime | None, tz: ZoneInfo, *, seconds: bool = False) -> str:
    """``moment`` as the store's local wall time (``2026-03-02 08:15``), ``—`` for none."""
    if moment is None:
        return "—"
    return moment.astimezone(tz).strftime(SECOND_FORMAT if seconds else MINUTE_FORMAT)


def time_tag(moment: dt.datetime | None, tz: ZoneInfo, *, seconds: bool = False) -> Markup:
    """A ``<time>`` element: local time as text, the exact UTC instant for scripts and tooltips."""
    if moment is None:
        return Markup("—")
    iso = escape(moment.astimezone(dt.UTC).isoformat())
    text = escape(local_time(moment, tz, seconds=seconds))
    # An f-string of escaped parts, not Markup.format: that goes through string.Formatter and escaping
    # per field, ~0.1 ms a call on a loaded box, and a list page writes 150 of them (14 ms of 70).
    return Markup(f'<time datetime="{iso}" title="{iso}">{text}</time>')


_UNITS: Mapping[Lang, tuple[str, str, str, str]] = {
    # day, hour, minute, joiner
    "zh": (" 天", " 小时", " 分", " "),
    "en": (" d", " h", " min", " "),
}


def duration(seconds: float, lang: Lang) -> str:
    """A span as people say it: ``1 小时 59 分`` / ``1 h 59 min``; days with hours, hours with minutes
    (a zero part left out), under a minute as ``0 分``. The sign is ignored (say "left" or "over" around it).
    console.js's ``formatSpan`` writes the same for live countdowns."""
    minutes = int(abs(seconds) // 60)
    days, hours, mins = minutes // 1440, (minutes % 1440) // 60, minutes % 60
    day_unit, hour_unit, minute_unit, joiner = _UNITS[lang]
    if days:
        parts = [f"{days}{day_unit}"] + ([f"{hours}{hour_unit}"] if hours else [])
    elif hours:
        parts = [f"{hours}{hour_unit}"] + ([f"{mins}{minute_unit}"] if mins else [])
    else:
        parts = [f"{mins}{minute_unit}"]
    return joiner.join(parts)


def countdown_text(deadline: dt.datetime, now: dt.datetime, lang: Lang) -> str:
    """``剩余 1 小时 59 分`` before the deadline, ``超期 3 小时`` after it."""
    left = (deadline - now).total_seconds()
    key = "countdown.left" if left >= 0 else "countdown.over"
    return translate(lang, key, time=duration(left, lang))


def say(message: Message, lang: Lang) -> str:
    """A catalogued message (api.messages) in ``lang``; statuses, actions, roles, fields and routing tiers
    among its parameters are given in that language as ``<name>_zh``."""
    if lang == "en":
        return message.text("en")
    params: dict[str, Any] = dict(message.params)
    labels = catalogue()
    for name in LOCALISED_PARAMS:
        value = params.get(name)
        if value is None:
            continue
        key = f"{name}.{value}" if name != "tier" else f"route.tier.{value}"
        pair = labels.get(key) or MESSAGES.get(key)
        params.setdefault(f"{name}_zh", pair[0] if pair else str(value))
    return Message(message.code, params, message.catalogue).text("zh")


def note_of(data: object, note: str | None, lang: Lang) -> str | None:
    """An audit event's note to show: its catalogued message in ``lang`` when it has one, else the stored
    text as written (notes people typed, and system notes from before they were catalogued)."""
    message = stored(data)
    return say(message, lang) if message is not None else note


def event_note(event: Any, lang: Lang) -> str | None:
    """An audit event's note (:func:`note_of`); a camera check's note, which the edge box writes in
    English (``camera check: zone … clear of … for 120 s``), reads in Chinese as what the check found."""
    if lang == "zh" and event.reason == "camera_check" and stored(event.data) is None:
        key = f"note.camera_check.{event.action}"
        if key in catalogue():
            return translate(lang, key)
    return note_of(event.data, event.note, lang)


def actor_text(label: str, names: Mapping[str, str], lang: Lang) -> str:
    """An audit label as people read it: ``system`` -> 系统, ``user:zhao`` -> 赵敏 (from ``names``, see
    :func:`api.actors.display_names`), ``device:demo-box`` -> 边缘设备（人民路口东）."""
    kind, _, name = label.partition(":")
    if label == "system":
        return translate(lang, "actor.system")
    shown = names.get(label, name or label)
    if kind == "device":
        return translate(lang, "actor.device", name=shown)
    if kind == "cli":
        return translate(lang, "actor.cli", name=shown)
    return shown
