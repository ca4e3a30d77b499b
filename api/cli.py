"""``streetwatch api ...``: migrate, serve, and create operators and devices."""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from api.models import Role

api_app = typer.Typer(no_args_is_help=True)

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default: $STREETWATCH_DATA_DIR or ./data).")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: $STREETWATCH_DATABASE_URL or SQLite)."),
]


def _apply_overrides(data_dir: Path | None, database_url: str | None) -> None:
    # Environment variables, so that uvicorn's worker processes see the same settings.
    if data_dir is not None:
        os.environ["STREETWATCH_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        os.environ["STREETWATCH_DATABASE_URL"] = database_url


@api_app.command("migrate")
def migrate_command(
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    no_defaults: Annotated[
        bool,
        typer.Option(
            "--no-defaults",
            help="Do not load configs/reference/default.yaml into a database without violation types.",
        ),
    ] = False,
) -> None:
    """Create or upgrade the database schema to the code's revision; load the default reference data
    (violation types, deadline table, working calendar) when no violation type exists yet."""
    from api.config_import import ConfigImportError, load_defaults_if_empty
    from api.db import make_engine, make_session_factory
    from api.migrate import current_revision, upgrade
    from api.settings import Settings

    _apply_overrides(data_dir, database_url)
    engine = make_engine(Settings())
    upgrade(engine)
    typer.echo(f"database at revision {current_revision(engine)}")
    if no_defaults:
        return
    try:
        report = load_defaults_if_empty(make_session_factory(engine))
    except ConfigImportError as exc:
        typer.echo(f"error: default reference data not loaded:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    if report is not None:
        typer.echo(f"loaded default reference data: {report.summary()}")


@api_app.command("serve")
def serve_command(
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default 1).")] = None,
) -> None:
    """Serve the case store with uvicorn; refuses to start on an unmigrated database."""
    import uvicorn

    from api.db import make_engine
    from api.migrate import DatabaseNotMigratedError, check_migrated
    from api.settings import Settings

    _apply_overrides(data_dir, database_url)
    settings = Settings()
    try:
        check_migrated(make_engine(settings))
    except DatabaseNotMigratedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        # X-Forwarded-Proto decides whether cookies are Secure: trusted only from the configured proxies.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@api_app.command("create-user")
def create_user_command(
    username: str,
    role: Annotated[Role, typer.Option(help="admin, shift_leader, dispatcher, unit_handler or viewer.")],
    unit: Annotated[str | None, typer.Option(help="Unit code (required for unit handlers).")] = None,
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="STREETWATCH_PASSWORD"),
    ] = "",
    display_name: Annotated[str, typer.Option()] = "",
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create an operator account (the password is read from a prompt or STREETWATCH_PASSWORD)."""
    from sqlalchemy import select

    from api.admin_audit import set_actor
    from api.auth import create_user
    from api.db import make_engine, make_session_factory, session_scope
    from api.migrate import check_migrated
    from api.models import Unit
    from api.settings import Settings

    _apply_overrides(data_dir, database_url)
    engine = make_engine(Settings())
    try:
        check_migrated(engine)
        with session_scope(make_session_factory(engine)) as session:
            set_actor(session, f"cli:{getpass.getuser()}")
            unit_id = None
            if unit is not None:
                found = session.scalar(select(Unit).where(Unit.code == unit))
                if found is None:
                    raise ValueError(f"unknown unit code {unit!r}")
                unit_id = found.id
            user = create_user(
                session,
                username=username,
                password=password,
                role=role,
                unit_id=unit_id,
                display_name=display_name,
            )
            typer.echo(f"created {user.role} {user.username} (id {user.id})")
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@api_app.command("create-device")
def create_device_command(
    name: str,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the key to this file (mode 600) instead of printing it.", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Register an edge box and print its API key once, or write it to --out (only a hash is stored)."""
    from api.admin_audit import set_actor
    from api.auth import create_device
    from api.db import make_engine, make_session_factory, session_scope
    from api.migrate import check_migrated
    from api.settings import Settings

    _apply_overrides(data_dir, database_url)
    engine = make_engine(Settings())
    # The key file is made first (mode 600 from the start), so a path that cannot be written never
    # leaves a registered device whose key nobody has.
    pending = _PrivateFile.create(out, force=force) if out is not None else None
    try:
        check_migrated(engine)
        with session_scope(make_session_factory(engine)) as session:
            set_actor(session, f"cli:{getpass.getuser()}")
            issued = create_device(session, name)
        if pending is None:
            typer.echo(issued.key)
            return
        pending.commit(f"{issued.key}\n")
    except (ValueError, RuntimeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        if pending is not None:
            pending.discard()
    typer.echo(f"device {name}: key written to {out} (mode 600)", err=True)


class _PrivateFile:
    """A file readable by its owner only, written whole: a temp file made with mode 600 beside the
    target, then linked to its name (refusing an existing file) or, with ``force``, renamed over it."""

    def __init__(self, target: Path, temp: Path, force: bool) -> None:
        self.target, self.temp, self.force = target, temp, force

    @classmethod
    def create(cls, target: Path, *, force: bool) -> _PrivateFile:
        if target.exists() and not force:
            typer.echo(f"error: --out {target}: the file exists; pass --force to replace it", err=True)
            raise typer.Exit(2)
        try:
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            typer.echo(f"error: --out {target}: cannot create the file: {exc.strerror}", err=True)
            raise typer.Exit(2) from exc
        os.close(fd)
        return cls(target, Path(temp), force)

    def commit(self, text: str) -> None:
        with self.temp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if self.force:
            self.temp.replace(self.target)
            return
        try:
            os.link(self.temp, self.target)  # fails if the name was taken meanwhile: never overwrites
        except FileExistsError as exc:
            message = f"--out {self.target}: the file appeared meanwhile; the key was not written"
            raise OSError(message) from exc

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


@api_app.command("import-config")
def import_config_command(
    file: Annotated[
        Path, typer.Argument(help="Reference-data YAML, e.g. configs/reference/example-city.yaml.")
    ],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and report, then roll back.")] = False,
) -> None:
    """Import units, places, violation types, deadlines, calendar, cameras and routing rules from YAML.

    Idempotent (matched by code; re-importing changes nothing) and all-or-nothing: any error names the
    file, line and field, and leaves the database unchanged.
    """
    from api.actors import Actor
    from api.config_import import ConfigImportError, import_file
    from api.db import make_engine, make_session_factory
    from api.migrate import check_migrated
    from api.settings import Settings

    _apply_overrides(data_dir, database_url)
    engine = make_engine(Settings())
    actor = Actor(kind="cli", id=None, name=getpass.getuser())
    try:
        check_migrated(engine)
        session = make_session_factory(engine)()
        try:
            report = import_file(session, file, actor)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        finally:
            session.rollback()
            session.close()
    except (ConfigImportError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    verb = "would import (dry run, nothing written)" if dry_run else "imported"
    typer.echo(f"{verb} {file}: {report.summary() or 'empty file'}")
