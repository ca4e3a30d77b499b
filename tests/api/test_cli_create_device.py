"""``streetwatch api create-device --out FILE``: the key lands in a file only its owner can read."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.auth import authenticate_device
from api.db import make_engine, make_session_factory
from api.models import Device
from api.settings import Settings
from streetwatch.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(sqlite_template, folder / "streetwatch.sqlite")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("STREETWATCH_DATA_DIR", str(folder))
    monkeypatch.delenv("STREETWATCH_DATABASE_URL", raising=False)
    return folder


def devices(data_dir: Path) -> int:
    engine = make_engine(Settings(data_dir=data_dir, _env_file=None))
    with make_session_factory(engine)() as session:
        count = session.scalar(select(func.count()).select_from(Device)) or 0
    engine.dispose()
    return count


def key_works(data_dir: Path, key: str) -> bool:
    engine = make_engine(Settings(data_dir=data_dir, _env_file=None))
    with make_session_factory(engine)() as session:
        found = authenticate_device(session, key)
    engine.dispose()
    return found is not None


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_out_writes_a_working_key_readable_by_the_owner_only(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "device.key"
    result = runner.invoke(app, ["api", "create-device", "box-1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o600
    key = out.read_text(encoding="utf-8").strip()
    assert key_works(data_dir, key)
    assert key not in result.output  # written to the file, not echoed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "device.key"]  # no temp file left


def test_out_refuses_an_existing_file_and_registers_nothing(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "device.key"
    out.write_text("swd_old_key\n", encoding="utf-8")
    result = runner.invoke(app, ["api", "create-device", "box-1", "--out", str(out)])
    assert result.exit_code == 2
    assert f"--out {out}: the file exists; pass --force" in result.output
    assert out.read_text(encoding="utf-8") == "swd_old_key\n"
    assert devices(data_dir) == 0


def test_force_replaces_a_world_readable_file_with_a_private_one(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "device.key"
    out.write_text("swd_old_key\n", encoding="utf-8")
    out.chmod(0o644)
    result = runner.invoke(app, ["api", "create-device", "box-1", "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o600
    assert key_works(data_dir, out.read_text(encoding="utf-8").strip())


def test_out_in_a_missing_folder_fails_before_registering(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "absent" / "device.key"
    result = runner.invoke(app, ["api", "create-device", "box-1", "--out", str(out)])
    assert result.exit_code == 2
    assert f"--out {out}: cannot create the file" in result.output
    assert devices(data_dir) == 0


def test_without_out_the_key_is_printed_once(data_dir: Path) -> None:
    result = runner.invoke(app, ["api", "create-device", "box-1"])
    assert result.exit_code == 0, result.output
    assert key_works(data_dir, result.output.strip())
