"""The ``streetwatch`` command: one Typer app, subcommands grouped by area."""

from __future__ import annotations

import logging
import os

import typer

from datasets.cli import dataset_app, evaluate_command, train_command
from datasets.scenes.cli import scenes_app
from detector.cli import detect_command, models_app
from pipeline.cli import run_command, validate_config_command

try:
    from api.cli import api_app
except ModuleNotFoundError as missing:  # an edge box without the case store's extra
    api_app = typer.Typer(help=f"Needs the store extra: pip install 'streetwatch[store]' ({missing}).")

app = typer.Typer(
    name="streetwatch",
    help="Turn city cameras into city-management cases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("detect")(detect_command)
app.command("run")(run_command)
app.command("validate-config")(validate_config_command)
app.add_typer(models_app, name="models", help="Inspect, export and quantize detector models.")
app.add_typer(api_app, name="api", help="The case store: migrate, serve, create users and devices.")
app.add_typer(dataset_app, name="dataset", help="Datasets: export reviewed cases, convert COCO <-> YOLO.")
app.add_typer(scenes_app, name="scenes", help="Generated street scenes, the demo clip and its scoring.")
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Ultralytics (train extra) must never try the network on an air-gapped box.
    os.environ.setdefault("YOLO_OFFLINE", "1")


def main() -> None:
    app()
