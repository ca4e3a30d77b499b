"""The console's message catalogue, Chinese (default) and English.

Each area of the console keeps its messages in its own module here (``common.py``, ``review.py``, ...),
as ``MESSAGES: dict[str, tuple[str, str]]`` mapping a key to ``(zh, en)``. A pair cannot lack a language;
the tests check that neither is empty and that every key a template uses exists. To add an area, add a
module with ``MESSAGES``: it is found by name, so two people adding areas never edit the same file.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Final, Literal

Lang = Literal["zh", "en"]
LANGS: Final[tuple[Lang, ...]] = ("zh", "en")
DEFAULT_LANG: Final[Lang] = "zh"


class CatalogueError(Exception):
    """A broken catalogue module: a key defined twice, or a message that is not a (zh, en) pair."""


def parse_lang(value: str | None) -> Lang:
    """``value`` if it is a supported language, else the default (Chinese)."""
    return "en" if value == "en" else DEFAULT_LANG


@cache
def catalogue() -> dict[str, tuple[str, str]]:
    """Every area's messages merged; a key defined by two areas is an error naming both."""
    merged: dict[str, tuple[str, str]] = {}
    owner: dict[str, str] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        messages = getattr(module, "MESSAGES", None)
        if not isinstance(messages, dict):
            raise CatalogueError(f"{module.__name__} has no MESSAGES dict")
        for key, pair in messages.items():
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise CatalogueError(f"{module.__name__}: {key!r} must be a (zh, en) pair, got {pair!r}")
            if key in merged:
                raise CatalogueError(f"{key!r} is defined in {owner[key]} and in {module.__name__}")
            merged[key] = pair
            owner[key] = module.__name__
    return merged


def translate(lang: Lang, key: str, **values: object) -> str:
    """The message for ``key`` in ``lang``, with ``{name}`` placeholders filled from ``values``.

    An unknown key raises KeyError: a missing message is a bug the tests must catch, not a blank label.
    """
    zh, en = catalogue()[key]
    text = en if lang == "en" else zh
    return text.format(**values) if values else text
