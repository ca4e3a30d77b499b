"""Keep credentials out of the logs: a :class:`logging.Filter` that blanks them in every log record.

Installed by the app factory on uvicorn's loggers (the access log carries each request's query string,
e.g. Open311's ``?api_key=``) and on the case store's own, so it applies however the app is served.
It blanks query or form values whose name says secret (``api_key=``, ``token=``, ``key=``, ``password=``,
``csrf...=``), ``Bearer``/``Basic`` credentials, credential headers written as ``Name: value``, and
anything shaped like an operator token or device key (``swt_...``, ``swd_...``) wherever it appears.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any, Final

REDACTED: Final = "[REDACTED]"
LOGGER_PREFIXES: Final = ("uvicorn", "api")

_SECRET_NAME = r"[\w.-]*(?:key|token|password|passwd|secret|csrf|session|signature)[\w.-]*"
_HEADER = r"authorization|proxy-authorization|x-device-key|x-api-key|x-csrf-token|cookie"


def _patterns(stop: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The patterns, with values ending at any character of ``stop`` or white space."""
    value = rf"[^\s{stop}]+"
    return (
        # name=value in query strings, form bodies and cookie headers
        (re.compile(rf"(?i)\b({_SECRET_NAME})={value}"), rf"\1={REDACTED}"),
        # credential headers written out, e.g. in a debug line: "Authorization: Bearer ..."
        (re.compile(rf"(?i)\b({_HEADER})(['\"]?\s*[:=]\s*['\"]?){value}(?:\s+{value})?"), rf"\1\2{REDACTED}"),
        (re.compile(rf"(?i)\b(bearer|basic)\s+{value}"), rf"\1 {REDACTED}"),
        # the store's own credentials, wherever they are: swt_<token>, swd_<key id>_<secret>
        (re.compile(r"\b(sw[td])_[A-Za-z0-9_-]{8,}"), rf"\1_{REDACTED}"),
    )


_TEXT = _patterns("&\"';,")
_FORMAT = _patterns("&\"';,%")  # a message with arguments: a % starts a placeholder, never a value


def redact(text: str, *, keep_placeholders: bool = False) -> str:
    """``text`` with every credential it contains replaced by :data:`REDACTED`; ``keep_placeholders``
    leaves %-placeholders (``key=%s``) alone, for a message still to be formatted with its arguments."""
    for pattern, replacement in _FORMAT if keep_placeholders else _TEXT:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Blank credentials in a record's message and arguments (the arguments keep their number and types
    other than ``str``, because uvicorn's access formatter unpacks them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, keep_placeholders=bool(record.args))
        if isinstance(record.args, dict):
            record.args = {key: _redact_value(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_value(value) for value in record.args)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(prefixes: Iterable[str] = LOGGER_PREFIXES) -> None:
    """Add the filter (once) to the loggers named ``prefix`` or ``prefix.*`` that exist now, and to
    uvicorn's access and error loggers even before uvicorn configures them.

    A logger's filters see only the records logged on that logger itself, not those its children
    propagate, hence every logger and not only the top one."""
    prefixes = tuple(prefixes)
    names = {"uvicorn.access", "uvicorn.error", *prefixes}
    names.update(
        name
        for name in logging.Logger.manager.loggerDict
        if any(name.startswith(f"{prefix}.") for prefix in prefixes)
    )
    for name in sorted(names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
