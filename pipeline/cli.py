"""Command-line entry points of the edge daemon: ``streetwatch run`` and ``streetwatch validate-config``.

Both read the configuration the same way (:func:`check_config`): the YAML is validated strictly, then the
model it names is checked (the file exists; the class names mapped in ``detector.classes`` are classes of
that model). Every problem is printed as ``file:line: field: message`` and the command exits with code 2,
before anything is started: an invalid configuration never starts a half-working daemon.

``validate-config`` then checks what the configuration refers to on this box (:mod:`pipeline.preflight`:
camera files, the device key file and its mode, the model loaded in ONNX Runtime); ``run`` refuses, with
one line, a configuration whose cameras are all files of which none opens or reads to its end (a
truncated file says how far it got); live cameras are retried.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from detector.card import is_card_path, read_card_fields
from detector.errors import DetectorError
from detector.session import check_model_file
from pipeline.config import ConfigError, DaemonConfig, load_config
from pipeline.preflight import environment_problems, no_camera_opens, where

log = logging.getLogger(__name__)

ConfigArgument = Annotated[Path, typer.Argument(help="The daemon's YAML configuration.", show_default=False)]
ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The daemon's YAML configuration.", show_default=False)
]


def model_problems(path: Path, config: DaemonConfig) -> list[str]:
    """What the configuration asks of its model that the model cannot do, as ``file:line: field: message``.

    Reads the model card (no ONNX Runtime session: this is cheap); for a bare ONNX file only its
    existence is checked here, and its class names when the daemon loads it.
    """
    model = config.detector.model
    problems: list[str] = []
    try:
        fields = read_card_fields(model) if is_card_path(model) else {"path": model}
        check_model_file(Path(fields["path"]))
    except DetectorError as exc:
        return [f"{where(path, ('detector', 'model'))}: detector.model: {exc}"]
    classes = fields.get("classes")
    if isinstance(classes, list):
        known = {str(name) for name in classes}
        for name in config.detector.classes:
            if name not in known:
                problems.append(
                    f"{where(path, ('detector', 'classes', name))}: detector.classes.{name}: "
                    f"{name!r} is not a class of model {model.name} (it has {len(known)} classes, "
                    f"e.g. {', '.join(sorted(known)[:5])})"
                )
    return problems


def check_config(path: Path) -> DaemonConfig:
    """Load ``path`` and check it against its model; raise :class:`ConfigError` listing every problem."""
    config = load_config(path)
    problems = model_problems(path, config)
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _config_or_exit(path: Path) -> DaemonConfig:
    try:
        return check_config(path)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            typer.echo(line, err=True)
        raise typer.Exit(2) from exc


def validate_config_command(config: ConfigArgument) -> None:
    """Check a daemon configuration; print each problem as file:line: field: message (exit code 2).

    Beyond the YAML: camera files exist and are videos, the device key file exists and only its owner
    can read it, and the model loads in ONNX Runtime with the classes mapped. Rules no detector class
    maps to are logged as warnings: valid, but they can never fire."""
    checked = _config_or_exit(config)
    problems = environment_problems(config, checked)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(2)
    zones = sum(len(camera.zones) for camera in checked.cameras)
    model = checked.detector.model
    typer.echo(f"{config}: ok ({len(checked.cameras)} cameras, {zones} zones, model {model})")


def run_command(config: ConfigOption) -> None:
    """Run the edge daemon until SIGTERM or SIGINT (or, for finite files, the end of every stream)."""
    checked = _config_or_exit(config)
    unopenable = no_camera_opens(checked)  # only files: nothing would ever come; live cameras are retried
    if unopenable:
        typer.echo(f"error: {config}: {unopenable}", err=True)
        raise typer.Exit(2)
    from pipeline.daemon import RESTART_EXIT, Daemon  # heavy imports (ONNX Runtime, PyAV) when running
    from pipeline.errors import PipelineError

    code = RESTART_EXIT
    while code == RESTART_EXIT:  # the store made a model with another class list live: build it again
        try:
            daemon = Daemon(checked)
        except (PipelineError, DetectorError, OSError) as exc:
            typer.echo(f"error: {config}: {exc}", err=True)
            raise typer.Exit(2) from exc
        code = daemon.run(install_signal_handlers=True)
    if code:
        raise typer.Exit(code)
