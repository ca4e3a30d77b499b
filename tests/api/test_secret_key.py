"""The installation's secret key (api.secret_key): from STREETWATCH_SECRET_KEY, else generated once into
the database, so every API host signs the console's CSRF tokens alike; an older install's key file moves
into the database."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from api.models import InstallationSetting
from api.secret_key import SecretKeyError, installation_secret
from tests.api.conftest import Store

pytestmark = pytest.mark.security


def test_the_environment_key_wins(store: Store) -> None:
    hex_key = "0f" * 32
    as_hex = store.settings.model_copy(update={"secret_key": SecretStr(hex_key)})
    as_text = store.settings.model_copy(
        update={"secret_key": SecretStr("a passphrase of more than 32 chars")}
    )

    assert installation_secret(as_hex, store.engine) == bytes.fromhex(hex_key)
    assert installation_secret(as_text, store.engine) == b"a passphrase of more than 32 chars"
    with store.sessions() as session:  # nothing generated into the database
        assert session.scalar(select(InstallationSetting)) is None


def test_a_short_environment_key_is_refused(store: Store) -> None:
    short = store.settings.model_copy(update={"secret_key": SecretStr("too short")})
    with pytest.raises(SecretKeyError, match="STREETWATCH_SECRET_KEY has 9 characters, fewer than 32"):
        installation_secret(short, store.engine)


def test_the_generated_key_is_shared_by_hosts_with_other_data_directories(
    store: Store, tmp_path: Path
) -> None:
    other_host = store.settings.model_copy(update={"data_dir": tmp_path / "other"})

    first = installation_secret(store.settings, store.engine)

    assert len(first) == 32
    assert installation_secret(other_host, store.engine) == first
    assert not (store.settings.data_dir / "secret.key").exists()  # never a file only one host has


def test_an_older_installs_key_file_moves_into_the_database(store: Store, tmp_path: Path) -> None:
    legacy = "5a" * 32
    (store.settings.data_dir / "secret.key").write_text(legacy + "\n", encoding="utf-8")

    assert installation_secret(store.settings, store.engine) == bytes.fromhex(legacy)
    other_host = store.settings.model_copy(update={"data_dir": tmp_path / "other"})
    assert installation_secret(other_host, store.engine) == bytes.fromhex(legacy)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_hosts_starting_together_agree_on_one_key(store: Store, tmp_path: Path) -> None:
    results: list[bytes] = []
    start = threading.Barrier(6)

    def host(i: int) -> None:
        settings = store.settings.model_copy(update={"data_dir": tmp_path / f"host-{i}"})
        start.wait()
        results.append(installation_secret(settings, store.engine))

    threads = [threading.Thread(target=host, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 6 and len(set(results)) == 1
