"""Catalogued messages: a code and its parameters, rendered in Chinese or English where they are read.

The store keeps what happened as data (an audit event's note, an error's detail) and renders it in the
reader's language, instead of freezing an English sentence at write time. Each package owns its own
catalogue (``{code: (zh, en)}``): :mod:`api.messages` for the store, :mod:`contract.schedule` for the
schedule notation. ``str(message)`` is the English text, what the JSON API and the logs show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Lang = Literal["zh", "en"]
Param = str | int | float | None
Pairs = Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class Message:
    """A catalogued message: ``code`` names a ``(zh, en)`` pair with ``{name}`` placeholders."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)
    catalogue: Pairs = field(default_factory=dict, repr=False, compare=False)

    def text(self, lang: Lang, pairs: Pairs | None = None) -> str:
        """The message in ``lang``; a missing placeholder value shows as ``?`` rather than failing."""
        zh, en = (pairs or self.catalogue)[self.code]
        return (en if lang == "en" else zh).format_map(_Lenient(self.params))

    def __str__(self) -> str:
        return self.text("en")

    def as_data(self) -> dict[str, Any]:
        """The JSON form kept in the database (an audit event's ``data``)."""
        return {"code": self.code, "params": dict(self.params)}


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def from_data(data: object, pairs: Pairs) -> Message | None:
    """A message stored by :meth:`Message.as_data`; ``None`` for anything else or an unknown code."""
    if not isinstance(data, Mapping):
        return None
    code, params = data.get("code"), data.get("params")
    if not isinstance(code, str) or code not in pairs or not isinstance(params, Mapping):
        return None
    return Message(code, dict(params), pairs)
