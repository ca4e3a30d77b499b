"""The installation's secret key (it signs the console's CSRF tokens): the same on every API host.

From ``STREETWATCH_SECRET_KEY`` when it is set; otherwise from the database's ``installation_settings``,
generated once: every host inserts a candidate with ``ON CONFLICT DO NOTHING`` and then reads the row,
so hosts starting together all end up with the first one's key.

An installation from before this kept the key in ``<data_dir>/secret.key``: that file's value is the
candidate the first time, so it moves into the database and tokens already in browsers stay valid; the
file is not read again once the database has a key.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from api.models import InstallationSetting, utcnow
from api.settings import Settings

NAME = "secret_key"
MIN_LENGTH = 32
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


class SecretKeyError(ValueError):
    """The configured secret key is unusable."""


def installation_secret(settings: Settings, engine: Engine) -> bytes:
    if settings.secret_key is not None:
        return _from_setting(settings.secret_key.get_secret_value())
    with engine.begin() as conn:
        stored = conn.scalar(select(InstallationSetting.value).where(InstallationSetting.name == NAME))
        if stored is None:
            insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
            candidate = {"name": NAME, "value": _legacy_file_key(settings) or secrets.token_hex(32)}
            conn.execute(
                insert(InstallationSetting).values(**candidate, created_at=utcnow()).on_conflict_do_nothing()
            )
            stored = conn.scalar(select(InstallationSetting.value).where(InstallationSetting.name == NAME))
    if stored is None:  # pragma: no cover - the insert or a concurrent one made it
        raise SecretKeyError("the secret key could not be stored in installation_settings")
    return bytes.fromhex(stored)


def _from_setting(value: str) -> bytes:
    value = value.strip()
    if _HEX_KEY.fullmatch(value):
        return bytes.fromhex(value)
    if len(value) < MIN_LENGTH:
        raise SecretKeyError(
            f"STREETWATCH_SECRET_KEY has {len(value)} characters, fewer than {MIN_LENGTH}: use e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return value.encode()


def _legacy_file_key(settings: Settings) -> str | None:
    """The hex key an older installation generated into its data directory, if there is a valid one."""
    path = settings.data_dir / "secret.key"
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return value.lower() if _HEX_KEY.fullmatch(value) else None
